// Jobs tab: the service's latest jobs (GET /v1/jobs), and live updates of those this tab follows.

import { getJson } from "./api.js";
import { $, el, knownJobIds, onJobs, rememberJob } from "./ui.js";

function render(jobs) {
  $("#job-table tbody").replaceChildren(
    ...[...jobs.values()].reverse().map((job) =>
      el(
        "tr",
        {},
        el("td", {}, job.id.slice(0, 8)),
        el("td", {}, job.kind),
        el("td", {}, job.state),
        el("td", {}, `${Math.round(job.progress.fraction * 100)} %`),
        el("td", {}, job.progress.stage),
        el("td", {}, job.error ?? ""),
      ),
    ),
  );
}

/** Fetch the latest jobs of the service (oldest first, so the table shows the newest on top). */
export async function refreshJobs() {
  const latest = await getJson("/v1/jobs?limit=100");
  for (const job of latest.reverse()) rememberJob(job);
  for (const id of knownJobIds()) {
    if (latest.some((job) => job.id === id)) continue;
    try {
      rememberJob(await getJson(`/v1/jobs/${id}`));
    } catch {
      // a deleted job: leave it out
    }
  }
}

export function initJobs() {
  onJobs(render);
}
