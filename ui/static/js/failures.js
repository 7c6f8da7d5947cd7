// Failures of one project: the failure breakdown of GET /v1/projects/{p}/failures (grouped by
// category, tool, fingerprint, agent or model), and the summary's failing tools. A server
// without failure analysis gets a breakdown built from recent failing runs' failed steps.

import { ApiError, get } from "./api.js";
import { WINDOWS, pooled, projectPicker, windowPicker } from "./overview.js";
import { navigate } from "./main.js";
import { ago, fmtNum, h, notice, shortId } from "./util.js";

const GROUPS = { category: "category", tool: "tool", fingerprint: "error fingerprint", agent: "agent", model: "model" };

// Where a group's runs are listed: the run list filter matching the grouping, when there is one.
function groupRuns(project, groupBy, key) {
  const filter = { category: "failure_category", tool: "tool", agent: "agent", model: "model" }[groupBy];
  if (!filter || !key) return null;
  return `/runs?${new URLSearchParams({ project_id: project, [filter]: key, has_errors: "true" })}`;
}

function trend(points, since, until) {
  // One bar per hour of the window; height by failed steps that hour.
  const hours = Math.max(1, Math.round((new Date(until) - new Date(since)) / 3600e3));
  const counts = new Array(Math.min(hours, 24 * 31)).fill(0);
  for (const p of points) {
    const i = Math.floor((new Date(p.hour) - new Date(since)) / 3600e3);
    if (i >= 0 && i < counts.length) counts[i] += p.steps;
  }
  const max = Math.max(1, ...counts);
  const box = h("span", { class: "spark", title: points.map((p) => `${p.hour}: ${p.steps}`).join("\n") });
  for (const c of counts) {
    const bar = h("i", {});
    bar.style.height = `${Math.max(c ? 2 : 0, (c / max) * 18)}px`;
    box.append(bar);
  }
  return box;
}

// The failure breakdown of GET /v1/projects/{p}/failures, grouped as the page's URL says.
function breakdown(answer, project, groupBy) {
  if (!answer.groups.length) return [notice("No failed steps in this window.")];
  return [h("section", { class: "card" }, h("h2", {}, `Failed steps by ${GROUPS[groupBy]} · ${answer.total_runs} run${answer.total_runs === 1 ? "" : "s"} started in the window`),
    h("table", { class: "compact errors" }, h("thead", {}, h("tr", {},
      [GROUPS[groupBy][0].toUpperCase() + GROUPS[groupBy].slice(1), "Runs", "Steps", "Share of runs", "Trend", "Last seen", "Categories", "Latest message", "Example runs"]
        .map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, answer.groups.map((g) => {
      const link = groupRuns(project, groupBy, g.key);
      return h("tr", {}, h("td", {}, link ? h("a", { href: link }, g.key) : h("code", {}, g.key || "–")),
        h("td", { class: "num" }, fmtNum(g.run_count)), h("td", { class: "num err" }, fmtNum(g.step_count)),
        h("td", { class: "num" }, g.share_of_runs === null ? "–" : `${(g.share_of_runs * 100).toFixed(1)}%`),
        h("td", {}, trend(g.trend, answer.since, answer.until)), h("td", {}, ago(g.last_seen)),
        h("td", {}, g.categories.map((c) => h("span", { class: "chip chip-error" }, c))),
        h("td", { class: "message" }, g.sample_message || "–"),
        h("td", {}, g.example_run_ids.slice(0, 3).map((id) => [h("a", { href: `/runs/${id}` }, shortId(id)), " "])));
    }))))];
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
  const groupBy = GROUPS[params.get("group_by")] ? params.get("group_by") : "category";
  let analysed = null;
  try {
    analysed = await get(`${base}/failures`, { since, group_by: groupBy }, signal);
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
  if (analysed) {
    const picker = h("select", { name: "group_by", "aria-label": "Group by", onchange: (e) => {
      const next = new URLSearchParams(params);
      next.set("group_by", e.target.value);
      navigate(`/failures?${next}`);
    } }, Object.entries(GROUPS).map(([v, label]) => h("option", { value: v, selected: v === groupBy }, label)));
    el.querySelector(".filters").append(h("label", {}, "Group by ", picker));
    el.append(...breakdown(analysed, project, groupBy));
  }
  else el.append(await fromRuns(project, since, signal));
  el.dataset.ready = "true";
}
