// Jobs tab: the jobs started from this browser tab (the API has no list of all jobs), kept up to date.

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

/** Fetch the jobs this tab started (kept in session storage) and show them. */
export async function refreshJobs() {
  for (const id of knownJobIds()) {
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
