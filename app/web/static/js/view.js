// Viewer tab: a series' image with a segmentation's labels (colours and names from the model card),
// planes, window/level presets, opacity, and the result downloads.

import { api, download, getJson, watchJob } from "./api.js";
import { parseNifti } from "./nifti.js";
import { $, attempt, el, say } from "./ui.js";
import { PRESETS, SliceViewer } from "./viewer.js";

const FILES = { nifti: "segmentation.nii.gz", "dicom-seg": "segmentation.dcm", rtstruct: "rtstruct.dcm" };
let viewer;
let shown = { seriesId: null, segmentationId: null };

const fetchNifti = async (path) => parseNifti(await (await api(path)).arrayBuffer());

function syncControls() {
  $("#slice-slider").max = String(Math.max(0, viewer.sliceCount - 1));
  $("#slice-slider").value = String(viewer.slice);
  $("#slice-label").textContent = viewer.image ? `${viewer.plane} ${viewer.slice + 1} / ${viewer.sliceCount}` : "";
  $("#window-width").value = String(Math.round(viewer.window.width));
  $("#window-level").value = String(Math.round(viewer.window.level));
}

function showLegend(labels) {
  $("#legend").replaceChildren(
    ...labels.map(({ value, name, color }) => {
      const box = el("input", { type: "checkbox", checked: !viewer.hidden.has(value) });
      box.addEventListener("change", () => {
        if (box.checked) viewer.hidden.delete(value);
        else viewer.hidden.add(value);
        viewer.render();
      });
      const swatch = el("span", { className: "swatch" });
      swatch.style.background = `rgb(${color.join(",")})`;
      return el("li", {}, el("label", {}, box, swatch, `${name} (${value})`));
    }),
  );
}

/** Labels of a model version from its card: [{value, name, color}]. */
async function cardLabels(model) {
  const version = await getJson(`/v1/models/${encodeURIComponent(model.name)}/versions/${model.version}`);
  const table = version.card?.labels ?? {};
  return Object.entries(table).map(([value, label]) => ({
    value: Number(value),
    name: label.name ?? `label ${value}`,
    color: label.color ?? [255, 255, 0],
  }));
}

async function showDownloads(segmentation) {
  const formats = new Set(segmentation.formats);
  for (const button of document.querySelectorAll("#downloads button")) {
    button.disabled = !formats.has(button.dataset.format);
  }
  const note = $("#download-note");
  if (segmentation.export_job_id && !formats.has("dicom-seg")) {
    note.textContent = "DICOM SEG and RTSTRUCT are being written…";
    const job = await watchJob(segmentation.export_job_id, () => {});
    if (shown.segmentationId !== segmentation.id) return;
    const again = await getJson(`/v1/segmentations/${segmentation.id}`);
    note.textContent = job.state === "succeeded" ? "" : `The DICOM export ${job.state}: ${job.error ?? ""}`;
    for (const button of document.querySelectorAll("#downloads button")) {
      button.disabled = !again.formats.includes(button.dataset.format);
    }
  } else {
    note.textContent = segmentation.export_job_id
      ? ""
      : "No DICOM SEG or RTSTRUCT: they must reference DICOM images by their UIDs, and this series " +
        "was read from NIfTI or from DICOM files without them.";
  }
}

/** Open a series in the viewer, with the labels of a segmentation (or none). */
export async function openViewer(series, segmentationId) {
  location.hash = "#viewer";
  const canvas = $("#slice-canvas");
  canvas.dataset.loaded = "";
  shown = { seriesId: series.id, segmentationId };
  $("#viewer-title").textContent = `${series.description || series.id.slice(0, 8)} · loading…`;
  for (const button of document.querySelectorAll("#downloads button")) button.disabled = true;
  $("#legend").replaceChildren();
  const image = await fetchNifti(`/ui/api/series/${series.id}/image`);
  viewer.setImage(image, series.modality);
  $("#preset").value = series.modality === "CT" ? "abdomen" : "auto";
  if (series.modality === "CT") applyPreset("abdomen");
  canvas.dataset.loaded = "image";
  $("#viewer-title").textContent = `${series.description || series.id.slice(0, 8)} (${series.modality})`;
  if (!segmentationId) return;
  const segmentation = await getJson(`/v1/segmentations/${segmentationId}`);
  const [labels, labelMap] = await Promise.all([
    cardLabels(segmentation.model),
    fetchNifti(`/v1/segmentations/${segmentationId}/result?format=nifti`),
  ]);
  viewer.hidden.clear();
  viewer.setLabels(labelMap, new Map(labels.map((l) => [l.value, l.color])));
  showLegend(labels);
  const busiest = viewer.busiestSlice();
  if (busiest >= 0) viewer.setSlice(busiest);
  canvas.dataset.loaded = "labels";
  $("#viewer-title").textContent +=
    ` · ${segmentation.model.name} v${segmentation.model.version}${segmentation.tile ? ` (tiles of ${segmentation.tile})` : ""}, ` +
    `segmentation ${segmentationId.slice(0, 8)}`;
  await showDownloads(segmentation);
}

function applyPreset(name) {
  if (name === "auto") viewer.autoWindow();
  else {
    viewer.window = { ...PRESETS[name] };
    viewer.render();
  }
}

export function initViewer() {
  viewer = new SliceViewer($("#slice-canvas"));
  viewer.onChange = syncControls;
  $("#slice-slider").addEventListener("input", (e) => viewer.setSlice(Number(e.target.value)));
  for (const radio of document.querySelectorAll("input[name=plane]")) {
    radio.addEventListener("change", () => radio.checked && viewer.setPlane(radio.value));
  }
  $("#preset").addEventListener("change", (e) => applyPreset(e.target.value));
  for (const id of ["#window-width", "#window-level"]) {
    $(id).addEventListener("change", () => {
      viewer.window = { width: Math.max(1, Number($("#window-width").value)), level: Number($("#window-level").value) };
      viewer.render();
    });
  }
  $("#opacity").addEventListener("input", (e) => {
    viewer.opacity = Number(e.target.value);
    viewer.render();
  });
  document.addEventListener("keydown", (e) => {
    if (location.hash !== "#viewer" || !viewer.image || e.target.matches("input, select, textarea")) return;
    if (e.key === "ArrowUp" || e.key === "PageUp") viewer.setSlice(viewer.slice + 1);
    if (e.key === "ArrowDown" || e.key === "PageDown") viewer.setSlice(viewer.slice - 1);
  });
  for (const button of document.querySelectorAll("#downloads button")) {
    button.addEventListener("click", () =>
      attempt(async () => {
        const format = button.dataset.format;
        await download(`/v1/segmentations/${shown.segmentationId}/result?format=${format}`, FILES[format]);
        say(`Downloaded ${FILES[format]}`, true);
      }),
    );
  }
}
