"""POST /v1/events: seed 000's event API writes the same rows as OTLP, through the running server."""

from __future__ import annotations

import pytest

from agenttrail.api.event_model import run_hex
from api_helpers import ADMIN, INGEST_A, KEYS, READ_A, client

RUN = "11111111-1111-1111-1111-111111111111"
STEP = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
def api(make_server):
    return make_server(api_keys=KEYS)


def seed_batch(run=RUN, project="demo"):
    """The example of seed 000, verbatim in shape."""
    return {"events": [
        {"type": "run.start", "run_id": run, "project_id": project, "runbook": "example_runbook",
         "ts": "2026-01-21T00:00:00Z"},
        {"type": "step.start", "run_id": run, "step_id": STEP, "index": 0, "name": "shorten",
         "tool": "httpx.post", "input": {"originalUrl": "https://example.com"}, "ts": "2026-01-21T00:00:01Z"},
        {"type": "step.end", "run_id": run, "step_id": STEP, "output": {"status_code": 200}, "latency_ms": 12,
         "tokens": 5, "cost_usd": 0.001, "status": "ok", "ts": "2026-01-21T00:00:02Z"},
        {"type": "run.end", "run_id": run, "totals": {"tokens": 5, "cost_usd": 0.001}, "ts": "2026-01-21T00:00:03Z"},
    ]}


def test_seed_example_becomes_a_run_with_a_root_and_a_tool_step(api):
    with client(api) as c:
        answer = c.post("/v1/events", json=seed_batch())
        assert answer.status_code == 200
        assert answer.json() == {"ingested": 4, "failed": 0, "errors": [], "warnings": [],
                                 "run_ids": {RUN: RUN.replace("-", "")}}
        run = c.get(f"/v1/runs/{RUN}").json()
    assert run["run_id"] == RUN.replace("-", "") and run["project_id"] == "demo"
    assert run["status"] == "ok" and run["root_missing"] is False and run["duration_ms"] == 3000
    assert run["started_at"] == "2026-01-21T00:00:00Z" and run["ended_at"] == "2026-01-21T00:00:03Z"
    root, step = run["steps"]
    assert root["kind"] == "agent" and root["parent_step_id"] is None and root["name"] == "example_runbook"
    assert root["attributes"]["agenttrail.totals.tokens"] == "5"
    assert step["parent_step_id"] == root["step_id"] and step["depth"] == 1 and len(step["step_id"]) == 16
    assert (step["name"], step["kind"], step["tool"], step["status"]) == ("shorten", "tool", "httpx.post", "ok")
    assert step["latency_ms"] == 12 and step["total_tokens"] == 5 and step["cost_usd"] == 0.001
    assert step["attributes"]["input.value"] == '{"originalUrl": "https://example.com"}'
    assert run["tools"] == ["httpx.post"]


def test_events_across_requests_and_out_of_order(api):
    run = "run-001-any-string"
    with client(api) as c:
        first = c.post("/v1/events", json={"events": [
            {"type": "run.start", "run_id": run, "project_id": "demo", "agent": "shortener",
             "session_id": "conv-9", "ts": "2026-01-21T00:00:00Z"},
            {"type": "step.end", "run_id": run, "step_id": "s1", "latency_ms": 500, "status": "error",
             "error": "boom", "ts": "2026-01-21T00:00:02Z"},
        ]}).json()
        assert first["ingested"] == 2 and len(first["warnings"]) == 1 and first["warnings"][0]["index"] == 1
        stored_id = first["run_ids"][run]
        assert stored_id == run_hex(run) and len(stored_id) == 32
        middle = c.get(f"/v1/runs/{stored_id}").json()
        assert middle["status"] == "in_progress" and middle["agent_name"] == "shortener"
        assert middle["session_id"] == "conv-9"
        second = c.post("/v1/events", json={"events": [
            {"type": "step.start", "run_id": run, "step_id": "s1", "name": "lookup", "model": "gpt-4o",
             "ts": "2026-01-21T00:00:01.500Z"},
            {"type": "run.end", "run_id": run, "status": "error", "ts": "2026-01-21T00:00:03Z"},
        ]}).json()
        assert second == {"ingested": 2, "failed": 0, "errors": [], "warnings": [], "run_ids": {run: stored_id}}
        done = c.get(f"/v1/runs/{stored_id}").json()
    assert done["status"] == "error" and done["step_count"] == 2 and done["error_count"] == 2
    step = done["steps"][1]
    assert (step["name"], step["kind"], step["status"], step["error_message"]) == ("lookup", "llm", "error", "boom")
    assert step["started_at"] == "2026-01-21T00:00:01.500000Z" and step["latency_ms"] == 500
    assert done["agent_name"] == "shortener" and done["llm_calls"] == 1


def test_replaying_a_batch_changes_nothing(api):
    with client(api) as c:
        c.post("/v1/events", json=seed_batch())
        again = c.post("/v1/events", json=seed_batch()).json()
        assert again["failed"] == 0
        run = c.get(f"/v1/runs/{RUN}").json()
    assert run["step_count"] == 2 and run["duration_ms"] == 3000


def test_bad_events_fail_alone(api):
    events = [
        {"type": "run.start", "run_id": "r1", "project_id": "demo"},
        {"type": "run.explode", "run_id": "r1"},
        "not an object",
        {"type": "step.start", "run_id": "r1"},
        {"type": "step.end", "run_id": "r1", "step_id": "x", "latency_ms": -5},
        {"type": "step.end", "run_id": "r1", "step_id": "x", "ts": "yesterday"},
        {"type": "step.start", "run_id": "r1", "step_id": "y", "tokens": 10**30},
        {"type": "step.start", "run_id": "'; DROP TABLE steps; --", "step_id": "ünï😀", "name": "'\"\\"},
        {"type": "step.start", "run_id": "orphan-run", "step_id": "z"},
        {"type": "run.start", "run_id": "x" * 300, "project_id": "demo"},
    ]
    with client(api) as c:
        body = c.post("/v1/events", json={"events": events}).json()
        assert body["ingested"] == 1 and body["failed"] == 9
        assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
        reasons = {e["index"]: e["reason"] for e in body["errors"]}
        assert "type" in reasons[1] and "step_id" in reasons[3] and "latency_ms" in reasons[4]
        assert "project_id" in reasons[7] and "project_id" in reasons[8] and "run_id" in reasons[9]
        assert list(body["run_ids"]) == ["r1"]  # refused events name no run
        assert c.get(f"/v1/runs/{run_hex('r1')}").json()["status"] == "in_progress"
        odd = c.get(f"/v1/runs/{run_hex(chr(39) + '; DROP TABLE steps; --')}")
        assert odd.status_code == 404  # no run.start and no project: the event was refused
        assert len(c.get("/v1/runs").json()["runs"]) == 1


def test_body_limits_and_malformed_bodies(api):
    with client(api) as c:
        too_many = {"events": [{"type": "run.start", "run_id": f"r{i}", "project_id": "p"} for i in range(1001)]}
        assert c.post("/v1/events", json=too_many).json()["error"]["code"] == "too_large"
        huge = c.post("/v1/events", content=b'{"events": ["' + b"a" * (5 * 1024 * 1024) + b'"]}',
                      headers={"content-type": "application/json"})
        assert huge.status_code == 413
        assert c.post("/v1/events", content=b"{not json").status_code == 400
        assert c.post("/v1/events", content=b"\xff\xfe").status_code == 400
        assert c.post("/v1/events", content=b"[" * 100_000).status_code == 400  # too deep for the parser
        answer = c.post("/v1/events", json={"events": "run.start"})
        assert answer.status_code == 422 and answer.json()["error"]["details"][0]["parameter"] == "events"
        assert c.post("/v1/events", json=[1, 2]).status_code == 422
        big_input = {"events": [{"type": "run.start", "run_id": "big", "project_id": "p", "input": "x" * 60_000}]}
        assert c.post("/v1/events", json=big_input).json()["ingested"] == 1
        root = c.get(f"/v1/runs/{run_hex('big')}").json()["steps"][0]
        assert root["truncated"] is True and len(root["attributes"]["input.value"]) == 16_384


def test_scopes_and_projects_of_keys(api):
    with client(api, READ_A) as reader:
        assert reader.post("/v1/events", json=seed_batch()).status_code == 403
    with client(api, INGEST_A) as ingest:
        other = ingest.post("/v1/events", json=seed_batch(project="proj-b")).json()
        assert other["ingested"] == 0 and other["failed"] == 4
        assert "proj-b" in other["errors"][0]["reason"]
        mine = ingest.post("/v1/events", json={"events": [
            {"type": "step.start", "run_id": "bound", "step_id": "s", "tool": "t", "ts": "2026-01-21T00:00:00Z"}]})
        assert mine.json()["ingested"] == 1  # the key's only project is the run's project
        assert ingest.get(f"/v1/runs/{run_hex('bound')}").json()["project_id"] == "proj-a"
    with client(api, ADMIN) as admin:
        assert admin.get("/v1/runs", params={"project_id": "proj-b"}).json()["runs"] == []


def test_hostile_strings_are_stored_verbatim(api):
    hostile = "'; DROP TABLE steps; -- ünï😀 \\ \" {x:String}"
    with client(api) as c:
        body = c.post("/v1/events", json={"events": [
            {"type": "run.start", "run_id": hostile, "project_id": hostile, "agent": hostile, "session_id": hostile},
            {"type": "step.start", "run_id": hostile, "step_id": hostile, "tool": hostile, "name": hostile,
             "attributes": {hostile: hostile}},
            {"type": "step.end", "run_id": hostile, "step_id": hostile, "error": hostile, "status": "error"},
        ]}).json()
        assert body["ingested"] == 3 and body["failed"] == 0
        run = c.get(f"/v1/runs/{body['run_ids'][hostile]}").json()
        assert run["project_id"] == hostile and run["agent_name"] == hostile and run["session_id"] == hostile
        step = run["steps"][1]
        assert step["tool"] == hostile and step["error_message"] == hostile and step["attributes"][hostile] == hostile
        assert [r["run_id"] for r in c.get("/v1/runs", params={"tool": hostile, "project_id": hostile}).json()["runs"]] \
            == [run["run_id"]]


def test_seed_000_declared_totals_count_toward_budgets(api):
    """A seed-000 run has no model calls, only run.end totals: budgets must see those."""
    batch = seed_batch()
    batch["events"][-1]["totals"] = {"tokens": 500, "cost_usd": 2.5}
    runbook = ("allowed_tools:\n  - httpx.post\nrequired_steps:\n  - name: \"shorten\"\n"
               "budgets:\n  max_total_tokens: 100\n  max_total_cost_usd: 1.0\n")
    with client(api) as c:
        assert c.post("/v1/events", json=batch).status_code == 200
        run = c.get(f"/v1/runs/{RUN}").json()
        assert (run["total_tokens"], run["cost_usd"]) == (500, 2.5)
        verdict = c.post(f"/v1/runs/{RUN}/validate", json={"runbook_yaml": runbook}).json()
    root = run["steps"][0]["step_id"]
    assert verdict["status"] == "failed"
    assert [(r["rule"], r["observed"], r["step_ids"]) for r in verdict["reasons"]] == [
        ("budgets.max_total_tokens", 500, [root]), ("budgets.max_total_cost_usd", 2.5, [root])]
