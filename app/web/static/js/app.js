// The page: sign in, then tabs for studies, the viewer, fine-tuning, models and jobs.

import { ApiError, getJson, getKey, setKey } from "./api.js";
import { initJobs, refreshJobs } from "./jobs.js";
import { initModels, refreshModels } from "./models.js";
import { initStudies, refreshStudies } from "./studies.js";
import { initTraining, refreshDatasets } from "./training.js";
import { $, attempt, say } from "./ui.js";
import { initViewer } from "./view.js";

export const session = { admin: false };

function showTab(name) {
  const tab = ["studies", "viewer", "training", "models", "jobs"].includes(name) ? name : "studies";
  for (const section of document.querySelectorAll("section.tab")) section.hidden = section.id !== tab;
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("active", link.dataset.tab === tab);
  if (tab === "jobs") attempt(refreshJobs);
}

async function signIn(key) {
  setKey(key);
  try {
    await getJson("/v1/models"); // any viewer may read this: it proves the key
  } catch (error) {
    setKey(null);
    throw error;
  }
  try {
    await getJson("/v1/keys"); // admins only
    session.admin = true;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 403)) throw error;
    session.admin = false;
  }
  document.body.classList.toggle("admin", session.admin);
  $("#signin").hidden = true;
  $("#tabs").hidden = false;
  $("#sign-out").hidden = false;
  $("#who").textContent = session.admin ? "signed in (admin)" : "signed in";
  say("");
  showTab(location.hash.slice(1));
  await Promise.all([refreshStudies(), refreshModels(), refreshDatasets()]);
}

function signOut() {
  setKey(null);
  sessionStorage.removeItem("lrc.jobs");
  location.hash = "";
  location.reload();
}

window.addEventListener("hashchange", () => getKey() && showTab(location.hash.slice(1)));
$("#signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(() => signIn($("#api-key").value.trim()));
});
$("#sign-out").addEventListener("click", signOut);

initStudies();
initViewer();
initTraining();
initModels(session);
initJobs();
if (getKey()) attempt(() => signIn(getKey()));
document.body.dataset.ready = "true";
