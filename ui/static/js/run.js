// One run: header, waterfall timeline, the selected step's panel, the latest validation with
// links to the steps its reasons cite, and "validate against runbook…".

import { ApiError, get, post, streamRuns } from "./api.js";
import { render } from "./main.js";
import { Waterfall } from "./waterfall.js";
import { append, badge, fmtCost, fmtMs, fmtNum, fmtTime, h, notice, pretty } from "./util.js";

// Attributes that carry captured content: shown as messages, not as one line of a table.
const CONTENT = /(^|\.)(messages|input\.value|output\.value|prompt|completion|system_instructions)(\.|$)|^gen_ai\.(input|output)\./;

function fact(label, value, cls) {
  return h("div", { class: "fact" }, h("dt", {}, label), h("dd", { class: cls || "" }, value));
}

function header(run) {
  const failure = run.failure;
  return h("section", { class: "run-header" },
    h("div", { class: "title-row" }, h("h1", {}, run.agent_name || run.service_name || "run"), badge(run.status),
      run.validation ? h("span", { class: `badge badge-${run.validation.status}` }, `runbook ${run.validation.status}`) : null,
      failure && failure.category ? h("span", { class: "chip chip-error" }, failure.category) : null),
    h("div", { class: "muted ids" }, h("code", {}, run.run_id), " · project ", h("a", { href: `/runs?project_id=${encodeURIComponent(run.project_id)}` }, run.project_id),
      run.session_id ? [" · session ", h("a", { href: `/runs?session=${encodeURIComponent(run.session_id)}` }, run.session_id)] : null,
      run.service_name ? ` · service ${run.service_name}` : null),
    run.status_message ? h("p", { class: "error-text" }, run.status_message) : null,
    h("dl", { class: "facts" },
      fact("Started", fmtTime(run.started_at)),
      fact("Duration", run.status === "in_progress" ? "running" : fmtMs(run.duration_ms)),
      fact("Steps", run.step_count), fact("LLM calls", run.llm_calls), fact("Tool calls", run.tool_calls),
      fact("Failed steps", run.error_count, run.error_count ? "err" : ""),
      fact("Tokens", `${fmtNum(run.total_tokens)} (${fmtNum(run.input_tokens)} in / ${fmtNum(run.output_tokens)} out)`),
      fact("Cost", fmtCost(run.cost_usd) + (run.unpriced_llm_calls ? ` + ${run.unpriced_llm_calls} unpriced` : "")),
      run.root_missing ? fact("Root", "not arrived yet", "err") : null,
      run.orphan_count ? fact("Orphans", run.orphan_count) : null));
}

// The run's failure block (failure analysis): root cause, retry chains and loops, each step a
// link into the waterfall. Absent on servers without failure analysis: nothing is drawn.
function failureBlock(run, select) {
  const failure = run.failure;
  if (!failure) return null;
  const stepLink = (id, label) => h("button", { type: "button", class: "link step-link", onclick: () => select(id) }, label || id.slice(0, 8));
  const retries = failure.retries || [];
  const loops = failure.loops || [];
  const report = h("pre", { class: "code" }, "Loading…");
  const rca = h("details", { ontoggle: (e) => {
    if (!e.target.open || report.dataset.loaded) return;
    report.dataset.loaded = "1";
    get(`/v1/runs/${run.run_id}/rca`).then((body) => { report.textContent = JSON.stringify(body, null, 2); })
      .catch((error) => { report.textContent = error.message; });
  } }, h("summary", {}, "Root-cause report"), report);
  return h("section", { class: "failure card" }, h("h2", {}, "Failure analysis"), h("dl", { class: "facts" },
    fact("Category", failure.category ||
      (retries.length && retries.every((r) => r.outcome === "recovered") ? "none: every failure recovered" : "–")),
    failure.failure_type ? fact("Type", failure.failure_type) : null,
    failure.root_cause_step_id ? fact("Root cause", stepLink(failure.root_cause_step_id)) : null,
    fact("Failed steps", failure.failed_step_ids.length ? failure.failed_step_ids.map((id) => [stepLink(id), " "]) : "none"),
    fact("Retries", retries.length), fact("Loops", loops.length)),
  retries.length ? h("ul", { class: "reasons" }, retries.map((chain) => h("li", {},
    `${chain.kind} `, h("code", {}, chain[chain.kind] || ""), ` tried ${chain.attempts.length} times, `,
    h("span", { class: chain.outcome === "recovered" ? "" : "err" }, chain.outcome),
    chain.same_arguments ? " (same arguments)" : " (arguments changed)", " — attempts ",
    chain.attempts.map((a) => [stepLink(a.step_id, `#${a.attempt}`), " "])))) : null,
  loops.length ? h("ul", { class: "reasons" }, loops.map((loop) => h("li", {},
    "loop: ", h("code", {}, loop.tool), ` called ${loop.count} times in a row with the same arguments — `,
    loop.step_ids.slice(0, 12).map((id, i) => [stepLink(id, `#${i + 1}`), " "])))) : null,
  rca);
}

// Labels the waterfall puts on steps that are retry attempts or loop calls.
function stepMarks(failure) {
  const marks = new Map();
  for (const chain of (failure && failure.retries) || []) {
    for (const a of chain.attempts) marks.set(a.step_id, `attempt ${a.attempt}/${chain.attempts.length}`);
  }
  for (const loop of (failure && failure.loops) || []) {
    loop.step_ids.forEach((id, i) => marks.set(id, `loop ${i + 1}/${loop.count}`));
  }
  return marks;
}

function kv(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return null;
  return h("table", { class: "kv" }, h("tbody", {}, entries.map(([k, v]) =>
    h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, typeof v === "string" && v.length < 120 ? v : h("pre", {}, pretty(v)))))));
}

export function stepPanel(step) {
  if (!step) return h("aside", { class: "step-panel muted" }, "Select a step to see its details.");
  const attributes = step.attributes || {};
  const content = Object.entries(attributes).filter(([k]) => CONTENT.test(k));
  const rest = Object.fromEntries(Object.entries(attributes).filter(([k]) => !CONTENT.test(k)));
  const tokens = step.total_tokens || step.input_tokens || step.output_tokens;
  return h("aside", { class: "step-panel", "aria-label": "Step details" },
    h("h2", {}, step.name), h("div", {}, badge(step.status), " ", h("span", { class: `kind-tag kind-${step.kind}` }, step.kind),
      step.failure_category ? h("span", { class: "chip chip-error" }, step.failure_category) : null),
    step.status === "error" ? h("div", { class: "error-box", role: "note" },
      h("strong", {}, step.error_type || "error"), step.error_message ? `: ${step.error_message}` : "") : null,
    h("dl", { class: "facts" },
      fact("Step id", h("code", {}, step.step_id)), fact("Started", fmtTime(step.started_at)),
      fact("Latency", fmtMs(step.latency_ms)),
      step.operation ? fact("Operation", step.operation) : null,
      step.tool ? fact("Tool", step.tool) : null, step.tool_call_id ? fact("Tool call", step.tool_call_id) : null,
      step.model ? fact("Model", `${step.model}${step.provider ? " · " + step.provider : ""}`) : null,
      tokens ? fact("Tokens", `${step.input_tokens} in / ${step.output_tokens} out` +
        (step.cache_read_tokens ? ` / ${step.cache_read_tokens} cached` : "") +
        (step.reasoning_tokens ? ` / ${step.reasoning_tokens} reasoning` : "") + ` = ${step.total_tokens}`) : null,
      step.cost_usd !== null && step.cost_usd !== undefined ? fact("Cost", `${fmtCost(step.cost_usd)}${step.cost_source ? " (" + step.cost_source + ")" : ""}`) : null,
      step.finish_reasons && step.finish_reasons.length ? fact("Finish", step.finish_reasons.join(", ")) : null,
      step.failure_type ? fact("Failure type", step.failure_type) : null,
      step.error_fingerprint ? fact("Fingerprint", h("code", {}, step.error_fingerprint)) : null,
      step.truncated ? fact("Truncated", "yes: long values were cut at ingest") : null),
    step.tool_arguments ? [h("h3", {}, "Tool arguments"), h("pre", { class: "code" }, pretty(step.tool_arguments))] : null,
    content.length ? [h("h3", {}, "Messages"), content.map(([k, v]) => h("details", { open: true },
      h("summary", {}, k), h("pre", { class: "code" }, pretty(v))))] : null,
    step.events && step.events.length ? [h("h3", {}, `Events (${step.events.length})`), step.events.map((e) =>
      h("details", {}, h("summary", {}, `${e.name} · ${fmtTime(e.time)}`), kv(e.attributes)))] : null,
    Object.keys(rest).length ? [h("h3", {}, "Attributes"), kv(rest)] : null,
    step.unmapped_usage && Object.keys(step.unmapped_usage).length ? [h("h3", {}, "Other usage"), kv(step.unmapped_usage)] : null);
}

function validationBlock(validation, select) {
  if (!validation) return h("p", { class: "muted" }, "Not validated against a runbook yet.");
  return h("div", {},
    h("p", {}, badge(validation.status), " against ", h("a", { href: `/runbooks?name=${encodeURIComponent(validation.runbook_name || "")}` },
      `${validation.runbook_name || "inline runbook"}${validation.runbook_version ? " v" + validation.runbook_version : ""}`),
      validation.created_at ? h("span", { class: "muted" }, ` · ${fmtTime(validation.created_at)}`) : null),
    validation.reasons && validation.reasons.length ? h("ul", { class: "reasons" }, validation.reasons.map((r) =>
      h("li", {}, h("code", {}, r.rule), " ", r.message, (r.step_ids || []).length ? [" — steps ",
        r.step_ids.map((id) => h("button", { type: "button", class: "link step-link", onclick: () => select(id) }, id.slice(0, 8)))] : null)))
      : null);
}

function validateForm(run, onResult) {
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const chooser = h("select", { name: "runbook" }, h("option", { value: "" }, "paste YAML below"));
  const yaml = h("textarea", { name: "yaml", rows: 6, maxlength: 262144, placeholder: "name: my-runbook\nallowed_tools: [search]" });
  get("/v1/runbooks", { project_id: run.project_id }).then(({ runbooks }) => {
    for (const rb of runbooks) chooser.append(h("option", { value: rb.name }, `${rb.name} v${rb.version}`));
    if (runbooks.length) chooser.value = runbooks[0].name;
  }).catch(() => {});
  const form = h("form", { class: "validate-form" }, h("label", {}, "Runbook ", chooser), yaml,
    h("button", { type: "submit" }, "Validate"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = chooser.value ? { runbook: chooser.value } : { runbook_yaml: yaml.value };
    status.textContent = "Validating…";
    try {
      onResult(await post(`/v1/runs/${run.run_id}/validate`, body));
      status.textContent = "";
    } catch (error) {
      status.textContent = error.message;
      status.className = "error-text";
    }
  });
  return h("details", { class: "validate" }, h("summary", {}, "Validate against runbook…"), form);
}

export async function renderRun(el, runId, params, signal) {
  let run;
  try {
    run = await get(`/v1/runs/${runId}`, null, signal);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      el.append(notice(`Run ${runId} was not found (or your key may not read its project).`, "error"));
      return;
    }
    throw error;
  }
  const failure = run.failure || null;
  const panel = h("div", { class: "panel-slot" });
  const waterfall = new Waterfall(run, {
    rootCause: failure && failure.root_cause_step_id, failedIds: failure && failure.failed_step_ids,
    marks: stepMarks(failure),
    onSelect: (step) => {
      panel.replaceChildren(stepPanel(step));
      const url = new URL(location.href);
      url.searchParams.set("step", step.step_id);
      history.replaceState(null, "", url);
    },
  });
  const select = (id) => waterfall.select(id, { scroll: true });
  const validation = h("div", {}, validationBlock(run.validation, select));
  append(el, [h("p", {}, h("a", { href: "/runs" }, "← Runs")),
    header(run), failureBlock(run, select),
    h("div", { class: "run-body" }, h("section", { class: "timeline", "aria-label": "Timeline" },
      h("h2", {}, `Timeline · ${run.steps.length} steps`, h("span", { class: "muted hint" }, " ↑↓ move · ←→ collapse · e next failure")),
      waterfall.el), panel),
    h("section", { class: "card" }, h("h2", {}, "Validation"), validation,
      validateForm(run, (result) => validation.replaceChildren(validationBlock(result, select))))]);
  panel.append(stepPanel(null));
  waterfall.draw();
  const wanted = params.get("step") || (failure && failure.root_cause_step_id) ||
    (run.steps.find((s) => s.status === "error") || run.steps[0] || {}).step_id;
  if (wanted) waterfall.select(wanted, { scroll: true });
  el.dataset.ready = "true";
  performance.mark("agenttrail:run-ready");  // what bench/ui_bench.py times
  if (run.status === "in_progress") follow(run, el, signal);
}

// A run still in progress is redrawn (selected step kept: it is in the URL) whenever the live
// stream reports that it changed: new steps, or its end.
function follow(run, el, signal) {
  const live = h("span", { class: "live", "aria-live": "polite" }, "○ connecting…");
  el.querySelector(".run-header .title-row").append(live);
  const states = { live: "● live: redrawn as steps arrive", reconnecting: "○ reconnecting…", off: "live updates off" };
  streamRuns({ project_id: run.project_id }, (changed) => {
    if (changed.run_id !== run.run_id) return;
    if (changed.step_count !== run.step_count || changed.status !== run.status) render();
  }, signal, (state) => { live.textContent = states[state]; live.dataset.state = state; });
}
