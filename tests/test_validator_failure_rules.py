"""Runbook rules over failure analysis: forbid_failure_categories and max_retries.

Expected verdicts are worked out by hand; each runs through the reference evaluator and the
compiled SQL (test_validator_rules.judge asserts they agree), then end to end through the API
on a run the SDK sent, classified at ingest.
"""

from __future__ import annotations

import pytest

from agenttrail import sdk
from agenttrail.validator.parser import RunbookError, parse_runbook
from test_validator_rules import MS, T0, judge
from validator_helpers import step


def flaky_run():
    """search fails (timeout) twice then succeeds; the model is rate limited once; refund
    fails (auth) and is not retried; lookup is called twice with no failure (not a retry)."""
    spec = [("search", "tool", "error", "timeout"), ("search", "tool", "error", "timeout"),
            ("search", "tool", "ok", ""), ("gpt-4o", "llm", "error", "rate_limited"),
            ("gpt-4o", "llm", "ok", ""), ("refund", "tool", "error", "auth"),
            ("lookup", "tool", "ok", ""), ("lookup", "tool", "ok", "")]
    steps = [step("r", name="agent", kind="agent", start_time=T0, duration_ns=100 * MS, status="error",
                  failure_category="auth")]
    for i, (target, kind, status, category) in enumerate(spec, 1):
        fields = {"tool_name": target} if kind == "tool" else {"model": target}
        steps.append(step(f"s{i}", parent_step_id="r", name=f"call {target}", kind=kind, status=status,
                          failure_category=category, start_time=T0 + i, duration_ns=MS, **fields))
    return steps


def test_forbidden_categories_name_the_failed_steps(store):
    verdict = judge(store, "forbid_failure_categories: [timeout, auth, content_filter]", flaky_run())
    [reason] = verdict["reasons"]
    assert verdict["status"] == "failed" and reason["rule"] == "forbid_failure_categories"
    assert reason["observed"] == ["auth", "timeout"] and reason["step_ids"] == ["r", "s1", "s2", "s6"]
    assert reason["limit"] == ["timeout", "auth", "content_filter"]
    assert reason["message"] == "4 steps failed with a forbidden category: auth, timeout"
    assert judge(store, "forbid_failure_categories: [context_length]", flaky_run())["status"] == "passed"


def test_an_error_without_a_category_counts_as_unknown(store):
    steps = [step("r", name="agent", kind="agent", start_time=T0, duration_ns=MS),
             step("x", parent_step_id="r", kind="tool", tool_name="t", status="error", start_time=T0 + 1)]
    verdict = judge(store, "forbid_failure_categories: [unknown]", steps)
    assert verdict["reasons"][0]["step_ids"] == ["x"]


def test_max_retries_counts_tool_and_model_retries_in_step_order(store):
    # Retries: s2 (search after failed search), s3 (again), s5 (gpt-4o after its failure) = 3.
    verdict = judge(store, "max_retries: 1", flaky_run())
    [reason] = verdict["reasons"]
    assert (reason["rule"], reason["observed"], reason["limit"]) == ("max_retries", 3, 1)
    assert reason["step_ids"] == ["s3", "s5"]
    assert reason["message"] == "3 retries of a failed tool or model call, more than 1"
    assert judge(store, "max_retries: 3", flaky_run())["status"] == "passed"
    both = judge(store, "max_retries: 0\nforbid_failure_categories: [rate_limited]", flaky_run())
    assert [r["rule"] for r in both["reasons"]] == ["forbid_failure_categories", "max_retries"]


def test_a_call_of_another_target_between_breaks_the_chain(store):
    steps = [step("r", name="agent", kind="agent", start_time=T0, duration_ns=MS),
             step("a", parent_step_id="r", kind="tool", tool_name="search", status="error", start_time=T0 + 1),
             step("b", parent_step_id="r", kind="tool", tool_name="fetch", start_time=T0 + 2),
             step("c", parent_step_id="r", kind="tool", tool_name="search", start_time=T0 + 3),
             # an llm call between two tool calls does not break the tool chain
             step("d", parent_step_id="r", kind="tool", tool_name="fetch", status="error", start_time=T0 + 4),
             step("e", parent_step_id="r", kind="llm", model="m", start_time=T0 + 5),
             step("f", parent_step_id="r", kind="tool", tool_name="fetch", start_time=T0 + 6)]
    verdict = judge(store, "max_retries: 0", steps)
    assert verdict["reasons"][0]["observed"] == 1 and verdict["reasons"][0]["step_ids"] == ["f"]


@pytest.mark.parametrize("text, fragment", [
    ("forbid_failure_categories: [prompt_regression]", "unknown failure category"),
    ("forbid_failure_categories: [timeout, timeout]", "listed twice"),
    ("forbid_failure_categories: timeout", "expected a list"),
    ("forbid_failure_categories: [1]", "expected a string"),
    ("forbid_failure_categories: [" + ", ".join(["timeout"] * 500) + "]", "at most 14 items"),
    ("forbid_failure_categories: ['" + "x" * 5000 + "']", "longer than 64"),
    ("max_retries: -1", "must be between"),
    ("max_retries: 1.5", "expected an integer"),
    ("max_retries: '3'", "expected an integer"),
    ("max_retries: 99999999999999999999999", "must be between"),
])
def test_bad_values_are_errors_with_a_position(text, fragment):
    with pytest.raises(RunbookError) as err:
        parse_runbook(text)
    assert fragment in str(err.value) and err.value.errors[0][0] == 1


KEY = "demo-key-123456"


def test_end_to_end_on_a_run_the_sdk_sent(make_server):
    """A tool that times out twice then works, and a refund that is refused: classified at
    ingest, judged by the API (SQL) and by the reference evaluator (engine=python)."""
    server = make_server(api_keys=({"key": KEY, "scopes": ["ingest", "read"], "projects": ["demo"]},))
    sdk.configure(endpoint=server.grpc_endpoint, project="demo", api_key=KEY, set_global=False)
    try:
        with sdk.run(agent="support-agent") as r:
            for attempt in (1, 2, 3):
                try:
                    with r.step("lookup", tool="orders_api", attempt=attempt):
                        if attempt < 3:
                            raise TimeoutError("orders_api timed out")
                except TimeoutError:
                    pass
            try:
                with r.step("refund", tool="payments_api"):
                    raise PermissionError("403 forbidden")
            except PermissionError:
                pass
        assert sdk.flush(20)
    finally:
        sdk.shutdown()
    import httpx

    with httpx.Client(base_url=server.api_url, headers={"x-api-key": KEY}, timeout=30) as c:
        run = c.get(f"/v1/runs/{r.run_id}").json()
        ids = {s["name"]: [] for s in run["steps"]}
        for s in run["steps"]:
            ids[s["name"]].append(s["step_id"])
        for engine in ("sql", "python"):
            # a description per engine: the same runbook text would return the stored verdict
            runbook = f"name: strict\ndescription: {engine}\nforbid_failure_categories: [auth]\nmax_retries: 1\n"
            verdict = c.post(f"/v1/runs/{r.run_id}/validate", json={"runbook_yaml": runbook, "engine": engine})
            assert verdict.status_code == 200, verdict.text
            reasons = {x["rule"]: x for x in verdict.json()["reasons"]}
            assert verdict.json()["status"] == "failed", engine
            assert reasons["forbid_failure_categories"]["step_ids"] == ids["refund"]
            assert reasons["max_retries"]["observed"] == 2 and reasons["max_retries"]["step_ids"] == ids["lookup"][2:]
