// Failures of one project: the failure breakdown from GET /v1/projects/{p}/failures where the
// server has it; otherwise built from what every server answers: the summary's failing tools
// and the failed steps of recent failing runs, grouped by tool, error type and message.

import { ApiError, get } from "./api.js";
import { WINDOWS, pooled, projectPicker, windowPicker } from "./overview.js";
import { fmtNum, h, notice, shortId } from "./util.js";

const RUN_ID = /^[0-9a-f]{32}$/;

function cell(key, value) {
  if (typeof value === "string" && RUN_ID.test(value)) return h("a", { href: `/runs/${value}` }, shortId(value));
  if (Array.isArray(value) && value.every((v) => typeof v === "string" && RUN_ID.test(v))) {
    return value.slice(0, 5).map((v) => [h("a", { href: `/runs/${v}` }, shortId(v)), " "]);
  }
  if (value && typeof value === "object") return h("code", {}, JSON.stringify(value).slice(0, 200));
  return value === null || value === undefined ? "–" : String(value);
}

// Any list of records in the answer becomes a table: the breakdown's shape may grow.
function breakdown(answer) {
  const sections = [];
  for (const [key, value] of Object.entries(answer)) {
    if (!Array.isArray(value) || !value.length || typeof value[0] !== "object") continue;
    const columns = Object.keys(value[0]);
    sections.push(h("section", { class: "card" }, h("h2", {}, key.replace(/_/g, " ")),
      h("table", { class: "compact" }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.replace(/_/g, " "))))),
        h("tbody", {}, value.slice(0, 100).map((row) => h("tr", {}, columns.map((c) => h("td", {}, cell(c, row[c])))))))));
  }
  return sections.length ? sections : [notice("No failures in this window.")];
}

async function fromRuns(project, since, signal) {
  const { runs } = await get("/v1/runs", { project_id: project, has_errors: "true", since, limit: 40 }, signal);
  const answers = await pooled(runs, 4, (run) => get(`/v1/runs/${run.run_id}/steps`, { status: "error" }, signal)
    .catch(() => ({ steps: [] })));
  const groups = new Map();
  answers.forEach((answer, i) => {
    for (const step of answer.steps) {
      const key = JSON.stringify([step.tool || step.name, step.error_type || "", step.error_message || ""]);
      const group = groups.get(key) || { count: 0, runs: [] };
      group.count += 1;
      if (!group.runs.includes(runs[i].run_id)) group.runs.push(runs[i].run_id);
      groups.set(key, group);
    }
  });
  const rows = [...groups.entries()].sort((a, b) => b[1].count - a[1].count).map(([key, g]) => {
    const [where, type, message] = JSON.parse(key);
    return h("tr", {}, h("td", {}, where), h("td", {}, type || "–"), h("td", { class: "message" }, message || "–"),
      h("td", { class: "num" }, g.count), h("td", {}, g.runs.slice(0, 4).map((id) => [h("a", { href: `/runs/${id}` }, shortId(id)), " "])));
  });
  return h("section", { class: "card" }, h("h2", {}, `Errors in the latest ${runs.length} failing runs`),
    rows.length ? h("table", { class: "compact errors" }, h("thead", {}, h("tr", {},
      ["Step / tool", "Error type", "Message", "Steps", "Example runs"].map((x) => h("th", { scope: "col" }, x)))), h("tbody", {}, rows))
      : notice("No failed steps in this window."));
}

export async function renderFailures(el, params, signal) {
  const { projects } = await get("/v1/projects", null, signal);
  el.append(h("h1", {}, "Failures"));
  if (!projects.length) { el.append(notice("No projects with runs yet.")); return; }
  const project = params.get("project") || projects[0].project_id;
  const hours = WINDOWS[params.get("hours")] ? Number(params.get("hours")) : 24;
  const since = new Date(Date.now() - hours * 3600e3).toISOString();
  el.append(h("div", { class: "filters" }, h("label", {}, "Project ", projectPicker(projects, project, "/failures", params)),
    h("label", {}, "Window ", windowPicker(hours, "/failures", params)),
    h("a", { href: `/runs?${new URLSearchParams({ project_id: project, has_errors: "true" })}` }, "failing runs →")));
  const base = `/v1/projects/${encodeURIComponent(project)}`;
  let analysed = null;
  try {
    analysed = await get(`${base}/failures`, { since }, signal);
  } catch (error) {
    if (!(error instanceof ApiError) || ![404, 405, 422].includes(error.status)) throw error;
  }
  const summary = await get(`${base}/summary`, { since }, signal);
  el.append(h("section", { class: "card" }, h("h2", {}, "Failing tools"),
    summary.top_failing_tools.length ? h("table", { class: "compact" }, h("thead", {}, h("tr", {},
      ["Tool", "Failures", "Calls", "Failure rate"].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, summary.top_failing_tools.map((t) => h("tr", {},
      h("td", {}, h("a", { href: `/runs?${new URLSearchParams({ project_id: project, tool: t.tool, has_errors: "true" })}` }, t.tool)),
      h("td", { class: "num err" }, fmtNum(t.count)), h("td", { class: "num" }, fmtNum(t.calls)),
      h("td", { class: "num" }, t.calls ? `${((t.count / t.calls) * 100).toFixed(1)}%` : "–")))))
      : notice("No tool failed in this window.")));
  if (analysed) el.append(...breakdown(analysed));
  else el.append(await fromRuns(project, since, signal));
  el.dataset.ready = "true";
}
