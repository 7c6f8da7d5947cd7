"""Verdicts: the shared shape both evaluators produce, and the wording of every reason.

An evaluator only decides *which* rules a run violates, with the observed value and the
proving step ids; :func:`build_verdict` turns those findings into the public verdict, so the
reference evaluator and the SQL path cannot drift apart in wording, order or status logic.

Status:
* ``passed`` — the run has its root span and breaks no rule;
* ``failed`` — it breaks a rule (for a run without a root span: a rule that more spans
  cannot repair — see :data:`REPAIRABLE_RULES`);
* ``incomplete`` — no root span yet (in progress, or the root was lost) and nothing
  definitive is broken; the ``run.incomplete`` reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .runbook import Runbook

INCOMPLETE_RULE = "run.incomplete"
PASSED, FAILED, INCOMPLETE = "passed", "failed", "incomplete"


def is_repairable(rule: str) -> bool:
    """True for rules a later span could still satisfy (a missing required step, too few matches)."""
    return rule == "required_steps" or rule.endswith(".min_count")


@dataclass(frozen=True)
class Finding:
    """One violated rule: ``observed`` is a number or a list of strings."""

    rule: str
    observed: object
    step_ids: tuple[str, ...]


def rule_limit(runbook: Runbook, rule: str):
    """The runbook value a rule compares against, as JSON-friendly data."""
    if rule == "allowed_tools":
        return [g.text for g in runbook.allowed_tools]
    if rule == "denied_tools":
        return [g.text for g in runbook.denied_tools]
    if rule == "required_steps":
        return len(runbook.required_steps)
    if rule.startswith("budgets."):
        return dict(runbook.budgets)[rule.split(".", 1)[1]]
    if rule.startswith("loops."):
        return getattr(runbook.loops, rule.split(".", 1)[1])
    if rule == "forbid_failure_categories":
        return list(runbook.forbid_failure_categories)
    if rule == "max_retries":
        return runbook.max_retries
    if rule.startswith("steps["):
        index, key = rule[6:].split("].", 1)
        step_rule = runbook.steps[int(index)]
        if key.startswith("arguments."):
            value = getattr(step_rule.arguments, key.split(".", 1)[1])
            if key.endswith("url_allowlist"):
                return [g.text for g in value]
            if key.endswith("matches"):
                return {k: r.text for k, r in value}
            return list(value)
        return getattr(step_rule, key)
    return None


def _message(runbook: Runbook, f: Finding, limit) -> str:
    rule, observed = f.rule, f.observed
    if rule == "allowed_tools":
        return f"tools outside the allowed list were called: {', '.join(observed)}"
    if rule == "denied_tools":
        return f"denied tools were called: {', '.join(observed)}"
    if rule == "required_steps":
        missing = runbook.required_steps[int(observed)]
        return (f"required step {int(observed)} ({missing.describe()}) not found in order; "
                f"{int(observed)} of {limit} matched")
    if rule.startswith("budgets."):
        return f"{rule.split('.', 1)[1][4:]} is {_num(observed)}, over the limit of {_num(limit)}"
    if rule.startswith("loops.max_repeats"):
        return f"the same tool call with the same arguments ran {int(observed)} times in a row (limit {limit})"
    if rule.startswith("loops."):
        return f"a tool was retried after failing {int(observed)} times (limit {limit})"
    if rule == "forbid_failure_categories":
        steps = "1 step" if len(f.step_ids) == 1 else f"{len(f.step_ids)} steps"
        return f"{steps} failed with a forbidden category: {', '.join(observed)}"
    if rule == "max_retries":
        retries = "1 retry" if int(observed) == 1 else f"{int(observed)} retries"
        return f"{retries} of a failed tool or model call, more than {limit}"
    index, key = rule[6:].split("].", 1)
    what = f"steps matching {runbook.steps[int(index)].match.describe()}"
    if key == "max_latency_ms":
        return f"{len(f.step_ids)} {what} took longer than {_num(limit)} ms (slowest {_num(observed)} ms)"
    if key == "status":
        return f"{len(f.step_ids)} {what} ended with status {', '.join(observed)} instead of {limit}"
    if key == "max_count":
        return f"{int(observed)} {what}, more than {limit}"
    if key == "min_count":
        return f"{int(observed)} {what}, fewer than {limit}"
    if key == "arguments.required":
        return f"{len(f.step_ids)} {what} lack required arguments: {', '.join(observed)}"
    if key == "arguments.url_allowlist":
        return f"{len(f.step_ids)} {what} used URLs outside the allowlist: {', '.join(observed)}"
    return f"{len(f.step_ids)} {what} have arguments not matching: {', '.join(observed)}"


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_verdict(runbook: Runbook, findings: list[Finding], has_root: bool) -> dict:
    """The public verdict for one run, reasons in the runbook's rule order."""
    order = {rule: i for i, rule in enumerate(runbook.rule_ids())}
    findings = sorted(findings, key=lambda f: order[f.rule])
    reasons = []
    if not has_root:
        reasons.append({"rule": INCOMPLETE_RULE,
                        "message": "the run's root span has not arrived (still running, or the root was lost)",
                        "observed": None, "limit": None, "step_ids": []})
    for f in findings:
        limit = rule_limit(runbook, f.rule)
        observed = f.observed
        if isinstance(observed, float) and observed.is_integer() and not f.rule.endswith(("cost_usd", "_ms")):
            observed = int(observed)
        reasons.append({"rule": f.rule, "message": _message(runbook, f, limit),
                        "observed": observed, "limit": limit, "step_ids": list(f.step_ids)})
    if has_root:
        status = FAILED if findings else PASSED
    else:
        status = FAILED if any(not is_repairable(f.rule) for f in findings) else INCOMPLETE
    return {"status": status, "reasons": reasons}
