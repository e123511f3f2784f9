// Small page helpers shared by the tabs: messages, element building, a job's progress line.

import { watchJob } from "./api.js";

export const $ = (selector) => document.querySelector(selector);

/** Show an error (or, with ``info``, a notice) at the top of the page. */
export function say(text, info = false) {
  const box = $("#message");
  box.textContent = text;
  box.className = info ? "info" : "";
  box.hidden = !text;
}

/** Run an async action; show its error instead of losing it. */
export async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    say(error.detail ?? error.message ?? String(error));
    return undefined;
  }
}

/** An element with properties and children: ``el("td", {className: "x"}, "text", otherElement)``. */
export function el(tag, properties = {}, ...children) {
  const element = Object.assign(document.createElement(tag), properties);
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

const jobs = new Map(); // job id -> latest view, for the Jobs tab
const jobListeners = new Set();

export function onJobs(listener) {
  jobListeners.add(listener);
}

function remember(job) {
  jobs.set(job.id, job);
  sessionStorage.setItem("lrc.jobs", JSON.stringify([...jobs.keys()]));
  for (const listener of jobListeners) listener(jobs);
}

export const knownJobIds = () => JSON.parse(sessionStorage.getItem("lrc.jobs") ?? "[]");

/** Follow a job live in a ``.job`` box (title, progress bar, stage); resolves to the final job. */
export async function followJob(box, jobId, title, onUpdate = () => {}) {
  box.hidden = false;
  box.dataset.state = "queued";
  box.querySelector(".job-title").textContent = `${title} (job ${jobId.slice(0, 8)})`;
  const bar = box.querySelector("progress");
  const stage = box.querySelector(".job-stage");
  const final = await watchJob(jobId, (job) => {
    bar.value = job.progress.fraction;
    stage.textContent = `${job.state}${job.progress.stage ? `: ${job.progress.stage}` : ""}`;
    box.dataset.state = job.state;
    remember(job);
    onUpdate(job);
  });
  if (final.state === "failed") stage.textContent = `failed: ${final.error ?? "no reason recorded"}`;
  return final;
}

export { remember as rememberJob };

/** What a label_changes object says, for people. */
export function describeChanges(changes) {
  const parts = [];
  if (changes.added?.length) parts.push(`adds ${changes.added.join(", ")}`);
  if (changes.removed?.length) parts.push(`drops ${changes.removed.join(", ")}`);
  const moved = Object.entries(changes.renumbered ?? {}).map(([name, [from, to]]) => `${name} ${from} → ${to}`);
  if (moved.length) parts.push(`writes other values (${moved.join(", ")})`);
  return parts.join("; ");
}
