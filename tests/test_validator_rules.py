"""Each rule and each edge outcome, checked on hand-built runs by both evaluators.

Expected verdicts are worked out by hand from docs/runbooks.md; every case runs through the
reference evaluator and through the compiled SQL over runs written by the real writer.
"""

from __future__ import annotations

import itertools

import pytest

from agenttrail.validator.compiler import Selection, compile_runbook
from agenttrail.validator.parser import parse_runbook
from agenttrail.validator.reference import evaluate
from validator_helpers import step, write_runs

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
_ids = itertools.count()


def support_run(*, root=True, tool_args='{"url": "https://docs.example.com/a"}', fetch_status="ok"):
    """plan (llm) → order_lookup_api → fetch → answer (llm), under an agent root."""
    steps = [
        step("b1", parent_step_id="r", name="plan", kind="llm", start_time=T0 + 1, duration_ns=5 * MS,
             input_tokens=40, output_tokens=10, total_tokens=50, cost_usd=0.02),
        step("b2", parent_step_id="r", name="lookup", kind="tool", tool_name="order_lookup_api",
             tool_arguments='{"id": 7}', start_time=T0 + 2, duration_ns=10 * MS),
        step("b3", parent_step_id="r", name="fetch", kind="tool", tool_name="fetch",
             tool_arguments=tool_args, status=fetch_status, start_time=T0 + 3, duration_ns=2500 * MS),
        step("b4", parent_step_id="r", name="answer", kind="llm", start_time=T0 + 4, duration_ns=5 * MS,
             input_tokens=60, output_tokens=20, total_tokens=80, cost_usd=0.03),
    ]
    if root:
        steps.insert(0, step("r", name="support-agent", kind="agent", start_time=T0, duration_ns=3000 * MS))
    return steps


def judge(store, text: str, steps: list[dict]) -> dict:
    """Judge ``steps`` with both evaluators; assert they agree; return the verdict."""
    runbook = parse_runbook(text)
    run_id = f"run{next(_ids)}"
    write_runs(store, "proj", {run_id: steps})
    compiled = compile_runbook(runbook)
    sql, params = compiled.bind(Selection(project="proj", run_ids=(run_id,)))
    (row,) = store.query(sql, params).named_results()
    verdict = evaluate(runbook, steps)
    assert compiled.verdict(row) == verdict and row["status"] == verdict["status"]
    return verdict


def rules(verdict) -> dict:
    return {r["rule"]: r["step_ids"] for r in verdict["reasons"]}


def test_seed_runbook_passes_a_matching_run(store):
    steps = [step("r", name="shortify", kind="agent", start_time=T0, duration_ns=MS),
             step("s", parent_step_id="r", name="shorten", kind="tool", tool_name="httpx.post",
                  start_time=T0 + 1, duration_ns=MS)]
    seed = 'allowed_tools: [httpx.post]\nrequired_steps:\n  - name: "shorten"\n' \
           "budgets:\n  max_total_tokens: 100\n  max_total_cost_usd: 1.0\n"
    assert judge(store, seed, steps) == {"status": "passed", "reasons": []}


def test_tool_policies(store):
    v = judge(store, 'allowed_tools: ["fetch*"]\ndenied_tools: ["order_*"]', support_run())
    assert v["status"] == "failed"
    assert rules(v) == {"allowed_tools": ["b2"], "denied_tools": ["b2"]}
    assert v["reasons"][0]["observed"] == ["order_lookup_api"] and v["reasons"][0]["limit"] == ["fetch*"]
    assert rules(judge(store, "allowed_tools: []", support_run())) == {"allowed_tools": ["b2", "b3"]}


def test_required_steps_are_an_ordered_subsequence(store):
    ok = "required_steps: [{name: plan}, {tool: order_lookup_api}, {kind: llm}]"
    assert judge(store, ok, support_run())["status"] == "passed"
    wrong_order = "required_steps: [{name: answer}, {name: plan}]"
    v = judge(store, wrong_order, support_run())
    assert rules(v) == {"required_steps": ["b4"]}
    assert v["reasons"][0]["observed"] == 1 and v["reasons"][0]["limit"] == 2


def test_budgets_name_the_step_that_crossed_the_limit(store):
    text = ("budgets: {max_total_tokens: 100, max_total_cost_usd: 0.04, max_steps: 3, max_llm_calls: 2,"
            " max_tool_calls: 1, max_duration_ms: 2000, max_errors: 0, max_input_tokens: 100}")
    v = judge(store, text, support_run(fetch_status="error"))
    assert rules(v) == {"budgets.max_total_tokens": ["b4"], "budgets.max_total_cost_usd": ["b4"],
                        "budgets.max_steps": ["b3"], "budgets.max_tool_calls": ["b3"],
                        "budgets.max_duration_ms": ["r"], "budgets.max_errors": ["b3"]}
    by_rule = {r["rule"]: r for r in v["reasons"]}
    assert by_rule["budgets.max_total_tokens"]["observed"] == 130  # llm steps only
    assert by_rule["budgets.max_duration_ms"]["observed"] == 3000.0


def test_step_constraints(store):
    text = """steps:
  - match: {tool: fetch}
    max_latency_ms: 2000
    status: ok
    max_count: 0
    arguments: {required: [url, depth], url_allowlist: ["https://docs.example.com/*"], matches: {url: "^https://"}}
"""
    v = judge(store, text, support_run(tool_args='{"url": "http://evil.example/x"}', fetch_status="error"))
    assert rules(v) == {f"steps[0].{k}": ["b3"] for k in
                        ("max_latency_ms", "status", "max_count", "arguments.required",
                         "arguments.url_allowlist", "arguments.matches")}
    by_rule = {r["rule"]: r for r in v["reasons"]}
    assert by_rule["steps[0].arguments.required"]["observed"] == ["depth"]
    assert by_rule["steps[0].arguments.url_allowlist"]["observed"] == ["http://evil.example/x"]


@pytest.mark.parametrize("args", ["", "not json", "[1, 2]", '{"url": 5}', "{" * 50])
def test_malformed_arguments_read_as_missing(store, args):
    text = "steps: [{match: {tool: fetch}, arguments: {required: [url], matches: {url: x}}}]"
    v = judge(store, text, support_run(tool_args=args))
    assert set(rules(v)) == ({"steps[0].arguments.matches"} if args == '{"url": 5}'
                             else {"steps[0].arguments.required", "steps[0].arguments.matches"})


def test_loops(store):
    steps = [step("r", kind="agent", start_time=T0)] + [
        step(f"c{i}", parent_step_id="r", kind="tool", tool_name="search", tool_arguments='{"q": "x"}',
             status="error" if i < 3 else "ok", start_time=T0 + 1 + i) for i in range(4)]
    steps.insert(3, step("llm", parent_step_id="r", kind="llm", start_time=T0 + 2))  # not a tool call
    v = judge(store, "loops: {max_repeats: 2, max_retries_per_tool: 1}", steps)
    assert rules(v) == {"loops.max_repeats": ["c2", "c3"], "loops.max_retries_per_tool": ["c2", "c3"]}
    assert [r["observed"] for r in v["reasons"]] == [4, 3]


def test_no_matching_steps_pass_step_rules_but_fail_min_count_and_required(store):
    text = "steps: [{match: {tool: nothing}, max_count: 0, status: ok}]\n"
    assert judge(store, text, support_run())["status"] == "passed"
    text = "steps: [{match: {tool: nothing}, min_count: 1}]\nrequired_steps: [{tool: nothing}]"
    v = judge(store, text, support_run())
    assert v["status"] == "failed" and rules(v) == {"required_steps": [], "steps[0].min_count": []}


def test_run_without_root_is_incomplete_unless_a_definite_rule_fails(store):
    v = judge(store, "required_steps: [{name: never}]\nbudgets: {max_total_tokens: 1000}", support_run(root=False))
    assert v["status"] == "incomplete"
    assert [r["rule"] for r in v["reasons"]] == ["run.incomplete", "required_steps"]
    v = judge(store, "budgets: {max_total_tokens: 10}", support_run(root=False))
    assert v["status"] == "failed" and [r["rule"] for r in v["reasons"]] == ["run.incomplete",
                                                                           "budgets.max_total_tokens"]
    assert judge(store, "{}", support_run(root=False))["status"] == "incomplete"


def test_ties_in_start_time_are_broken_by_step_id(store):
    steps = [step("r", kind="agent", start_time=T0),
             step("z", parent_step_id="r", name="second", start_time=T0 + 5),
             step("a", parent_step_id="r", name="first", start_time=T0 + 5)]
    assert judge(store, "required_steps: [{name: first}, {name: second}]", steps)["status"] == "passed"
    assert judge(store, "required_steps: [{name: second}, {name: first}]", steps)["status"] == "failed"


def test_runbook_values_never_reach_the_sql_text(store):
    hostile = "x'); DROP TABLE steps; --"
    text = (f'allowed_tools: ["{hostile}"]\nrequired_steps: [{{name: "{hostile}"}}]\n'
            f'steps: [{{match: {{tool: "*"}}, arguments: {{required: ["{hostile}"], matches: {{"{hostile}": "a\'b"}}}}}}]')
    compiled = compile_runbook(parse_runbook(text))
    assert "DROP TABLE" not in compiled.sql and "a'b" not in compiled.sql
    assert any(v == ["x'); DROP TABLE steps; --"] for v in compiled.parameters.values())
    steps = [step("r", kind="agent", start_time=T0),
             step("t", parent_step_id="r", kind="tool", tool_name=hostile, start_time=T0 + 1,
                  tool_arguments='{"' + hostile.replace('"', '') + '": "a\'b"}')]
    v = judge(store, text, steps)
    assert v["status"] == "failed" and "allowed_tools" not in rules(v)
    assert store.query("SELECT count() FROM steps").result_rows[0][0] >= 2  # still there
