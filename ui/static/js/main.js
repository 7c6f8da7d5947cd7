// The app shell: path-based routes (the server answers each with this page), links handled
// without reloads, the back button, and the API key prompt.

import { apiKey, onKeyNeeded, setApiKey } from "./api.js";
import { clear, notice } from "./util.js";
import { renderRuns } from "./runs.js";
import { renderRun } from "./run.js";
import { renderOverview } from "./overview.js";
import { renderFailures } from "./failures.js";
import { renderRunbooks } from "./runbooks.js";

const view = document.getElementById("view");
let current = null; // AbortController of the view on screen: aborted when the route changes

function route(url) {
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const params = url.searchParams;
  const run = path.match(/^\/runs\/([0-9a-fA-F-]{32,36})$/);
  if (run) return ["runs", (el, signal) => renderRun(el, run[1], params, signal)];
  if (path === "/" || path === "/runs") return ["runs", (el, signal) => renderRuns(el, params, signal)];
  if (path === "/overview") return ["overview", (el, signal) => renderOverview(el, params, signal)];
  if (path === "/failures") return ["failures", (el, signal) => renderFailures(el, params, signal)];
  if (path === "/runbooks") return ["runbooks", (el, signal) => renderRunbooks(el, params, signal)];
  return ["", (el) => el.append(notice(`No page at ${path}.`, "error"))];
}

export function render() {
  if (current) current.abort();
  current = new AbortController();
  const [section, draw] = route(new URL(location.href));
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(view);
  Promise.resolve(draw(view, current.signal)).catch((error) => {
    if (error.name === "AbortError") return;
    view.append(notice(error.message, "error"));
  });
}

// Go to an app URL: a new history entry (push) or the current one changed in place (replace,
// for filter edits that should not flood the back button).
export function navigate(href, { replace = false } = {}) {
  const url = new URL(href, location.href);
  if (url.href === location.href) return;
  history[replace ? "replaceState" : "pushState"](null, "", url);
  render();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/v1/") || url.pathname.startsWith("/ui/")) return;
  event.preventDefault();
  navigate(url.href);
  view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
window.addEventListener("popstate", render);

// -- the API key ------------------------------------------------------------------------------
const dialog = document.getElementById("key-dialog");
const keyButton = document.getElementById("key-button");

function askForKey(reason) {
  document.getElementById("key-reason").textContent = reason;
  document.getElementById("key-input").value = "";
  keyButton.hidden = false;
  if (!dialog.open) dialog.showModal();
}

onKeyNeeded((error) => askForKey(apiKey() ? `The server refused this key: ${error.message}` :
  "This server needs an API key to read runs."));
keyButton.addEventListener("click", () => askForKey("Change the API key this page sends."));
document.getElementById("key-form").addEventListener("submit", () => {
  setApiKey(document.getElementById("key-input").value.trim());
  render();
});
document.getElementById("key-forget").addEventListener("click", () => {
  setApiKey("");
  dialog.close();
  render();
});
if (apiKey()) keyButton.hidden = false;

render();
