// Training tab: self-supervised pre-training on stored studies; a dataset from uploaded images and label
// maps, a fine-tune job (from scratch, a segmentation model or a pre-trained backbone) with its loss and
// validation Dice curves drawn as progress arrives, and the candidate's per-organ Dice beside production's.

import { getJson, postJson, upload } from "./api.js";
import { LineChart } from "./chart.js";
import { refreshModels } from "./models.js";
import { $, attempt, describeChanges, el, followJob, say } from "./ui.js";

let chart;

function addCase() {
  const index = $("#case-table tbody").children.length;
  const image = el("input", { type: "file", className: "case-image", required: true });
  const label = el("input", { type: "file", className: "case-label", required: true });
  image.dataset.case = label.dataset.case = String(index);
  $("#case-table tbody").append(el("tr", {}, el("td", {}, image), el("td", {}, label)));
}

/** "5=liver, 1=spleen" -> {"5": "liver", "1": "spleen"} */
function parseLabels(text) {
  const table = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [value, name] = part.split("=").map((p) => p.trim());
    if (!/^\d+$/.test(value ?? "") || !name) throw new Error(`labels: write value=name pairs, not "${part}"`);
    table[value] = name;
  }
  return table;
}

async function createDataset(form) {
  const data = new FormData();
  data.append("name", form.elements.name.value);
  data.append("labels", JSON.stringify(parseLabels(form.elements.labels.value)));
  const cases = [];
  for (const row of $("#case-table tbody").children) {
    const [image, label] = [row.querySelector(".case-image").files[0], row.querySelector(".case-label").files[0]];
    if (!image || !label) continue;
    const n = cases.length;
    // Names carry the case number (two cases may use files of the same name) and keep their suffix.
    cases.push({ image: `case${n}-image-${image.name}`, label: `case${n}-label-${label.name}` });
    data.append("files", image, cases[n].image);
    data.append("files", label, cases[n].label);
  }
  if (!cases.length) throw new Error("add at least one case: an image and its label map");
  data.append("cases", JSON.stringify(cases));
  const dataset = await upload("/v1/datasets", data);
  $("#dataset-result").textContent = `Dataset ${dataset.name}: ${dataset.cases.length} case(s), id ${dataset.id}`;
  await refreshDatasets(dataset.id);
}

/** The fine-tuning form's dataset choice: the project's datasets, newest first (``chosen`` selected). */
export async function refreshDatasets(chosen) {
  const select = $("#finetune-form").elements.dataset_id;
  const keep = chosen ?? select.value;
  const datasets = await getJson("/v1/datasets");
  const labels = (d) => Object.values(d.labels).join(", ");
  select.replaceChildren(
    el("option", { value: "" }, datasets.length ? "choose a dataset" : "create a dataset first"),
    ...datasets.map((d) =>
      el("option", { value: d.id, selected: d.id === keep }, `${d.name} (${d.cases.length} case(s): ${labels(d)})`),
    ),
  );
}

function diceTable(candidate, comparison) {
  // Both versions on the candidate's held-out cases (the comparison), by organ; organs production lacks after.
  const perLabel = comparison.per_label ?? {};
  const own = candidate.card?.metrics?.dice ?? {};
  const fmt = (v) => (typeof v === "number" ? v.toFixed(3) : "–");
  const head = el("tr", {}, el("th", {}, "Organ"), el("th", {}, `${candidate.name} v${candidate.version} (candidate)`));
  const compared = comparison.production_version !== undefined && Object.keys(perLabel).length > 0;
  if (compared) head.append(el("th", {}, `v${comparison.production_version} (production)`));
  const organs = [...Object.keys(perLabel), ...Object.keys(own).filter((organ) => !(organ in perLabel))];
  const rows = organs.map((organ) => {
    const row = el("tr", {}, el("td", {}, organ), el("td", {}, fmt(perLabel[organ]?.candidate ?? own[organ])));
    if (compared) row.append(el("td", {}, fmt(perLabel[organ]?.production)));
    return row;
  });
  return el("table", { id: "dice-table" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

async function showResult(result) {
  const candidate = await getJson(`/v1/models/${encodeURIComponent(result.model)}/versions/${result.version}`);
  const comparison = candidate.comparison ?? {};
  const same =
    comparison.candidate_score !== undefined
      ? `On the candidate's ${comparison.cases} held-out case(s): candidate mean Dice ${comparison.candidate_score.toFixed(3)}, ` +
        `production ${comparison.production_score.toFixed(3)} (the organs both segment).`
      : (comparison.note ?? "");
  const changes = describeChanges(candidate.label_changes ?? {});
  $("#finetune-result").replaceChildren(
    el("h3", {}, `Candidate ${result.model} v${result.version}`),
    el("p", { className: "hint" }, same),
    ...(changes ? [el("p", { className: "warning" }, `Its labels differ from production's: it ${changes}.`)] : []),
    diceTable(candidate, comparison),
    el("p", {}, "Promote or roll back on the ", el("a", { href: "#models" }, "Models"), " tab."),
  );
}

/** Options of a form: its JSON box, then the fields it shows. */
function formOptions(form) {
  const text = form.elements.options.value.trim();
  let options;
  try {
    options = text ? JSON.parse(text) : {};
  } catch (error) {
    throw new Error(`more options: not JSON (${error.message})`);
  }
  options.steps = Number(form.elements.steps.value);
  return options;
}

async function startPretrain(form) {
  const f = form.elements;
  const study_ids = [...f.study_ids.selectedOptions].map((o) => o.value);
  if (!study_ids.length) throw new Error("choose the studies to pre-train on (upload them on the Studies tab)");
  const body = { study_ids, method: f.method.value, name: f.name.value.trim(), options: formOptions(form) };
  const accepted = await postJson("/v1/pretrains", body);
  say("");
  $("#pretrain-result").textContent = "";
  const job = await followJob($("#pretrain-job"), accepted.job_id, "Pre-training", (update) => {
    const m = update.progress.metrics ?? {};
    if (typeof m.loss === "number") $("#pretrain-result").textContent = `step ${m.step} of ${m.steps}: loss ${m.loss.toFixed(3)}`;
  });
  if (job.state !== "succeeded") {
    say(`Pre-training ${job.state}: ${job.error ?? "no reason recorded"}`);
    return;
  }
  await refreshModels();
  const base = `${job.result.model}:${job.result.version}`;
  $("#finetune-form").elements.base_model.value = base;
  $("#pretrain-result").textContent =
    `Pre-trained ${job.result.model} v${job.result.version}: chosen under "Start from"; fine-tune it on a labelled dataset.`;
}

async function startFinetune(form) {
  const f = form.elements;
  const options = formOptions(form);
  options.validate_every = Number(f.validate_every.value);
  if (!f.dataset_id.value) throw new Error("choose the dataset to fine-tune on (create one above)");
  const body = { dataset_id: f.dataset_id.value, options };
  if (f.base_model.value) body.base_model = f.base_model.value;
  if (f.name.value.trim()) body.name = f.name.value.trim();
  const accepted = await postJson("/v1/finetunes", body);
  say("");
  chart.clear();
  $("#finetune-result").replaceChildren();
  const job = await followJob($("#finetune-job"), accepted.job_id, "Fine-tuning", (update) => {
    const m = update.progress.metrics ?? {};
    if (typeof m.step !== "number") return;
    if (typeof m.loss === "number") chart.add("loss", m.step, m.loss);
    if (typeof m.val_mean_dice === "number") chart.add("val Dice", m.step, m.val_mean_dice);
    $("#curve").dataset.points = String(chart.series.reduce((n, s) => n + s.points.length, 0));
  });
  if (job.state !== "succeeded") {
    say(`Fine-tuning ${job.state}: ${job.error ?? "no reason recorded"}`);
    return;
  }
  await Promise.all([showResult(job.result), refreshModels()]);
}

export function initTraining() {
  chart = new LineChart($("#curve"), [
    { name: "loss", color: "#c0392b" },
    { name: "val Dice", color: "#2471a3", min: 0, max: 1 },
  ]);
  chart.render();
  addCase();
  $("#add-case").addEventListener("click", addCase);
  $("#dataset-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => createDataset(event.target));
  });
  $("#pretrain-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => startPretrain(event.target));
  });
  $("#finetune-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => startFinetune(event.target));
  });
}
