"""Property test: the compiled SQL and the Python reference evaluator agree on random runs.

Random runs (tools, names, kinds, models, arguments, tokens, declared totals, latencies,
statuses, failure categories, tied start times, missing roots) are written through the real writer into chDB; a random runbook is compiled
and one query judges all of an example's runs; each verdict must equal the reference's
(status, rule ids, step ids — and also observed values and messages).
"""

from __future__ import annotations

import itertools
import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenttrail.validator.compiler import Selection, compile_runbook
from agenttrail.validator.parser import parse_runbook
from agenttrail.validator.reference import evaluate
from validator_helpers import step, write_runs

NAMES = ["plan", "search", "fetch", "answer", "shell.exec", "Plan"]
TOOLS = ["", "", "search", "fetch", "fetch_url", "shell.exec", "order_lookup_api"]
ARGS = ["", "{}", '{"url": "https://docs.example.com/a"}', '{"url": "http://evil.com/x"}',
        '{"url": 5}', "[1, 2]", "not json", '{"q": "x", "url": "https://docs.example.com/b"}',
        '{"q": "héllo"}']
GLOBS = ["search", "fetch*", "shell.*", "*", "f?tch", "[fs]*", "order_*", "Plan", "[!p]*"]
# Totals a run declares on its root (seed 000's set_totals / run.end), valid and not.
DECLARED_TOKENS = ["", "40", "200", "007", "abc", "-5", "1e3", "12.5", "9" * 16, " 40", "٣"]
DECLARED_COST = ["", "0.3", "3", "0.05", "x", "1e-3", "0.1.2", "-1", ".5", "2.", "0.2"]
_ids = itertools.count()


def declared(draw) -> dict[str, str]:
    """Sometimes, declared totals under either token key and a cost, valid or hostile."""
    attributes = {}
    if draw(st.integers(0, 2)) == 0:
        key = draw(st.sampled_from(["agenttrail.totals.total_tokens", "agenttrail.totals.tokens"]))
        attributes[key] = draw(st.sampled_from(DECLARED_TOKENS))
    if draw(st.integers(0, 2)) == 0:
        attributes["agenttrail.totals.cost_usd"] = draw(st.sampled_from(DECLARED_COST))
    return attributes


@st.composite
def runs(draw):
    """One run's steps: maybe a root, then children with random fields and tied times."""
    n = draw(st.integers(1, 8))
    has_root = draw(st.booleans()) or draw(st.booleans())
    steps = []
    for i in range(n):
        root = has_root and i == 0
        kind = draw(st.sampled_from(["llm", "tool", "agent", "other", "embedding"]))
        # Often the same call again (a retry, a loop): random fields alone rarely repeat one.
        repeat = len(steps) > 0 and not root and draw(st.integers(0, 2)) == 0
        inp, out = draw(st.integers(0, 60)), draw(st.integers(0, 60))
        steps.append(step(
            f"s{draw(st.integers(0, 99)):02d}_{i}",
            parent_step_id="" if root else "p" * (1 + draw(st.integers(0, 1))),
            name=draw(st.sampled_from(NAMES)), kind=kind,
            tool_name=draw(st.sampled_from(TOOLS)), tool_arguments=draw(st.sampled_from(ARGS)),
            status=draw(st.sampled_from(["ok", "ok", "error", "unset"])),
            start_time=1_700_000_000_000_000_000 + draw(st.integers(0, 5)) * 1000,
            duration_ns=draw(st.sampled_from([0, 1_000_000, 1_500_000_000, 3_000_000_000])),
            input_tokens=inp, output_tokens=out, total_tokens=inp + out,
            cost_usd=draw(st.sampled_from([None, 0.001, 0.1, 0.25, 1.5])),
            attributes=declared(draw),  # counted on roots only
            model=draw(st.sampled_from(["", "gpt-4o", "claude"])),
            failure_category=draw(st.sampled_from(["", "", "", "timeout", "auth", "unknown"])),
        ))
        if repeat:
            previous = steps[-2]
            steps[-1].update({k: previous[k] for k in ("name", "kind", "tool_name", "tool_arguments", "model")},
                             start_time=previous["start_time"] + 1)  # right after it in step order
            steps[-1]["end_time"] = steps[-1]["start_time"] + steps[-1]["duration_ns"]
    return steps


def matchers(draw):
    m = {}
    for key, values in (("name", GLOBS + NAMES), ("tool", GLOBS + TOOLS[2:]), ("kind", ["llm", "tool", "agent"])):
        if draw(st.booleans()):
            m[key] = draw(st.sampled_from(values))
    return m or {"kind": "llm"}


@st.composite
def runbooks(draw):
    """A random runbook as YAML text, using every rule family."""
    rb = {}
    if draw(st.booleans()):
        rb["allowed_tools"] = draw(st.lists(st.sampled_from(GLOBS), max_size=3))
    if draw(st.booleans()):
        rb["denied_tools"] = draw(st.lists(st.sampled_from(GLOBS), min_size=1, max_size=2))
    if draw(st.booleans()):
        rb["required_steps"] = [matchers(draw) for _ in range(draw(st.integers(1, 3)))]
    budgets = {}
    for key, values in (("max_total_tokens", [0, 50, 150]), ("max_input_tokens", [10, 100]),
                        ("max_output_tokens", [10, 100]), ("max_total_cost_usd", [0.0, 0.2, 0.35, 2.0]),
                        ("max_steps", [1, 4]), ("max_llm_calls", [0, 2]), ("max_tool_calls", [1, 3]),
                        ("max_duration_ms", [0.5, 1000, 2000.5]), ("max_errors", [0, 1])):
        if draw(st.integers(0, 3)) == 0:
            budgets[key] = draw(st.sampled_from(values))
    if budgets:
        rb["budgets"] = budgets
    rules = []
    for _ in range(draw(st.integers(0, 2))):
        rule = {"match": matchers(draw)}
        for key, values in (("max_latency_ms", [1, 2000]), ("status", ["ok", "error"]),
                            ("max_count", [0, 1, 2]), ("min_count", [1, 2])):
            if draw(st.booleans()):
                rule[key] = draw(st.sampled_from(values))
        if draw(st.booleans()):
            rule["arguments"] = {"required": ["url"], "url_allowlist": ["https://docs.example.com/*"],
                                 "matches": {"url": "^https://", "q": "^h.llo$"}}
        if len(rule) == 1:
            rule["max_count"] = draw(st.sampled_from([0, 1, 2]))
        rules.append(rule)
    if rules:
        rb["steps"] = rules
    if draw(st.booleans()):
        rb["loops"] = {"max_repeats": draw(st.integers(1, 2)), "max_retries_per_tool": draw(st.integers(0, 1))}
    if draw(st.booleans()):
        rb["forbid_failure_categories"] = draw(st.lists(st.sampled_from(["timeout", "auth", "unknown", "rate_limited"]),
                                                        min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        rb["max_retries"] = draw(st.sampled_from([0, 0, 1, 2]))
    return yaml.safe_dump(rb, sort_keys=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(run_list=st.lists(runs(), min_size=1, max_size=6), text=runbooks())
def test_sql_agrees_with_reference(store, run_list, text):
    runbook = parse_runbook(text)
    by_id = {f"run{next(_ids)}": steps for steps in run_list}
    write_runs(store, "prop", by_id)
    compiled = compile_runbook(runbook)
    sql, params = compiled.bind(Selection(project="prop", run_ids=tuple(by_id)))
    rows = {row["run_id"]: row for row in store.query(sql, params).named_results()}
    assert set(rows) == set(by_id)
    for run_id, steps in by_id.items():
        expected = evaluate(runbook, steps)
        got = compiled.verdict(rows[run_id])
        assert rows[run_id]["status"] == got["status"], run_id
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True), (text, steps)
