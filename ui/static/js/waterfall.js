// The waterfall timeline: one row per step, nested by parent, bar offset and width by time.
// Only the rows in view are in the DOM (a 1,000-step run draws ~40 rows), so long runs stay
// fast; subtrees collapse, and a collapsed parent shows when a step inside it failed.

import { fmtMs, h } from "./util.js";

export const ROW_HEIGHT = 24;
const OVERSCAN = 10;

// Milliseconds since the epoch, keeping the microseconds Date would drop (tool calls of a few
// µs would otherwise all start at the same pixel).
export function ms(iso) {
  const fraction = /\.(\d+)/.exec(iso);
  const whole = Date.parse(fraction ? iso.replace(fraction[0], "") : iso);
  return fraction ? whole + Number(`0.${fraction[1]}`) * 1000 : whole;
}

// Steps (API order) → tree: children per step id, roots, and which steps hold a failed step.
export function buildTree(steps) {
  const byId = new Map(steps.map((s) => [s.step_id, s]));
  const children = new Map();
  const roots = [];
  for (const step of steps) {
    const parent = step.parent_step_id && byId.has(step.parent_step_id) ? step.parent_step_id : null;
    if (parent) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(step);
    } else roots.push(step);
  }
  const failedInside = new Set();
  for (const step of steps) {
    if (step.status !== "error") continue;
    let parent = byId.get(step.parent_step_id);
    while (parent && !failedInside.has(parent.step_id)) {
      failedInside.add(parent.step_id);
      parent = byId.get(parent.parent_step_id);
    }
  }
  return { byId, children, roots, failedInside };
}

export class Waterfall {
  constructor(run, { onSelect, rootCause, failedIds, marks }) {
    this.tree = buildTree(run.steps);
    this.onSelect = onSelect;
    this.rootCause = rootCause || null;
    this.failedIds = new Set(failedIds || []);
    this.marks = marks || new Map();
    this.collapsed = new Set();
    this.selected = null;
    const starts = run.steps.map((s) => ms(s.started_at)).filter(Number.isFinite);
    const ends = run.steps.map((s) => (s.ended_at ? ms(s.ended_at) : ms(s.started_at) + (s.latency_ms || 0)));
    this.t0 = starts.length ? Math.min(...starts) : 0;
    this.span = Math.max(1e-3, (ends.length ? Math.max(...ends) : 0) - this.t0, run.duration_ms || 0);
    this.scroller = h("div", { class: "wf-scroll", role: "tree", tabindex: 0, "aria-label": "Steps",
      onscroll: () => this.draw(), onkeydown: (e) => this.key(e) });
    this.canvas = h("div", { class: "wf-canvas" });
    this.scroller.append(this.canvas);
    this.el = h("div", { class: "waterfall" }, this.axis(), this.scroller);
    this.flatten();
  }

  axis() {
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const tick = h("span", { class: "wf-tick" }, fmtMs(this.span * f));
      tick.style.left = `${f * 100}%`;
      return tick;
    });
    return h("div", { class: "wf-axis" }, h("div", { class: "wf-name" }, "Step"), h("div", { class: "wf-track" }, ticks));
  }

  flatten() {
    const rows = [];
    const visit = (step, depth) => {
      rows.push([step, depth]);
      if (!this.collapsed.has(step.step_id)) for (const child of this.tree.children.get(step.step_id) || []) visit(child, depth + 1);
    };
    for (const root of this.tree.roots) visit(root, 0);
    this.rows = rows;
    this.canvas.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.rendered = null;
  }

  draw() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const key = `${first}:${last}:${this.selected}`;
    if (this.rendered === key) return;
    this.rendered = key;
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) fragment.append(this.row(i));
    this.canvas.replaceChildren(fragment);
  }

  row(i) {
    const [step, depth] = this.rows[i];
    const kids = this.tree.children.get(step.step_id);
    const collapsed = this.collapsed.has(step.step_id);
    const failed = step.status === "error" || this.failedIds.has(step.step_id);
    const classes = ["wf-row", `kind-${step.kind}`];
    if (failed) classes.push("wf-failed");
    if (step.step_id === this.rootCause) classes.push("wf-root-cause");
    if (step.step_id === this.selected) classes.push("wf-selected");
    if (collapsed && this.tree.failedInside.has(step.step_id)) classes.push("wf-failed-inside");
    const toggle = kids ? h("button", { type: "button", class: "wf-toggle", tabindex: -1,
      "aria-label": collapsed ? "Expand" : "Collapse",
      onclick: (e) => { e.stopPropagation(); this.toggle(step.step_id); } }, collapsed ? "▸" : "▾")
      : h("span", { class: "wf-toggle" });
    const name = h("div", { class: "wf-name", title: step.name }, toggle,
      h("span", { class: "wf-kind" }, step.kind), " ", step.name,
      failed ? h("span", { class: "wf-mark", title: step.error_message || "failed" }, " ✕") : null,
      step.step_id === this.rootCause ? h("span", { class: "chip chip-error" }, "root cause") : null,
      this.marks.has(step.step_id) ? h("span", { class: "chip" }, this.marks.get(step.step_id)) : null,
      collapsed ? h("span", { class: "muted" }, ` +${this.count(step.step_id)}`) : null);
    name.firstChild.style.marginLeft = `${depth * 14}px`;
    const start = ms(step.started_at) - this.t0;
    const bar = h("div", { class: "wf-bar" });
    bar.style.left = `${Math.max(0, (start / this.span) * 100)}%`;
    bar.style.width = `${Math.max(0.25, ((step.latency_ms || 0) / this.span) * 100)}%`;
    const label = h("span", { class: "wf-dur" }, fmtMs(step.latency_ms));
    label.style.left = `calc(${Math.min(92, ((start + (step.latency_ms || 0)) / this.span) * 100)}% + 4px)`;
    const row = h("div", { class: classes.join(" "), role: "treeitem", dataset: { step: step.step_id },
      "aria-selected": step.step_id === this.selected ? "true" : "false", "aria-level": depth + 1,
      "aria-expanded": kids ? String(!collapsed) : null,
      onclick: () => this.select(step.step_id) }, name, h("div", { class: "wf-track" }, bar, label));
    row.style.top = `${i * ROW_HEIGHT}px`;
    return row;
  }

  count(stepId) {
    let n = 0;
    const stack = [...(this.tree.children.get(stepId) || [])];
    while (stack.length) {
      const s = stack.pop();
      n += 1;
      stack.push(...(this.tree.children.get(s.step_id) || []));
    }
    return n;
  }

  toggle(stepId) {
    if (this.collapsed.has(stepId)) this.collapsed.delete(stepId);
    else this.collapsed.add(stepId);
    this.flatten();
    this.draw();
  }

  // Select a step, expanding its ancestors and scrolling it into view.
  select(stepId, { scroll = false } = {}) {
    const step = this.tree.byId.get(stepId);
    if (!step) return;
    let parent = this.tree.byId.get(step.parent_step_id);
    let expanded = false;
    while (parent) {
      expanded = this.collapsed.delete(parent.step_id) || expanded;
      parent = this.tree.byId.get(parent.parent_step_id);
    }
    if (expanded) this.flatten();
    this.selected = stepId;
    if (scroll) {
      const i = this.rows.findIndex(([s]) => s.step_id === stepId);
      const top = i * ROW_HEIGHT;
      const view = this.scroller.clientHeight;
      if (top < this.scroller.scrollTop || top + ROW_HEIGHT > this.scroller.scrollTop + view) {
        this.scroller.scrollTop = Math.max(0, top - view / 3);
      }
    }
    this.rendered = null;
    this.draw();
    this.onSelect(step);
  }

  key(event) {
    const i = this.rows.findIndex(([s]) => s.step_id === this.selected);
    const [step] = this.rows[Math.max(0, i)] || [];
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 15, PageUp: -15 };
    if (event.key in moves) {
      const next = this.rows[Math.min(this.rows.length - 1, Math.max(0, (i < 0 ? 0 : i + moves[event.key])))];
      if (next) this.select(next[0].step_id, { scroll: true });
    } else if (event.key === "Home" || event.key === "End") {
      const next = this.rows[event.key === "Home" ? 0 : this.rows.length - 1];
      if (next) this.select(next[0].step_id, { scroll: true });
    } else if (step && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      const open = !this.collapsed.has(step.step_id);
      if (this.tree.children.has(step.step_id) && open === (event.key === "ArrowLeft")) this.toggle(step.step_id);
    } else if (event.key === "e" && step) {
      const failed = this.rows.find(([s], j) => j > i && s.status === "error") || this.rows.find(([s]) => s.status === "error");
      if (failed) this.select(failed[0].step_id, { scroll: true });
    } else return;
    event.preventDefault();
  }
}
