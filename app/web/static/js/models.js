// Models tab: every model with its versions, states and held-out Dice; cards; promote and roll back.

import { getJson, postJson } from "./api.js";
import { $, attempt, describeChanges, el, say } from "./ui.js";

let session = { admin: false };

async function showCard(name, version) {
  const data = await getJson(`/v1/models/${encodeURIComponent(name)}/versions/${version}`);
  $("#card-title").textContent = `${name} v${version}`;
  $("#card").textContent = JSON.stringify({ comparison: data.comparison, ...data.card }, null, 2);
}

async function act(path, body, done) {
  await postJson(path, body);
  say(done, true);
  await refreshModels();
}

function versionRow(model, version) {
  const card = el("button", { textContent: "Card" });
  card.addEventListener("click", () => attempt(() => showCard(model.name, version.version)));
  const cells = [
    el("td", {}, `v${version.version}`),
    el("td", { className: `status-${version.status}` }, version.status),
    el(
      "td",
      {},
      version.shared ? `${version.kind} (shared, read-only)` : version.kind,
      ...(Object.keys(version.label_changes ?? {}).length
        ? [el("span", { className: "warning" }, ` labels differ from production: ${describeChanges(version.label_changes)}`)]
        : []),
    ),
    el("td", {}, typeof version.held_out_mean_dice === "number" ? version.held_out_mean_dice.toFixed(3) : "–"),
    el("td", {}, version.created_at ? new Date(version.created_at).toLocaleString() : ""),
  ];
  const actions = el("td", {}, card);
  // Only admins promote (the API refuses others), and shared versions belong to no project: read-only.
  if (session.admin && !version.shared && version.status !== "production" && version.kind === "segmentation") {
    const promote = el("button", { textContent: "Promote" });
    promote.addEventListener("click", () =>
      attempt(async () => {
        const override = session.admin && $(`#override-${model.name}`)?.checked;
        const reason = override ? (prompt("Reason for overriding the gate") ?? "") : "";
        const url = `/v1/models/${encodeURIComponent(model.name)}/versions/${version.version}/promote`;
        await act(url, { override: Boolean(override), reason }, `${model.name} v${version.version} is production`);
      }),
    );
    actions.append(" ", promote);
  }
  const row = el("tr", {}, ...cells, actions);
  row.dataset.version = String(version.version);
  return row;
}

export async function refreshModels() {
  const models = await getJson("/v1/models");
  $("#model-list").replaceChildren(
    ...models.map((model) => {
      const rollback = el("button", { textContent: "Roll back" });
      rollback.addEventListener("click", () =>
        attempt(() =>
          act(`/v1/models/${encodeURIComponent(model.name)}/rollback`, { reason: "" }, `${model.name} rolled back`),
        ),
      );
      const override = session.admin
        ? el("label", {}, el("input", { type: "checkbox", id: `override-${model.name}` }), " override the gate (admin)")
        : null;
      const head = el("tr", {}, ...["Version", "Status", "Kind", "Held-out Dice", "Created", ""].map((t) => el("th", {}, t)));
      const box = el(
        "div",
        { className: "model" },
        el("h3", {}, model.name, " ", el("span", { className: "hint" }, `production: v${model.production_version ?? "none"}`)),
        el("table", {}, el("thead", {}, head), el("tbody", {}, ...model.versions.map((v) => versionRow(model, v)))),
        el("p", {}, session.admin ? rollback : null, " ", override),
      );
      box.dataset.model = model.name;
      return box;
    }),
  );
  /** Versions of one kind as choices ``name:version``, labelled "name vN (what)". */
  const versions = (kind, what) =>
    models.flatMap((m) =>
      m.versions
        .filter((v) => v.kind === kind)
        .map((v) => ({ value: `${m.name}:${v.version}`, text: `${m.name} v${v.version} (${what(v)})`, production: v.status === "production" })),
    );
  const choices = versions("segmentation", (v) => v.status);
  const select = $("#model-select");
  const previous = select.value;
  select.replaceChildren(...choices.map((c) => el("option", { value: c.value, textContent: c.text, selected: c.production })));
  if (choices.some((c) => c.value === previous)) select.value = previous;
  // Fine-tuning starts from scratch, a segmentation model or a self-supervised (pre-trained) backbone.
  const backbones = versions("pretrained", () => "pre-trained");
  const base = $("#finetune-form").elements.base_model;
  const chosen = base.value;
  base.replaceChildren(
    el("option", { value: "", textContent: "scratch" }),
    ...[...backbones, ...choices].map((c) => el("option", { value: c.value, textContent: c.text })),
  );
  base.value = chosen;
}

export function initModels(shared) {
  session = shared;
}
