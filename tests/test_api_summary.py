"""Projects, project summary, sessions and the metrics overview, computed by the real engine."""

from __future__ import annotations

import pytest

from api_helpers import KEYS, add_run, client, hours_ago


@pytest.fixture
def api(make_server):
    return make_server(api_keys=KEYS)


def _fill(store):
    """proj-a: 3 ok runs and 1 failed in the last day, 1 run 3 days ago; proj-b: 1 run."""
    add_run(store, "proj-a", hours_ago(2), session="conv-1", tools=(("search", "ok", 100),), cost=0.01)
    add_run(store, "proj-a", hours_ago(3), session="conv-1", tools=(("search", "ok", 300), ("refund", "error", 50)),
            status="error", cost=0.02)
    add_run(store, "proj-a", hours_ago(4), session="conv-2", model="claude-3", tools=(), cost=0.03, tokens=(10, 5))
    add_run(store, "proj-a", hours_ago(5), tools=(("refund", "error", 70),), cost=0.04)
    add_run(store, "proj-a", hours_ago(72), cost=5.0)
    add_run(store, "proj-b", hours_ago(1), cost=9.0, tools=(("secret_tool", "error", 10),))


def test_projects_list(api):
    _fill(api.store)
    with client(api) as c:
        projects = c.get("/v1/projects").json()["projects"]
    assert [(p["project_id"], p["run_count"]) for p in projects] == [("proj-a", 5), ("proj-b", 1)]
    assert projects[0]["first_seen"] < projects[0]["last_seen"] and projects[0]["last_seen"].endswith("Z")


def test_project_summary_over_the_default_day(api):
    _fill(api.store)
    with client(api) as c:
        s = c.get("/v1/projects/proj-a/summary").json()
    assert (s["runs"], s["ok_runs"], s["error_runs"], s["in_progress_runs"]) == (4, 3, 1, 0)
    assert s["success_rate"] == 0.75 and s["error_rate"] == 0.25
    assert s["cost_usd"] == pytest.approx(0.10)
    assert (s["input_tokens"], s["output_tokens"], s["total_tokens"]) == (310, 65, 375)
    assert s["llm_calls"] == 4 and s["tool_calls"] == 4
    assert [(t["tool"], t["calls"], t["errors"]) for t in s["top_tools"]] == [("refund", 2, 2), ("search", 2, 0)]
    assert s["top_failing_tools"] == [{"tool": "refund", "count": 2, "calls": 2}]
    assert [(m["model"], m["calls"]) for m in s["models"]] == [("gpt-4o-mini", 3), ("claude-3", 1)]
    assert 200 <= s["p95_step_latency_ms"] <= 300
    assert s["p50_run_duration_ms"] > 0 and s["p95_run_duration_ms"] >= s["p50_run_duration_ms"]
    assert s["validation"]["validated_runs"] == 0 and s["validation"]["pass_rate"] is None
    assert "secret_tool" not in str(s)


def test_project_summary_window_and_empty_project(api):
    _fill(api.store)
    with client(api) as c:
        wide = c.get("/v1/projects/proj-a/summary", params={"since": hours_ago(100).isoformat()}).json()
        empty = c.get("/v1/projects/nothing-here/summary").json()
    assert wide["runs"] == 5 and wide["cost_usd"] == pytest.approx(5.10)
    assert empty["runs"] == 0 and empty["success_rate"] is None and empty["top_tools"] == []


def test_sessions_group_runs_with_totals_and_paginate(api):
    _fill(api.store)
    with client(api) as c:
        body = c.get("/v1/sessions", params={"project_id": "proj-a"}).json()
        first = c.get("/v1/sessions", params={"limit": 1}).json()
        second = c.get("/v1/sessions", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [(s["session_id"], s["run_count"], s["error_runs"]) for s in body["sessions"]] == [
        ("conv-1", 2, 1), ("conv-2", 1, 0)]
    assert body["sessions"][0]["cost_usd"] == pytest.approx(0.03) and body["next_cursor"] is None
    assert [s["session_id"] for s in first["sessions"] + second["sessions"]] == ["conv-1", "conv-2"]
    assert second["next_cursor"] is None


def test_metrics_overview(api):
    _fill(api.store)
    with client(api) as c:
        day = c.get("/v1/metrics/overview").json()
        a_only = c.get("/v1/metrics/overview", params={"project_id": "proj-a", "hours": 200}).json()
    assert day["total_runs"] == 5 and day["success_rate"] == 0.8
    assert day["top_failing_tools"][0] == {"tool": "refund", "count": 2, "calls": 2}
    assert day["total_cost_usd"] == pytest.approx(9.10)
    assert a_only["total_runs"] == 5 and a_only["total_cost_usd"] == pytest.approx(5.10)
    assert a_only["p95_step_latency_ms"] > 0


def test_latest_validation_in_run_detail_and_pass_rate_in_summary(api):
    from agenttrail.validator.parser import parse_runbook
    from agenttrail.validator.service import validate_run

    store = api.store
    good = add_run(store, "proj-a", hours_ago(1), tools=(("search", "ok", 10),))
    bad = add_run(store, "proj-a", hours_ago(2), tools=(("refund", "ok", 10),))
    add_run(store, "proj-a", hours_ago(3))  # never validated
    runbook = parse_runbook("name: tools-policy\nallowed_tools:\n  - search\n")
    for run_id in (good, bad):
        validate_run(store, run_id, runbook, project="proj-a")
    with client(api) as c:
        detail = c.get(f"/v1/runs/{bad}").json()
        unvalidated = c.get("/v1/runs", params={"limit": 1, "sort": "started_at"}).json()["runs"][0]
        summary = c.get("/v1/projects/proj-a/summary").json()
        listed = {r["run_id"]: r["validation"] for r in c.get("/v1/runs").json()["runs"]}
    assert detail["validation"]["status"] == "failed"
    assert detail["validation"]["runbook_name"] == "tools-policy"
    assert unvalidated["run_id"] not in (good, bad) and unvalidated["validation"] is None
    assert listed[bad]["status"] == "failed" and listed[good]["status"] == "passed"
    assert listed[good]["runbook_name"] == "tools-policy" and listed[good]["created_at"].endswith("Z")
    assert summary["validation"] == {"validated_runs": 2, "passed_runs": 1, "failed_runs": 1,
                                     "incomplete_runs": 0, "pass_rate": 0.5}
