"""agenttrail.analysis.runs: retry chains, loops and the root-cause rule on hand-built step trees."""

from __future__ import annotations

from agenttrail.analysis.runs import analyse_run


def step(sid, parent="", kind="tool", status="ok", category="", tool="", args="", model="", **extra):
    return {"step_id": sid, "parent_step_id": parent, "kind": kind, "status": status,
            "failure_category": category, "failure_type": "tool" if category and kind == "tool" else "",
            "tool_name": tool, "tool_arguments": args, "model": model, **extra}


def indexed(*steps):
    for i, s in enumerate(steps):
        s["index"] = i
    return list(steps)


def test_a_clean_run_has_no_failure_block():
    assert analyse_run({"status": "ok"}, indexed(step("r", kind="agent"), step("t", "r", tool="a"))) is None


def test_a_recovered_retry_is_not_the_root_cause():
    steps = indexed(step("r", kind="agent"),
                    step("l1", "r", kind="llm", model="m"),
                    step("t1", "r", status="error", category="timeout", tool="search", args='{"q":1}'),
                    step("l2", "r", kind="llm", model="m"),
                    step("t2", "r", tool="search", args='{"q":1}'))
    failure = analyse_run({"status": "ok"}, steps)
    assert failure["category"] is None and failure["root_cause_step_id"] is None
    assert failure["failed_step_ids"] == ["t1"]
    (chain,) = failure["retries"]
    assert chain["tool"] == "search" and chain["outcome"] == "recovered" and chain["same_arguments"]
    assert [(a["attempt"], a["step_id"], a["status"]) for a in chain["attempts"]] == [(1, "t1", "error"), (2, "t2", "ok")]


def test_an_exhausted_chain_roots_the_failure_at_its_first_attempt():
    steps = indexed(step("r", kind="agent", status="error", category="unknown"),
                    step("a", "r", kind="llm", model="m", status="error", category="rate_limited"),
                    step("b", "r", kind="llm", model="m", status="error", category="rate_limited"),
                    step("c", "r", kind="llm", model="m", status="error", category="rate_limited"))
    failure = analyse_run({"status": "error"}, steps)
    assert failure["category"] == "rate_limited" and failure["root_cause_step_id"] == "a"
    assert failure["retries"][0]["outcome"] == "exhausted" and len(failure["retries"][0]["attempts"]) == 3
    assert failure["failed_step_ids"] == ["r", "a", "b", "c"]


def test_the_root_cause_follows_the_error_up_to_the_root():
    steps = indexed(step("r", kind="agent", status="error", category="unknown"),
                    step("w", "r", kind="workflow"),                       # handled inside
                    step("x", "w", status="error", category="not_found", tool="cache"),
                    step("a", "r", kind="agent", status="error", category="unknown"),
                    step("t", "a", status="error", category="timeout", tool="crm"),
                    step("c", "r", status="error", category="cancelled", tool="side"))
    failure = analyse_run({"status": "error"}, steps)
    assert failure["root_cause_step_id"] == "t" and failure["category"] == "timeout"
    assert failure["failure_type"] == "tool"


def test_an_ok_run_with_an_unrecovered_failure_names_it():
    steps = indexed(step("r", kind="agent"), step("x", "r", status="error", category="auth", tool="crm"))
    failure = analyse_run({"status": "ok"}, steps)
    assert (failure["category"], failure["root_cause_step_id"]) == ("auth", "x")


def test_repeated_identical_calls_are_a_loop():
    calls = [step(f"t{i}", "r", tool="search", args='{"q":"same"}') for i in range(4)]
    steps = indexed(step("r", kind="agent", status="error", category="unknown"), *calls,
                    step("u", "r", tool="search", args='{"q":"other"}'))
    failure = analyse_run({"status": "error"}, steps)
    assert failure["loops"] == [{"tool": "search", "count": 4, "step_ids": ["t0", "t1", "t2", "t3"]}]
    assert (failure["category"], failure["root_cause_step_id"]) == ("planner_loop", "t0")
    # two identical calls are not a loop
    assert analyse_run({"status": "ok"}, indexed(step("r", kind="agent"), *calls[:2])) is None


def test_an_sdk_failure_event_names_its_step():
    root = step("r", kind="agent", status="error", category="timeout",
                **{"events.name": ["agenttrail.failure"],
                   "events.attributes": [{"agenttrail.failure.step_id": "t2"}]})
    root["failure_type"] = "tool"
    steps = indexed(root, step("t1", "r", status="error", category="not_found", tool="a"),
                    step("t2", "r", tool="b"))
    failure = analyse_run({"status": "error"}, steps)
    assert (failure["root_cause_step_id"], failure["category"], failure["failure_type"]) == ("t2", "timeout", "tool")


def test_a_failed_step_stored_without_a_category_counts_as_unknown_or_is_classified():
    legacy = step("t", "r", status="error", tool="a")
    assert analyse_run({}, indexed(step("r", kind="agent"), legacy))["category"] == "unknown"
    legacy.update({"attributes": {"error.type": "RateLimitError"}, "events.name": [], "events.attributes": [],
                   "status_message": ""})
    assert analyse_run({}, indexed(step("r", kind="agent"), legacy))["category"] == "rate_limited"


def test_hostile_trees_do_not_break_the_analysis():
    cyclic = indexed(step("a", "b", status="error", category="timeout"), step("b", "a", status="error", category="auth"))
    assert analyse_run({}, cyclic)["root_cause_step_id"] in {"a", "b"}
    orphans = indexed(step("x", "missing", status="error", category="timeout"))
    assert analyse_run({}, orphans)["root_cause_step_id"] == "x"
    assert analyse_run({}, []) is None
