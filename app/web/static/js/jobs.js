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

export function initJobs() {
  onJobs(render);
  window.addEventListener("hashchange", async () => {
    if (location.hash !== "#jobs") return;
    for (const id of knownJobIds()) {
      try {
        rememberJob(await getJson(`/v1/jobs/${id}`));
      } catch {
        // a job of another key or a deleted one: leave it out
      }
    }
  });
}
