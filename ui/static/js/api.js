// The REST API client: every view reads through here. With API keys configured the key is
// sent as x-api-key on every request, including the live stream (read with fetch(), so the
// key never goes into a URL).

const KEY_ITEM = "agenttrail.apiKey";
let keyListener = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error ? error.message : `HTTP ${status}`);
    this.status = status;
    this.code = error ? error.code : "error";
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
}

// Called with the failed request's error when the server wants a (different) key.
export function onKeyNeeded(listener) {
  keyListener = listener;
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { "x-api-key": key, ...extra } : extra;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") search.set(k, v);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function request(method, path, { params, body, signal } = {}) {
  const init = { method, headers: headers(body ? { "content-type": "application/json" } : {}), signal };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path + query(params), init);
  let payload = null;
  try { payload = await response.json(); } catch { /* an empty or non-JSON body */ }
  if (!response.ok) {
    const error = new ApiError(response.status, payload);
    if (response.status === 401) keyListener(error);
    throw error;
  }
  return payload;
}

export const get = (path, params, signal) => request("GET", path, { params, signal });
export const post = (path, body) => request("POST", path, { body });

// Follows GET /v1/runs/stream: calls onRun(run) for each run event until signal aborts.
// Reconnects after a pause when the connection drops (server restart, network).
export async function streamRuns(params, onRun, signal, onState = () => {}) {
  while (!signal.aborted) {
    try {
      const response = await fetch("/v1/runs/stream" + query(params), { headers: headers(), signal });
      if (!response.ok) {
        onState("off");
        if (response.status === 401 || response.status === 422) return;
      } else {
        onState("live");
        await readEvents(response.body, (event, data) => { if (event === "run") onRun(JSON.parse(data)); });
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onEvent(event, data.join("\n"));
    }
  }
}
