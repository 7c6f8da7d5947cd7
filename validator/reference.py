"""The plain-Python reference evaluator: the definition of what every rule means.

It reads one run's steps (dicts with the ``steps`` table's columns) and is written for
clarity, not speed; the SQL compiler must agree with it on every run (property tests check).

Step order — used for ``required_steps``, budget crossings, loops and the order of step ids
in a reason — is ``start_time`` then ``step_id``.  A *tool call* is a step with a non-empty
``tool_name``.  Tokens and cost count ``llm`` steps only, as the runs table does; an llm step
without a price counts 0.  A total the run's root declares (:mod:`agenttrail.storage.declared`)
counts for ``max_total_tokens`` / ``max_total_cost_usd`` when it is the greater.

A step's *failure category* is its ``failure_category`` column (set at ingest, see
docs/failures.md), ``unknown`` for a step with status ``error`` and none.  A *retry* is, as in
the run's failure block (``agenttrail.analysis.runs``), a call of the same tool (kind ``tool``,
by tool name, else step name) or the same model (kinds ``llm``/``embedding``, by model, else
step name) right after that family's previous call failed (it has a failure category).
"""

from __future__ import annotations

import json

from agenttrail.storage.declared import declared_cost, declared_tokens

from .runbook import Runbook
from .verdict import Finding, build_verdict

_BUDGET_VALUE = {
    "max_total_tokens": lambda s: s["total_tokens"] if s["kind"] == "llm" else 0,
    "max_input_tokens": lambda s: s["input_tokens"] if s["kind"] == "llm" else 0,
    "max_output_tokens": lambda s: s["output_tokens"] if s["kind"] == "llm" else 0,
    "max_total_cost_usd": lambda s: (s["cost_usd"] or 0.0) if s["kind"] == "llm" else 0.0,
    "max_steps": lambda s: 1,
    "max_llm_calls": lambda s: int(s["kind"] == "llm"),
    "max_tool_calls": lambda s: int(s["kind"] == "tool"),
    "max_errors": lambda s: int(s["status"] == "error"),
}
_DECLARED = {"max_total_tokens": declared_tokens, "max_total_cost_usd": declared_cost}


def evaluate(runbook: Runbook, steps: list[dict]) -> dict:
    """The verdict for one run given all its steps (see :func:`.verdict.build_verdict`)."""
    steps = sorted(steps, key=lambda s: (s["start_time"], s["step_id"]))
    has_root = any(s["parent_step_id"] == "" for s in steps)
    findings = []
    findings += _tool_policy(runbook, steps)
    findings += _required(runbook, steps)
    findings += _budgets(runbook, steps, has_root)
    for index, rule in enumerate(runbook.steps):
        findings += _step_rule(index, rule, [s for s in steps if rule.match.matches(s)])
    findings += _loops(runbook, [s for s in steps if s["tool_name"] != ""])
    findings += _failures(runbook, steps)
    return build_verdict(runbook, findings, has_root)


def _ids(steps) -> tuple[str, ...]:
    return tuple(s["step_id"] for s in steps)


def _tool_policy(rb: Runbook, steps: list[dict]) -> list[Finding]:
    calls = [s for s in steps if s["tool_name"] != ""]
    out = []
    if rb.allowed_tools is not None:
        bad = [s for s in calls if not any(g.matches(s["tool_name"]) for g in rb.allowed_tools)]
        if bad:
            out.append(Finding("allowed_tools", sorted({s["tool_name"] for s in bad}), _ids(bad)))
    if rb.denied_tools:
        bad = [s for s in calls if any(g.matches(s["tool_name"]) for g in rb.denied_tools)]
        if bad:
            out.append(Finding("denied_tools", sorted({s["tool_name"] for s in bad}), _ids(bad)))
    return out


def _required(rb: Runbook, steps: list[dict]) -> list[Finding]:
    if not rb.required_steps:
        return []
    matched = []  # greedy earliest match is optimal for "is an ordered subsequence"
    for s in steps:
        if len(matched) < len(rb.required_steps) and rb.required_steps[len(matched)].matches(s):
            matched.append(s)
    if len(matched) == len(rb.required_steps):
        return []
    return [Finding("required_steps", len(matched), _ids(matched))]


def _budgets(rb: Runbook, steps: list[dict], has_root: bool) -> list[Finding]:
    out = []
    for key, limit in rb.budgets:
        if key == "max_duration_ms":
            duration_ms, proof = run_duration_ms(steps, has_root)
            if duration_ms > limit:
                out.append(Finding("budgets.max_duration_ms", duration_ms, proof))
            continue
        total, crossing = (0.0 if key == "max_total_cost_usd" else 0), None
        for s in steps:
            total += _BUDGET_VALUE[key](s)
            if crossing is None and total > limit:
                crossing = s
        if key in _DECLARED:  # the greater of the sum and the root's declaration
            declared = [(_DECLARED[key](s), s) for s in steps]
            total = max(total, max(value for value, _ in declared))
            if crossing is None:
                crossing = next((s for value, s in declared if value > limit), None)
        if crossing is not None:
            out.append(Finding(f"budgets.{key}", total, (crossing["step_id"],)))
    return out


def run_duration_ms(steps: list[dict], has_root: bool) -> tuple[float, tuple[str, ...]]:
    """Root span end minus start (first root in step order); without a root, the steps' span."""
    if has_root:
        root = next(s for s in steps if s["parent_step_id"] == "")
        return max(root["end_time"] - root["start_time"], 0) / 1e6, (root["step_id"],)
    return max(max(s["end_time"] for s in steps) - min(s["start_time"] for s in steps), 0) / 1e6, ()


def arguments_of(step: dict) -> dict:
    """The step's tool arguments as a dict; anything but a JSON object reads as no arguments."""
    try:
        value = json.loads(step["tool_arguments"])
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _step_rule(index: int, rule, matched: list[dict]) -> list[Finding]:
    prefix, out = f"steps[{index}].", []
    if rule.max_latency_ms is not None:
        slow = [s for s in matched if s["duration_ns"] / 1e6 > rule.max_latency_ms]
        if slow:
            out.append(Finding(prefix + "max_latency_ms", max(s["duration_ns"] for s in slow) / 1e6, _ids(slow)))
    if rule.status is not None:
        bad = [s for s in matched if s["status"] != rule.status]
        if bad:
            out.append(Finding(prefix + "status", sorted({s["status"] for s in bad}), _ids(bad)))
    if rule.max_count is not None and len(matched) > rule.max_count:
        out.append(Finding(prefix + "max_count", len(matched), _ids(matched[rule.max_count:])))
    if rule.min_count is not None and len(matched) < rule.min_count:
        out.append(Finding(prefix + "min_count", len(matched), _ids(matched)))
    if rule.arguments:
        out += _argument_rules(prefix + "arguments.", rule.arguments, matched)
    return out


def _argument_rules(prefix: str, rules, matched: list[dict]) -> list[Finding]:
    out, parsed = [], [(s, arguments_of(s)) for s in matched]
    if rules.required:
        missing = [(s, [k for k in rules.required if k not in a]) for s, a in parsed]
        bad = [(s, m) for s, m in missing if m]
        if bad:
            out.append(Finding(prefix + "required", sorted({k for _, m in bad for k in m}), _ids(s for s, _ in bad)))
    if rules.url_allowlist:
        bad = [(s, a["url"]) for s, a in parsed if isinstance(a.get("url"), str)
               and not any(g.matches(a["url"]) for g in rules.url_allowlist)]
        if bad:
            out.append(Finding(prefix + "url_allowlist", sorted({u for _, u in bad}), _ids(s for s, _ in bad)))
    if rules.matches:
        failing = [(s, [k for k, r in rules.matches if not (isinstance(a.get(k), str) and r.search(a[k]))])
                   for s, a in parsed]
        bad = [(s, f) for s, f in failing if f]
        if bad:
            out.append(Finding(prefix + "matches", sorted({k for _, f in bad for k in f}), _ids(s for s, _ in bad)))
    return out


def _loops(rb: Runbook, calls: list[dict]) -> list[Finding]:
    out = []
    if rb.loops.max_repeats is not None:
        streaks = []
        for i, s in enumerate(calls):
            same = i > 0 and (s["tool_name"], s["tool_arguments"]) == (calls[i - 1]["tool_name"], calls[i - 1]["tool_arguments"])
            streaks.append(streaks[-1] + 1 if same else 1)
        bad = [s for s, n in zip(calls, streaks) if n > rb.loops.max_repeats]
        if bad:
            out.append(Finding("loops.max_repeats", max(streaks), _ids(bad)))
    if rb.loops.max_retries_per_tool is not None:
        counts, bad, worst = {}, [], 0
        for i, s in enumerate(calls):
            if i > 0 and calls[i - 1]["tool_name"] == s["tool_name"] and calls[i - 1]["status"] == "error":
                counts[s["tool_name"]] = counts.get(s["tool_name"], 0) + 1
                worst = max(worst, counts[s["tool_name"]])
                if counts[s["tool_name"]] > rb.loops.max_retries_per_tool:
                    bad.append(s)
        if bad:
            out.append(Finding("loops.max_retries_per_tool", worst, _ids(bad)))
    return out


def failure_category(step: dict) -> str:
    """The step's failure category; '' when it did not fail."""
    return step["failure_category"] or ("unknown" if step["status"] == "error" else "")


def _family_target(step: dict):
    if step["kind"] == "tool":
        return "tool", step["tool_name"] or step["name"]
    if step["kind"] in ("llm", "embedding"):
        return "model", step["model"] or step["name"]
    return None, None


def retries(steps: list[dict]) -> list[dict]:
    """The retry attempts among ``steps`` (in step order), in step order."""
    previous, out = {}, []  # family -> (target, failed) of its latest call
    for s in steps:
        family, target = _family_target(s)
        if family is None:
            continue
        last = previous.get(family)
        if last is not None and last[0] == target and last[1]:
            out.append(s)
        previous[family] = (target, bool(failure_category(s)))
    return out


def _failures(rb: Runbook, steps: list[dict]) -> list[Finding]:
    out = []
    if rb.forbid_failure_categories:
        bad = [s for s in steps if failure_category(s) in rb.forbid_failure_categories]
        if bad:
            out.append(Finding("forbid_failure_categories", sorted({failure_category(s) for s in bad}), _ids(bad)))
    if rb.max_retries is not None:
        attempts = retries(steps)
        if len(attempts) > rb.max_retries:
            out.append(Finding("max_retries", len(attempts), _ids(attempts[rb.max_retries:])))
    return out
