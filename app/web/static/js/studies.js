// Studies tab: upload (files, a folder, zips; drag and drop), the list of studies, a study's series,
// and starting a segmentation of a series with a chosen model version.

import { getJson, postJson, upload } from "./api.js";
import { $, attempt, el, followJob, say } from "./ui.js";
import { openViewer } from "./view.js";

let currentStudy = null;

/** Every file under a dropped entry (folders are walked; browsers hand them over as entries). */
async function filesOf(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return found;
    for (const child of batch) found.push(...(await filesOf(child)));
  }
}

async function send(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.webkitRelativePath || file.name);
  const bar = $("#upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("#upload-notes").textContent = `uploading ${files.length} file(s)…`;
  try {
    const study = await upload("/v1/studies", form, (fraction) => (bar.value = fraction));
    const notes = study.notes.length ? ` Notes: ${study.notes.join("; ")}` : "";
    $("#upload-notes").textContent =
      `${study.duplicate ? "Already uploaded" : "Stored"}: ${study.series.length} series.${notes}`;
    await refreshStudies();
    showStudy(study);
  } finally {
    bar.hidden = true;
  }
}

/** What people recognise a study by: its description, else its series' descriptions, else its upload time. */
function studyName(study) {
  if (study.description) return study.description;
  const described = [...new Set(study.series.map((s) => s.description).filter(Boolean))];
  if (described.length) return described.join(", ");
  return `upload of ${study.created_at ? new Date(study.created_at).toLocaleString() : study.id.slice(0, 8)}`;
}

/** The pre-training form's study choice: every stored study, keeping what was chosen. */
function fillStudyChoice(studies) {
  const select = $("#pretrain-form").elements.study_ids;
  const chosen = new Set([...select.selectedOptions].map((o) => o.value));
  select.replaceChildren(
    ...studies.map((study) =>
      el("option", {
        value: study.id,
        selected: chosen.has(study.id),
        textContent: `${studyName(study)} (${(study.modalities ?? []).join(", ")}, ${study.series.length} series, ${study.slices} slices)`,
      }),
    ),
  );
}

export async function refreshStudies() {
  const studies = await getJson("/v1/studies");
  fillStudyChoice(studies);
  const body = $("#study-table tbody");
  body.replaceChildren(
    ...studies.map((study) => {
      const row = el(
        "tr",
        { className: study.id === currentStudy?.id ? "selected" : "" },
        el("td", { title: `study ${study.id}` }, studyName(study)),
        el("td", {}, (study.modalities ?? []).join(", ")),
        el("td", {}, study.study_date || "–"),
        el("td", {}, String(study.series.length)),
        el("td", {}, String(study.slices ?? "")),
        el("td", {}, study.created_at ? new Date(study.created_at).toLocaleString() : ""),
      );
      row.dataset.id = study.id;
      row.addEventListener("click", () => showStudy(study));
      return row;
    }),
  );
}

function showStudy(study) {
  currentStudy = study;
  for (const row of document.querySelectorAll("#study-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === study.id);
  }
  $("#study-title").textContent = `of study ${study.id.slice(0, 8)}`;
  $("#series-table tbody").replaceChildren(
    ...study.series.map((series) => {
      const segment = el("button", { textContent: "Segment" });
      segment.addEventListener("click", () => attempt(() => startSegmentation(series)));
      const view = el("button", { textContent: "View" });
      view.addEventListener("click", () => attempt(() => openViewer(series, null)));
      const row = el(
        "tr",
        {},
        el("td", { title: series.warnings.join("\n") }, series.description || series.id.slice(0, 8)),
        el("td", {}, series.modality),
        el("td", {}, series.shape.join("×")),
        el("td", {}, series.spacing.map((s) => s.toFixed(2)).join(" × ")),
        el("td", {}, segment, " ", view),
      );
      row.dataset.series = series.id;
      return row;
    }),
  );
}

async function startSegmentation(series) {
  const model = $("#model-select").value || null;
  const inference = $("#inference-select").value; // "": as the model's card says
  const tiles = inference ? inference === "tiles" : null;
  const accepted = await postJson("/v1/segmentations", { series_id: series.id, model, tiles });
  say("");
  const job = await followJob($("#segment-job"), accepted.job_id, `Segmenting ${series.description || series.id.slice(0, 8)}`);
  if (job.state === "succeeded") await openViewer(series, accepted.id);
  else say(`The segmentation ${job.state}: ${job.error ?? "no reason recorded"}`);
}

export function initStudies() {
  const drop = $("#drop");
  for (const input of [$("#file-input"), $("#folder-input")]) {
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      attempt(() => send(files));
    });
  }
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
    const plain = [...event.dataTransfer.files];
    attempt(async () => {
      const files = entries.length ? (await Promise.all(entries.map(filesOf))).flat() : plain;
      await send(files);
    });
  });
}
