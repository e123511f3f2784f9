// The API as the page uses it: the key from sessionStorage as a Bearer token, problem+json errors
// turned into exceptions, and server-sent events read with fetch (EventSource cannot send headers).

const KEY = "lrc.apiKey";

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => (key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY));

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

async function toError(response) {
  let detail = response.statusText;
  try {
    const problem = await response.json();
    detail = problem.detail ?? problem.title ?? detail;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, detail);
}

/** fetch() with the key; throws ApiError unless the answer is 2xx. */
export async function api(path, { method = "GET", json, body, signal } = {}) {
  const headers = { Authorization: `Bearer ${getKey() ?? ""}` };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers, body, signal });
  if (!response.ok) throw await toError(response);
  return response;
}

export const getJson = async (path) => (await api(path)).json();
export const postJson = async (path, json) => (await api(path, { method: "POST", json })).json();

/** POST multipart form data with upload progress (fetch cannot report it); resolves to the JSON answer. */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.setRequestHeader("Authorization", `Bearer ${getKey() ?? ""}`);
    request.responseType = "json";
    request.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded / e.total);
    request.onerror = () => reject(new ApiError(0, "the upload failed: the server could not be reached"));
    request.onload = () => {
      const answer = request.response ?? {};
      if (request.status >= 200 && request.status < 300) resolve(answer);
      else reject(new ApiError(request.status, answer.detail ?? answer.title ?? request.statusText));
    };
    request.send(form);
  });
}

/** Server-sent events of ``path`` as {event, data} objects, until the server closes the stream. */
export async function* events(path, signal) {
  const response = await api(path, { signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // comments keep the connection alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Follow a job until it ends, calling ``onUpdate(job)`` on each change; reconnects if the stream drops. */
export async function watchJob(jobId, onUpdate, signal) {
  for (;;) {
    let last = null;
    try {
      for await (const message of events(`/v1/jobs/${jobId}/events`, signal)) {
        if (message.event !== "job") continue;
        last = JSON.parse(message.data);
        onUpdate(last);
      }
    } catch (error) {
      if (signal?.aborted || (error instanceof ApiError && error.status !== 0 && error.status < 500)) throw error;
    }
    if (last && FINAL.has(last.state)) return last;
    const job = await getJson(`/v1/jobs/${jobId}`);
    onUpdate(job);
    if (FINAL.has(job.state)) return job;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** Download an authenticated file: fetch it, then hand the browser a blob URL to save. */
export async function download(path, filename) {
  const blob = await (await api(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
