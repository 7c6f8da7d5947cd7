// Overview of one project: runs per bucket with success rate, p50/p95 run duration, tokens
// and cost over time (GET /v1/projects/{p}/timeseries), and the window's top tools, failing
// tools and models (GET /v1/projects/{p}/summary).

import { get } from "./api.js";
import { navigate } from "./main.js";
import { timeChart } from "./charts.js";
import { fmtCost, fmtMs, fmtNum, fmtPct, h, notice } from "./util.js";

export const WINDOWS = { 24: ["last 24 h", 24, 3600e3], 168: ["last 7 days", 28, 6 * 3600e3], 720: ["last 30 days", 30, 86400e3] };

// Runs at most `limit` promises at once: the buckets are queries on a shared server.
export async function pooled(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; results[i] = await work(items[i], i); } };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function projectPicker(projects, current, path, params) {
  const picker = h("select", { name: "project", "aria-label": "Project",
    onchange: (e) => { const next = new URLSearchParams(params); next.set("project", e.target.value); navigate(`${path}?${next}`); } },
  projects.map((p) => h("option", { value: p.project_id, selected: p.project_id === current }, p.project_id)));
  return picker;
}

export function windowPicker(hours, path, params) {
  return h("select", { name: "hours", "aria-label": "Window",
    onchange: (e) => { const next = new URLSearchParams(params); next.set("hours", e.target.value); navigate(`${path}?${next}`); } },
  Object.entries(WINDOWS).map(([v, [label]]) => h("option", { value: v, selected: Number(v) === hours }, label)));
}

function table(headers, rows) {
  return h("table", { class: "compact" }, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "none"))));
}

export async function renderOverview(el, params, signal) {
  const { projects } = await get("/v1/projects", null, signal);
  el.append(h("h1", {}, "Overview"));
  if (!projects.length) { el.append(notice("No projects with runs yet.")); return; }
  const project = params.get("project") || projects[0].project_id;
  const hours = WINDOWS[params.get("hours")] ? Number(params.get("hours")) : 24;
  const [, buckets, width] = WINDOWS[hours];
  el.append(h("div", { class: "filters" }, h("label", {}, "Project ", projectPicker(projects, project, "/overview", params)),
    h("label", {}, "Window ", windowPicker(hours, "/overview", params)),
    h("a", { href: `/runs?project_id=${encodeURIComponent(project)}` }, "runs of this project →")));
  const end = Math.ceil(Date.now() / width) * width;
  const window = { since: new Date(end - buckets * width).toISOString(), until: new Date(end).toISOString() };
  const base = `/v1/projects/${encodeURIComponent(project)}`;
  const [total, { buckets: series }] = await Promise.all([
    get(`${base}/summary`, window, signal), get(`${base}/timeseries`, { ...window, buckets }, signal)]);
  const starts = series.map((b) => new Date(b.start).getTime());
  const pick = (key) => series.map((s) => s[key]);
  el.append(h("dl", { class: "facts big" },
    ...[["Runs", fmtNum(total.runs)], ["Success rate", fmtPct(total.success_rate)], ["Failed runs", fmtNum(total.error_runs)],
      ["In progress", fmtNum(total.in_progress_runs)], ["p95 run", fmtMs(total.p95_run_duration_ms)],
      ["p95 step", fmtMs(total.p95_step_latency_ms)], ["Tokens", fmtNum(total.total_tokens)], ["Cost", fmtCost(total.cost_usd)],
      ["Runbook pass rate", fmtPct(total.validation && total.validation.pass_rate)]]
      .map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v)))));
  el.append(h("div", { class: "charts" },
    timeChart({ title: "Runs and success rate", times: starts, format: fmtNum, rightFormat: fmtPct, rightMax: 1,
      series: [{ name: "ok", kind: "bar", color: "#34d399", values: pick("ok_runs") },
        { name: "error", kind: "bar", color: "#f87171", values: pick("error_runs") },
        { name: "in progress", kind: "bar", color: "#93c5fd", values: pick("in_progress_runs") },
        { name: "success rate", kind: "line", axis: "right", color: "#1f2937", values: pick("success_rate") }] }),
    timeChart({ title: "Run duration", times: starts, format: fmtMs,
      series: [{ name: "p50", kind: "line", color: "#60a5fa", values: pick("p50_run_duration_ms") },
        { name: "p95", kind: "line", color: "#f59e0b", values: pick("p95_run_duration_ms") }] }),
    timeChart({ title: "Tokens", times: starts, format: fmtNum,
      series: [{ name: "input", kind: "bar", color: "#a78bfa", values: pick("input_tokens") },
        { name: "output", kind: "bar", color: "#f472b6", values: pick("output_tokens") }] }),
    timeChart({ title: "Cost (USD)", times: starts, format: fmtCost,
      series: [{ name: "cost", kind: "bar", color: "#fbbf24", values: pick("cost_usd") }] })));
  const runsLink = (extra) => `/runs?${new URLSearchParams({ project_id: project, ...extra })}`;
  el.append(h("div", { class: "grid-3" },
    h("section", { class: "card" }, h("h2", {}, "Top tools"), table(["Tool", "Calls", "Errors", "p95"],
      total.top_tools.map((t) => h("tr", {}, h("td", {}, h("a", { href: runsLink({ tool: t.tool }) }, t.tool)),
        h("td", { class: "num" }, fmtNum(t.calls)), h("td", { class: "num" + (t.errors ? " err" : "") }, fmtNum(t.errors)),
        h("td", { class: "num" }, fmtMs(t.p95_latency_ms)))))),
    h("section", { class: "card" }, h("h2", {}, "Top failing tools"), table(["Tool", "Failures", "Calls"],
      total.top_failing_tools.map((t) => h("tr", {}, h("td", {}, h("a", { href: runsLink({ tool: t.tool, has_errors: "true" }) }, t.tool)),
        h("td", { class: "num err" }, fmtNum(t.count)), h("td", { class: "num" }, fmtNum(t.calls)))))),
    h("section", { class: "card" }, h("h2", {}, "Models"), table(["Model", "Calls", "Tokens", "Cost"],
      total.models.map((m) => h("tr", {}, h("td", {}, h("a", { href: runsLink({ model: m.model }) }, m.model)),
        h("td", { class: "num" }, fmtNum(m.calls)), h("td", { class: "num" }, fmtNum(m.input_tokens + m.output_tokens)),
        h("td", { class: "num" }, fmtCost(m.cost_usd))))))));
  el.dataset.ready = "true";
  performance.mark("agenttrail:overview-ready");  // what bench/ui_bench.py times
}
