// Stored runbooks with their YAML, and links to the runs each one failed or passed.

import { get } from "./api.js";
import { fmtTime, h, notice } from "./util.js";

export async function renderRunbooks(el, params, signal) {
  el.append(h("h1", {}, "Runbooks"));
  const { runbooks } = await get("/v1/runbooks", null, signal);
  if (!runbooks.length) {
    el.append(notice("No stored runbooks. Store one with POST /v1/runbooks or `agenttrail runbook`; a run can also be validated against pasted YAML from its page."));
    return;
  }
  const wanted = params.get("name");
  const runsLink = (rb, status) => `/runs?${new URLSearchParams({ project_id: rb.project_id, validation_status: status })}`;
  el.append(h("table", { class: "compact" }, h("thead", {}, h("tr", {},
    ["Runbook", "Project", "Version", "Applies to", "Automatic", "Stored", "Runs"].map((x) => h("th", { scope: "col" }, x)))),
  h("tbody", {}, runbooks.map((rb) => h("tr", { class: rb.name === wanted ? "wf-selected" : "" },
    h("td", {}, h("a", { href: `/runbooks?${new URLSearchParams({ name: rb.name, project: rb.project_id })}` }, rb.name)),
    h("td", {}, rb.project_id), h("td", { class: "num" }, rb.version),
    h("td", {}, Object.entries(rb.applies_to || {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "all runs"),
    h("td", {}, rb.auto ? "yes" : "no"), h("td", {}, fmtTime(rb.created_at)),
    h("td", {}, h("a", { href: runsLink(rb, "failed") }, "failed"), " · ", h("a", { href: runsLink(rb, "passed") }, "passed")))))));
  const shown = runbooks.find((rb) => rb.name === wanted && (!params.get("project") || rb.project_id === params.get("project")));
  if (shown) {
    el.append(h("section", { class: "card" }, h("h2", {}, `${shown.name} v${shown.version}`),
      h("pre", { class: "code" }, shown.yaml)));
  }
  el.dataset.ready = "true";
}
