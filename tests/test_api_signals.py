"""Decisions and quality signals: listed in run detail, aggregated per project by the real engine."""

from __future__ import annotations

import pytest

from agenttrail import sdk
from api_helpers import KEYS, READ_A, READ_B, add_run, client, hours_ago

DECISION, QUALITY = "agenttrail.decision", "agenttrail.quality_signal"


@pytest.fixture
def api(make_server):
    return make_server(api_keys=KEYS)


def decision(kind: str, selected: str, confidence: str | None = None, reason: str = "") -> tuple:
    attrs = {"agenttrail.decision.type": kind, "agenttrail.decision.selected": selected}
    if confidence is not None:
        attrs["agenttrail.decision.confidence"] = confidence
    if reason:
        attrs["agenttrail.decision.reason_code"] = reason
    return DECISION, attrs


def signal(kind: str, code: str, value: bool, weight: str | None = None) -> tuple:
    attrs = {"agenttrail.quality.type": kind, "agenttrail.quality.code": code,
             "agenttrail.quality.value": "true" if value else "false"}
    if weight is not None:
        attrs["agenttrail.quality.weight"] = weight
    return QUALITY, attrs


def test_run_detail_lists_what_the_sdk_recorded(server):
    sdk.configure(endpoint=server.grpc_endpoint, project="demo", set_global=False)
    try:
        with sdk.run(agent="a") as r:
            with r.step("fetch", tool="billing_api") as s:
                pass
            r.record_decision("tool_selection", "api", "fresh_data_required", candidates=["api", "cache"],
                              confidence=0.85, step=s, metadata={"region": "eu"})
            r.record_quality_signal("schema_valid", "full_match", True, weight=0.5, step=s)
            r.record_quality_signal("tool_success", "rate_limited", False)
        assert sdk.flush(20)
    finally:
        sdk.shutdown()
    with client(server, None) as c:
        body = c.get(f"/v1/runs/{r.run_id}").json()
    root = next(step["step_id"] for step in body["steps"] if step["depth"] == 0)
    assert body["decisions"] == [{
        "step_id": root, "linked_step_id": s.step_id, "time": body["decisions"][0]["time"],
        "decision_type": "tool_selection", "selected": "api", "reason_code": "fresh_data_required",
        "candidates": ["api", "cache"], "confidence": 0.85, "metadata": {"region": "eu"}}]
    assert [(q["signal_type"], q["signal_code"], q["value"], q["weight"], q["linked_step_id"])
            for q in body["quality_signals"]] == [("schema_valid", "full_match", True, 0.5, s.step_id),
                                                  ("tool_success", "rate_limited", False, None, None)]


def test_run_without_events_has_empty_lists_and_hostile_values_stay_readable(api):
    plain = add_run(api.store, "proj-a", hours_ago(1))
    odd = add_run(api.store, "proj-a", hours_ago(1), root_events=[
        (DECISION, {"agenttrail.decision.confidence": "NaN", "agenttrail.decision.candidates": "not json [",
                    "agenttrail.decision.selected": "x" * 5000}),
        (QUALITY, {"agenttrail.quality.value": "maybe", "agenttrail.quality.weight": "inf"})])
    with client(api) as c:
        assert c.get(f"/v1/runs/{plain}").json()["decisions"] == []
        body = c.get(f"/v1/runs/{odd}").json()
    [d], [q] = body["decisions"], body["quality_signals"]
    assert d["confidence"] is None and d["candidates"] == ["not json ["] and d["decision_type"] == ""
    assert q["value"] is False and q["weight"] is None


def _fill(store):
    """proj-a: api chosen by 3 runs (2 ok), cache by 1 (error); schema_valid true on the 2 ok runs."""
    add_run(store, "proj-a", hours_ago(1), root_events=[
        decision("tool_selection", "api", "0.9", "fresh_data_required"), signal("schema_valid", "full_match", True, "1")])
    add_run(store, "proj-a", hours_ago(2), root_events=[
        decision("tool_selection", "api", "0.7", "fresh_data_required"), decision("tool_selection", "api"),
        signal("schema_valid", "full_match", True)])
    add_run(store, "proj-a", hours_ago(3), status="error", root_events=[
        decision("tool_selection", "api", "0.5"), signal("tool_success", "rate_limited", True)])
    add_run(store, "proj-a", hours_ago(4), status="error", root_events=[
        decision("tool_selection", "cache", "0.2", "latency_budget"), signal("schema_valid", "full_match", False)])
    add_run(store, "proj-a", hours_ago(5))                      # no events: counts in "without"
    add_run(store, "proj-a", hours_ago(48), root_events=[decision("tool_selection", "old")])  # outside the day
    add_run(store, "proj-b", hours_ago(1), root_events=[decision("tool_selection", "secret")])


def test_decisions_per_type_and_option(api):
    _fill(api.store)
    with client(api) as c:
        body = c.get("/v1/projects/proj-a/decisions").json()
        wide = c.get("/v1/projects/proj-a/decisions", params={"since": hours_ago(100).isoformat()}).json()
        errors_only = c.get("/v1/projects/proj-a/decisions", params={"status": "error"}).json()
    api_row, cache_row = body["decisions"]
    assert (api_row["decision_type"], api_row["selected"], api_row["count"], api_row["runs"]) == (
        "tool_selection", "api", 4, 3)
    assert api_row["mean_confidence"] == pytest.approx(0.7) and api_row["with_confidence"] == 3
    assert api_row["success_rate"] == pytest.approx(2 / 3) and api_row["reason_codes"] == ["fresh_data_required"]
    assert (cache_row["selected"], cache_row["runs"], cache_row["success_rate"]) == ("cache", 1, 0.0)
    assert "secret" not in str(body) and body["since"] < body["until"]
    assert {d["selected"] for d in wide["decisions"]} == {"api", "cache", "old"}
    assert [(d["selected"], d["runs"]) for d in errors_only["decisions"]] == [("api", 1), ("cache", 1)]


def test_quality_success_with_and_without(api):
    _fill(api.store)
    with client(api) as c:
        body = c.get("/v1/projects/proj-a/quality").json()
    rows = {(q["signal_type"], q["signal_code"], q["value"]): q for q in body["quality_signals"]}
    valid = rows[("schema_valid", "full_match", True)]
    # 5 finished runs in the day, 3 ok; 2 ok ones carry the signal: without it, 1 of 3 succeeded.
    assert (valid["count"], valid["runs"], valid["success_rate_with"]) == (2, 2, 1.0)
    assert valid["success_rate_without"] == pytest.approx(1 / 3, abs=1e-6)
    assert valid["difference"] == pytest.approx(2 / 3, abs=1e-6) and valid["mean_weight"] == 1.0
    limited = rows[("tool_success", "rate_limited", True)]
    assert limited["success_rate_with"] == 0.0 and limited["success_rate_without"] == 0.75
    assert rows[("schema_valid", "full_match", False)]["runs"] == 1


def test_access_and_bad_parameters(api):
    _fill(api.store)
    with client(api, READ_B) as c:
        for path in ("/v1/projects/proj-a/decisions", "/v1/projects/proj-a/quality"):
            response = c.get(path)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    with client(api, READ_A) as c:
        assert c.get("/v1/projects/proj-a/quality").status_code == 200
        for params in ({"since": "yesterday"}, {"limit": 0}, {"limit": 10**9}, {"status": "weird"},
                       {"agent": "x" * 10_000}, {"min_cost": "nan"},
                       {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}):
            response = c.get("/v1/projects/proj-a/decisions", params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["code"] == "invalid_parameter"
        hostile = c.get("/v1/projects/proj-a/decisions", params={"agent": "x') OR 1=1 --", "tool": "'; DROP TABLE runs"})
        assert hostile.status_code == 200 and hostile.json()["decisions"] == []
        assert c.get("/v1/projects/" + "p" * 300 + "/quality").status_code == 422
        assert len(c.get("/v1/projects/proj-a/decisions").json()["decisions"]) == 2


def test_openapi_describes_the_aggregates(api):
    with client(api) as c:
        spec = c.get("/openapi.json").json()
    for path in ("/v1/projects/{project_id}/decisions", "/v1/projects/{project_id}/quality"):
        operation = spec["paths"][path]["get"]
        params = {p["name"]: p for p in operation["parameters"]}
        assert operation["description"] and {"project_id", "agent_version", "since", "limit"} <= params.keys()
        assert all(p.get("description") for p in params.values()), path
