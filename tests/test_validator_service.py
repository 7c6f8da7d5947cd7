"""Persisted, idempotent validations; stored runbooks; batches; automatic validation."""

from __future__ import annotations

import pytest

from agenttrail.validator.auto import AutoValidator
from agenttrail.validator.library import get_runbook, list_runbooks, save_runbook
from agenttrail.validator.parser import RunbookError, parse_runbook
from agenttrail.validator.service import (RunNotFound, latest_validations, validate_batch, validate_run,
                                          validations_of_run)
from validator_helpers import step, write_runs

T0 = 1_700_000_000_000_000_000
RB = "name: tools\nallowed_tools: [search]\nbudgets: {max_steps: 3}\n"


def run(*, tool="search", root=True, agent="support", extra=0):
    steps = [step(f"c{i}", parent_step_id="r", kind="tool", tool_name=tool, start_time=T0 + 1 + i)
             for i in range(1 + extra)]
    if root:
        steps.insert(0, step("r", kind="agent", name=agent, start_time=T0))
    return steps


def test_validate_run_is_idempotent_until_the_run_changes(store):
    write_runs(store, "p1", {"good": run(), "bad": run(tool="shell")})
    rb = parse_runbook(RB)
    first = validate_run(store, "bad", rb)
    assert first["status"] == "failed" and not first["existing"] and first["project_id"] == "p1"
    assert [r["rule"] for r in first["reasons"]] == ["allowed_tools"]
    again = validate_run(store, "bad", rb)
    assert again["existing"] and again["validation_id"] == first["validation_id"]
    # a late span changes the run state: a new validation, now also over the step budget
    write_runs(store, "p1", {"bad": [step("late1", parent_step_id="r", start_time=T0 + 9),
                                     step("late2", parent_step_id="r", start_time=T0 + 10)]})
    late = validate_run(store, "bad", rb)
    assert not late["existing"] and late["input_hash"] != first["input_hash"]
    assert [r["rule"] for r in late["reasons"]] == ["allowed_tools", "budgets.max_steps"]
    history = validations_of_run(store, "p1", "bad")
    assert [v["validation_id"] for v in history][-1] == first["validation_id"] and len(history) == 2
    assert latest_validations(store, "p1", ["bad", "good"])["bad"]["validation_id"] == late["validation_id"]


def test_another_runbook_on_the_same_run_is_a_new_validation(store):
    write_runs(store, "p1", {"r1": run()})
    a = validate_run(store, "r1", parse_runbook(RB))
    b = validate_run(store, "r1", parse_runbook("budgets: {max_steps: 1}"))
    assert a["status"] == "passed" and b["status"] == "failed" and a["input_hash"] != b["input_hash"]


def test_unknown_or_foreign_run_is_not_found(store):
    write_runs(store, "p1", {"r1": run()})
    with pytest.raises(RunNotFound):
        validate_run(store, "nope", parse_runbook(RB))
    with pytest.raises(RunNotFound):
        validate_run(store, "r1", parse_runbook(RB), projects=["p2"])


def test_batch_counts_and_pages_failed_runs(store):
    runs = {f"ok{i}": run() for i in range(3)} | {f"bad{i}": run(tool="shell") for i in range(5)}
    runs["open"] = run(root=False)
    write_runs(store, "p1", runs)
    write_runs(store, "p2", {"other": run(tool="shell")})
    rb = parse_runbook(RB)
    page = validate_batch(store, rb, "p1", limit=2)
    assert page["counts"] == {"passed": 3, "failed": 5, "incomplete": 1, "total": 9}
    assert [r["run_id"] for r in page["runs"]] == ["bad0", "bad1"] and page["next_offset"] == 2
    last = validate_batch(store, rb, "p1", limit=2, offset=4)
    assert [r["run_id"] for r in last["runs"]] == ["bad4"] and last["next_offset"] is None
    window = validate_batch(store, rb, "p1", since_ns=T0 + 1, limit=10)
    assert window["counts"]["total"] == 1  # only the root-less run "starts" after its root would
    assert validate_batch(store, rb, "p1", agent="nobody")["counts"]["total"] == 0


def test_runbook_library_versions(store):
    first = save_runbook(store, "p1", RB)
    assert first["created"] and first["version"] == 1 and first["name"] == "tools"
    same = save_runbook(store, "p1", RB)
    assert not same["created"] and same["version"] == 1
    second = save_runbook(store, "p1", RB + "denied_tools: [rm]\n", auto=True)
    assert second["version"] == 2 and get_runbook(store, "p1", "tools")["version"] == 2
    assert get_runbook(store, "p1", "tools", version=1)["yaml"] == RB
    assert [r["name"] for r in list_runbooks(store, "p1")] == ["tools"]
    assert list_runbooks(store, "p2") == [] and get_runbook(store, "p2", "tools") is None
    for bad_name in ("", "../x", "a b", "x" * 200):
        with pytest.raises(RunbookError):
            save_runbook(store, "p1", "{}", name=bad_name)
    with pytest.raises(RunbookError):
        save_runbook(store, "p1", "allowed_tools: [")


def test_auto_validation_waits_for_completion_and_revalidates_late_spans(store):
    save_runbook(store, "p1", RB + "applies_to: {agent: 'support*'}\n", auto=True)
    save_runbook(store, "p1", "name: manual\nbudgets: {max_steps: 0}\n")  # not auto: never used
    write_runs(store, "p1", {"done": run(), "bad": run(tool="shell"), "open": run(root=False),
                             "other-agent": run(agent="billing")})
    auto = AutoValidator(store, quiet_seconds=30)
    import time
    assert auto.tick(now=time.time())["validated"] == 0  # spans are fresh: quiet period not over
    later = time.time() + 60
    stats = auto.tick(now=later)
    assert stats == {"runbooks": 1, "validated": 2, "failed": 1, "errors": 0}
    assert auto.tick(now=later)["validated"] == 0  # same state: nothing to do
    write_runs(store, "p1", {"done": [step("late", parent_step_id="r", start_time=T0 + 5)]})
    assert auto.tick(now=time.time() + 120)["validated"] == 1
    history = validations_of_run(store, "p1", "done")
    assert len(history) == 2 and {v["source"] for v in history} == {"auto"}
    assert validations_of_run(store, "p1", "open") == [] and validations_of_run(store, "p1", "other-agent") == []


def test_auto_validator_rejects_bad_settings(store):
    with pytest.raises(ValueError):
        AutoValidator(store, quiet_seconds=-1)


def test_python_engine_stores_the_same_verdict_as_sql(store):
    rb = parse_runbook(RB + "required_steps: [{tool: search}, {kind: llm}]\nloops: {max_repeats: 1}\n")
    write_runs(store, "p1", {"a": run(extra=2), "b": run(tool="shell", root=False)})
    for run_id in ("a", "b"):
        write_runs(store, "p1", {run_id: [step(f"x{run_id}", parent_step_id="r", start_time=T0 + 50)]})
        by_sql = validate_run(store, run_id, rb, engine="sql")
        store.command("DELETE FROM validations WHERE run_id = {r:String}", {"r": run_id})
        by_python = validate_run(store, run_id, rb, engine="python")
        assert not by_python["existing"]
        for key in ("status", "reasons", "summary", "input_hash"):
            assert by_python[key] == by_sql[key], key
    with pytest.raises(ValueError):
        validate_run(store, "a", rb, engine="fast")
