"""``GET /v1/runs/{run_id}/report``: one run as a Markdown report (seed 001's run_report.md).

Sections: headline, steps by kind, tool calls, retry attempts and outcomes, failure
classification, validations, decisions and quality signals, terminal status.  Every value
that came from a span (names, messages, arguments) is escaped for Markdown and HTML and cut
to a bounded length, so a hostile tool name cannot break a table or inject markup.
"""

from __future__ import annotations

import re
from collections import Counter

# Markdown's active characters; an underscore inside a word (order_lookup) is inert in
# CommonMark and stays readable unescaped.
_SPECIAL = re.compile(r"([\\`*\[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_SPACE = re.compile(r"\s+")
MAX_CELL = 160
MAX_ROWS = 200


def cell(value, limit: int = MAX_CELL) -> str:
    """``value`` as one line of inert Markdown text, at most ``limit`` characters (before escaping)."""
    text = _SPACE.sub(" ", "" if value is None else str(value)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), text.replace("&", "&amp;")) or "—"


def _ms(value) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _table(header: list[str], rows: list[list[str]], total: int | None = None) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    hidden = (total if total is not None else len(rows)) - min(len(rows), MAX_ROWS)
    if hidden > 0:
        lines.append(f"\n… and {hidden} more.")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _headline(run: dict, steps: list[dict], failure: dict | None, names: dict) -> list[str]:
    kinds = Counter(s["kind"] for s in steps)
    retries = (failure or {}).get("retries") or []
    attempts = sum(len(c["attempts"]) - 1 for c in retries)
    exhausted = sum(1 for c in retries if c["outcome"] == "exhausted")
    text = (f"The run executed {_count(len(steps), 'step')} ({_count(kinds.get('llm', 0), 'model call')}, "
            f"{_count(kinds.get('tool', 0), 'tool call')}) with {_count(attempts, 'retry attempt')} "
            f"({_count(exhausted, 'chain')} exhausted) and ended **{run['status']}**")
    if failure and failure.get("root_cause_step_id"):
        text += (f": {cell(failure.get('category') or 'unknown')} at step "
                 f"{cell(names.get(failure['root_cause_step_id'], failure['root_cause_step_id']))} (root cause)")
    return [text + "."]


def _steps_by_kind(steps: list[dict]) -> list[str]:
    rows = {}
    for s in steps:
        kind = rows.setdefault(s["kind"], [0, 0, 0.0])
        kind[0] += 1
        kind[1] += s["status"] == "error"
        kind[2] += s["duration_ns"] / 1e6
    return _table(["kind", "steps", "failed", "total latency"],
                  [[k, str(n), str(f), _ms(t)] for k, (n, f, t) in sorted(rows.items(), key=lambda kv: -kv[1][0])])


def _tool_calls(steps: list[dict]) -> list[str]:
    tools = [s for s in steps if s["kind"] == "tool"]
    if not tools:
        return ["No tool calls."]
    rows = [[str(s["index"]), cell(s["tool_name"] or s["name"]), s["status"], _ms(s["duration_ns"] / 1e6),
             cell(s["attributes"].get("agenttrail.step.attempt", "")), cell(s.get("failure_category") or ""),
             cell(s["status_message"], 80)] for s in tools]
    return _table(["#", "tool", "status", "latency", "attempt", "failure", "message"], rows)


def _retries(failure: dict | None, names: dict) -> list[str]:
    chains = (failure or {}).get("retries") or []
    if not chains:
        return ["No retries."]
    rows = []
    for chain in chains:
        target = f"{chain['kind']} {chain.get(chain['kind'], '')}"
        outcomes = ", ".join(f"{a['attempt']}: {a['status']}"
                             + (f" ({a['failure_category']})" if a.get("failure_category") else "")
                             for a in chain["attempts"])
        rows.append([cell(target), str(len(chain["attempts"])), cell(outcomes, 300), chain["outcome"],
                     "yes" if chain.get("same_arguments") else "no"])
    return _table(["target", "attempts", "attempt outcomes", "outcome", "same arguments"], rows)


def _failure(failure: dict | None, steps: list[dict], names: dict) -> list[str]:
    failed = [s for s in steps if s["status"] == "error" or s.get("failure_category")]
    if not failure and not failed:
        return ["No step failed."]
    lines = []
    if failure:
        root = failure.get("root_cause_step_id")
        lines.append(f"- **category:** {cell(failure.get('category') or 'none (every failure recovered)')}"
                     f"{' (' + cell(failure['failure_type']) + ')' if failure.get('failure_type') else ''}")
        lines.append(f"- **root cause:** {cell(names.get(root, root)) if root else '—'}"
                     f"{' `' + root + '`' if root else ''}")
        for loop in failure.get("loops") or []:
            lines.append(f"- **loop:** {cell(loop['tool'])} called {loop['count']} times with the same arguments")
        lines.append("")
    rows = [[str(s["index"]), cell(s["name"]), s["kind"], cell(s.get("failure_category") or "unknown"),
             cell(s.get("failure_type") or ""), cell(s["error_type"]), cell(s["status_message"], 120)]
            for s in failed]
    return lines + _table(["#", "step", "kind", "category", "type", "error type", "message"], rows)


def _validations(validations: list[dict]) -> list[str]:
    if not validations:
        return ["Not validated against a runbook."]
    rows = []
    for v in validations:
        reasons = "; ".join(f"{r['rule']}: {r['message']}" for r in v["reasons"][:5])
        rows.append([cell(v["runbook_name"] or "(inline)"), str(v["runbook_version"]), f"**{v['status']}**",
                     cell(reasons, 300), v["created_at"]])
    return _table(["runbook", "version", "status", "reasons", "at"], rows)


def _signals(decisions: list[dict], signals: list[dict]) -> list[str]:
    if not decisions and not signals:
        return ["None recorded."]
    rows = [["decision", cell(d["decision_type"]), cell(d["selected"]), cell(d["reason_code"] or ""),
             "—" if d["confidence"] is None else f"{d['confidence']:.2f}"] for d in decisions]
    rows += [["quality", cell(q["signal_type"]), cell(q["signal_code"]), "true" if q["value"] else "false",
              "—" if q["weight"] is None else f"{q['weight']:g}"] for q in signals]
    return _table(["record", "type", "selected / code", "reason / value", "confidence / weight"], rows)


def _terminal(run: dict) -> list[str]:
    if run["status"] == "in_progress":
        return ["**in_progress** — the root span has not arrived; this report may change."]
    message = f" — {cell(run['status_message'], 300)}" if run["status_message"] else ""
    return [f"**{run['status']}**{message}, ended {run['ended_at']}."]


def render_report(run: dict, steps: list[dict], failure: dict | None, validations: list[dict],
                  decisions: list[dict], signals: list[dict]) -> str:
    """The Markdown report of one run: ``run`` as the API shows it (run_json), ``steps`` as
    stored (execution order), ``failure`` from analyse_run, validations newest first."""
    names = {s["step_id"]: f"{s['name']} (#{s['index']})" for s in steps}
    cost = "unpriced" if run["cost_usd"] is None else f"${run['cost_usd']:.6f}"
    lines = [f"# Run report: {cell(run['agent_name'] or run['service_name'])} `{run['run_id']}`", "",
             f"Project {cell(run['project_id'])} · service {cell(run['service_name'])} · session "
             f"{cell(run['session_id'] or '')} · started {run['started_at']} · {_ms(run['duration_ms'])} · "
             f"{run['total_tokens']:,} tokens · {cost}", ""]
    for title, body in (("Headline", _headline(run, steps, failure, names)), ("Steps by kind", _steps_by_kind(steps)),
                        ("Tool calls", _tool_calls(steps)), ("Retries", _retries(failure, names)),
                        ("Failure classification", _failure(failure, steps, names)),
                        ("Validations", _validations(validations)),
                        ("Decisions and quality signals", _signals(decisions, signals)),
                        ("Terminal status", _terminal(run))):
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)
