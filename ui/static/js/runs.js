// The run list: filters as URL parameters (one per API filter), sortable columns, cursor
// paging, and live updates from GET /v1/runs/stream.

import { get, streamRuns } from "./api.js";
import { navigate } from "./main.js";
import { ago, badge, fmtCost, fmtMs, fmtNum, fmtTime, h, notice, shortId } from "./util.js";

const TEXT_FILTERS = ["agent", "tool", "model", "session", "service", "failure_category"];
const WINDOWS = { "": "any time", "1h": "last hour", "24h": "last 24 h", "7d": "last 7 days", "30d": "last 30 days" };
const WINDOW_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const COLUMNS = [
  ["status", "Status"], ["run", "Run"], ["project_id", "Project"], ["started_at", "Started", true],
  ["duration_ms", "Duration", true], ["step_count", "Steps", true], ["error_count", "Errors", true],
  ["total_tokens", "Tokens", true], ["cost_usd", "Cost", true], ["validation", "Validation"],
];

// The API query for the page's URL: every filter passes through unchanged; `window` is the
// page's own shorthand for a `since` relative to now.
export function apiParams(params) {
  const out = {};
  for (const key of ["project_id", "status", "has_errors", "validation_status", "since", "until", "min_cost",
    ...TEXT_FILTERS]) {
    if (params.get(key)) out[key] = params.get(key);
  }
  const window = params.get("window");
  if (window && WINDOW_MS[window] && !out.since) out.since = new Date(Date.now() - WINDOW_MS[window]).toISOString();
  return out;
}

function select(name, value, options, label) {
  return h("label", {}, label, h("select", { name },
    Object.entries(options).map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}

function filterForm(params, projects) {
  const form = h("form", { class: "filters", role: "search" });
  const projectOptions = { "": "all projects" };
  for (const p of projects) projectOptions[p.project_id] = p.project_id;
  if (params.get("project_id")) projectOptions[params.get("project_id")] = params.get("project_id");
  form.append(
    select("project_id", params.get("project_id") || "", projectOptions, "Project"),
    select("status", params.get("status") || "", { "": "any", ok: "ok", error: "error", in_progress: "in progress" }, "Status"),
    select("has_errors", params.get("has_errors") || "", { "": "any", true: "with failed steps", false: "none failed" }, "Failed steps"),
    select("validation_status", params.get("validation_status") || "",
      { "": "any", passed: "passed", failed: "failed", incomplete: "incomplete", none: "never validated" }, "Validation"),
    select("window", params.get("window") || "", WINDOWS, "Started"),
    ...TEXT_FILTERS.map((name) => h("label", {}, name.replace("_", " "),
      h("input", { name, value: params.get(name) || "", maxlength: 256, size: 12, placeholder: "any" }))),
    h("button", { type: "submit" }, "Apply"),
    h("a", { href: "/runs", class: "button-link" }, "Clear"),
  );
  const submit = () => {
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value.trim());
    for (const key of ["sort", "since", "until", "min_cost", "limit"]) if (params.get(key)) next.set(key, params.get(key));
    navigate(`/runs${next.toString() ? "?" + next : ""}`);
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  form.addEventListener("change", (event) => { if (event.target.tagName === "SELECT") submit(); });
  return form;
}

function runRow(run) {
  const failure = run.failure && run.failure.category;
  return h("tr", { dataset: { run: run.run_id }, class: run.status === "error" ? "row-error" : "" },
    h("td", {}, badge(run.status)),
    h("td", {}, h("a", { href: `/runs/${run.run_id}` }, run.agent_name || run.service_name || "run"),
      " ", h("code", { class: "muted" }, shortId(run.run_id)),
      failure ? h("span", { class: "chip chip-error", title: "failure category" }, failure) : null),
    h("td", {}, run.project_id),
    h("td", { title: fmtTime(run.started_at) }, ago(run.started_at)),
    h("td", { class: "num" }, run.status === "in_progress" ? "running" : fmtMs(run.duration_ms)),
    h("td", { class: "num" }, run.step_count),
    h("td", { class: "num" + (run.error_count ? " err" : "") }, run.error_count),
    h("td", { class: "num" }, fmtNum(run.total_tokens)),
    h("td", { class: "num" }, fmtCost(run.cost_usd)),
    h("td", {}, run.validation ? h("span", { class: `badge badge-${run.validation.status}`,
      title: `${run.validation.runbook_name} v${run.validation.runbook_version}` }, run.validation.status) : h("span", { class: "muted" }, "–")));
}

function header(params) {
  const sort = params.get("sort") || "-started_at";
  return h("thead", {}, h("tr", {}, COLUMNS.map(([key, label, sortable]) => {
    if (!sortable) return h("th", { scope: "col" }, label);
    const active = sort.replace(/^-/, "") === key;
    const descending = active ? sort.startsWith("-") : false;
    const next = new URLSearchParams(params);
    next.delete("cursor");
    next.set("sort", active && descending ? key : `-${key}`);
    return h("th", { scope: "col", class: "num", "aria-sort": active ? (descending ? "descending" : "ascending") : "none" },
      h("a", { href: `/runs?${next}`, title: `Sort by ${label.toLowerCase()}` }, label, active ? (descending ? " ▼" : " ▲") : ""));
  })));
}

export async function renderRuns(el, params, signal) {
  const live = h("span", { class: "live", "aria-live": "polite" }, "");
  el.append(h("div", { class: "title-row" }, h("h1", {}, "Runs"), live));
  const query = { ...apiParams(params), sort: params.get("sort") || undefined,
    limit: params.get("limit") || undefined, cursor: params.get("cursor") || undefined };
  // Side by side: the project list (for the filter) and the page of runs.
  const [{ projects }, page] = await Promise.all([get("/v1/projects", null, signal), get("/v1/runs", query, signal)]);
  el.append(filterForm(params, projects));
  const body = h("tbody", {});
  const rows = new Map();
  for (const run of page.runs) {
    const row = runRow(run);
    rows.set(run.run_id, row);
    body.append(row);
  }
  const empty = notice(params.toString() ? "No runs match these filters." : "No runs yet: send traces to the OTLP receiver and they appear here.");
  el.append(h("table", { class: "runs" }, header(params), body));
  if (!page.runs.length) el.append(empty);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  if (params.get("cursor")) {
    const first = new URLSearchParams(params);
    first.delete("cursor");
    pager.append(h("a", { href: `/runs?${first}` }, "← First page"));
  }
  if (page.next_cursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", page.next_cursor);
    pager.append(h("a", { href: `/runs?${next}`, rel: "next" }, "Next page →"));
  }
  el.append(pager);
  el.dataset.ready = "true";
  performance.mark("agenttrail:runs-ready");  // what bench/ui_bench.py times

  // Live: rows on screen are updated in place; new runs go on top when the page shows the
  // newest runs first, else they are counted.
  const newestFirst = !params.get("cursor") && (params.get("sort") || "-started_at") === "-started_at";
  let unseen = 0;
  const counter = h("a", { href: location.pathname + location.search, class: "new-runs", hidden: true });
  el.querySelector(".title-row").append(counter);
  const onRun = (run) => {
    const row = runRow(run);
    row.classList.add("flash");
    const old = rows.get(run.run_id);
    if (old) old.replaceWith(row);
    else if (newestFirst) {
      body.prepend(row);
      empty.remove();
    } else {
      unseen += 1;
      counter.hidden = false;
      counter.textContent = `${unseen} new or changed run${unseen > 1 ? "s" : ""}: refresh`;
      return;
    }
    rows.set(run.run_id, row);
  };
  const states = { live: "● live", reconnecting: "○ reconnecting…", off: "live updates off" };
  streamRuns(apiParams(params), onRun, signal, (state) => { live.textContent = states[state]; live.dataset.state = state; });
}

