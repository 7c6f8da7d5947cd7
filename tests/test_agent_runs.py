"""POST /v1/agent-runs: seed 002's two workflow documents, as the seed writes them, give
tool_schema_mismatch and insufficient_evidence; hostile documents are refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_helpers import client

DATA = Path(__file__).parent / "seed_docs"


def _doc(n: int) -> dict:
    return json.loads((DATA / f"seed002_workflow{n}.json").read_text())


def _post(c, doc, **params):
    r = c.post("/v1/agent-runs", json=doc, params=params)
    assert r.status_code == 201, r.text
    return r.json()


def test_workflow_1_is_a_tool_schema_mismatch_rooted_at_the_first_failed_call(server):
    with client(server, None) as c:
        stored = _post(c, _doc(1), project_id="sre")
        assert stored["source_run_id"] == "run-001-sufficient" and stored["steps"] == 1 + 4 + 3 + 1
        run = c.get(f"/v1/runs/{stored['run_id']}").json()
        report = c.get(f"/v1/runs/{stored['run_id']}/rca").json()
    steps = {s["step_id"]: s for s in run["steps"]}
    calls = {s["tool_call_id"]: s for s in run["steps"] if s["kind"] == "tool"}
    assert run["status"] == "error" and run["project_id"] == "sre" and run["cost_usd"] == 0.0245
    assert calls["call-001"]["failure_category"] == "tool_schema_mismatch"
    assert steps[calls["call-001"]["parent_step_id"]]["name"] == "Look up order details"
    failure = run["failure"]
    assert failure["category"] == "tool_schema_mismatch"
    assert failure["root_cause_step_id"] == calls["call-001"]["step_id"]
    (chain,) = failure["retries"]
    assert chain["tool"] == "order_lookup_api" and chain["outcome"] == "exhausted"
    assert [a["step_id"] for a in chain["attempts"]] == [calls["call-001"]["step_id"], calls["call-003"]["step_id"]]

    assert report["category"] == "tool_schema_mismatch" and report["insufficient_evidence"] is False
    evidence = {e["evidence_id"]: e for e in report["evidence_index"]}
    first = evidence[f"ev_step_{calls['call-001']['step_id']}"]
    assert first["kind"] == "tool_call" and first["title"] == "Failed tool call: order_lookup_api"
    assert first["snippet"] == "Missing required field: 'customer_id'. API schema updated to v2.0 requiring customer_id"
    assert first["attributes"]["error_type"] == "ValidationError" and first["attributes"]["status_code"] == "400"
    guard = next(e for e in report["evidence_index"] if e["kind"] == "guardrail")
    primary = report["hypotheses"][0]
    assert primary["evidence_ids"][0] == first["evidence_id"] and guard["evidence_id"] in primary["evidence_ids"]
    assert primary["confidence"] == "high" and primary["verification_steps"]
    assert report["action_items"][0]["title"] == "Update tool schema validation"


def test_workflow_2_has_insufficient_evidence(server):
    with client(server, None) as c:
        stored = _post(c, _doc(2))
        report = c.get(f"/v1/runs/{stored['run_id']}/rca").json()
    assert stored["project_id"] == "default"
    assert report["category"] == "unknown" and report["insufficient_evidence"] is True
    assert report["insufficient_reason"] == "Limited telemetry: no tool failures or specific error details captured"
    assert report["evidence_index"] == [] and report["hypotheses"] == []
    assert [(a["type"], a["title"], a["priority"]) for a in report["action_items"]] == [
        ("monitoring", "Enable detailed tracing", "high"), ("code_change", "Add structured error codes", "medium")]


def test_posting_a_run_again_replaces_it(server):
    doc = _doc(1)
    with client(server, None) as c:
        first = _post(c, doc)
        doc["tool_calls"] = doc["tool_calls"][:1]
        again = _post(c, doc)
        run = c.get(f"/v1/runs/{again['run_id']}").json()
    assert again["run_id"] == first["run_id"] and again["replaced"] is True
    assert len(run["steps"]) == 1 + 4 + 1 + 1 and run["failure"]["retries"] == []


@pytest.mark.parametrize("body, status", [
    (b"not json", 400), (b"[1, 2]", 422), (b'{"run_id": "x"}', 422),
    (json.dumps({"run_id": "x" * 300, "started_at": "2024-01-01T00:00:00Z"}).encode(), 422),
    (json.dumps({"run_id": "x", "started_at": "yesterday"}).encode(), 422),
    (json.dumps({"run_id": "x", "started_at": "2024-01-01T00:00:00Z",
                 "steps": [{"step_id": str(i)} for i in range(1001)]}).encode(), 422),
    (json.dumps({"run_id": "x", "started_at": "2024-01-01T00:00:00Z",
                 "tool_calls": [{"call_id": "c", "tool_name": "t", "status_code": "DROP TABLE"}]}).encode(), 422),
    (b"[" * 100_000, 400), (b" " * (4 * 1024 * 1024 + 1), 413),
])
def test_hostile_documents_are_refused_clearly_and_nothing_is_stored(server, body, status):
    with client(server, None) as c:
        r = c.post("/v1/agent-runs", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["error"]["message"]
        assert c.get("/v1/runs").json()["runs"] == []
        assert c.get("/health").json()["status"] == "ok"


def test_keys_decide_who_may_write_and_where(make_server):
    from api_helpers import INGEST_A, KEYS, READ_A

    server = make_server(api_keys=KEYS)
    with client(server, READ_A) as c:
        assert c.post("/v1/agent-runs", json=_doc(2)).status_code == 403  # no ingest scope
    with client(server, INGEST_A) as c:
        assert c.post("/v1/agent-runs", json={**_doc(2), "project_id": "proj-b"}).status_code == 403
        assert _post(c, _doc(2))["project_id"] == "proj-a"  # the key's own project
    with client(server, None) as c:
        assert c.post("/v1/agent-runs", json=_doc(2)).status_code == 401


def test_the_document_is_described_in_openapi(server):
    with client(server, None) as c:
        spec = c.get("/openapi.json").json()
    schema = spec["paths"]["/v1/agent-runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"run_id", "steps", "tool_calls", "guardrail_events", "cost"} <= set(schema["properties"])
    assert schema["properties"]["steps"]["maxItems"] == 1000


def test_a_failed_replacement_puts_the_old_run_back(server, monkeypatch):
    from agenttrail.storage import StorageUnavailable

    with client(server, None) as c:
        stored = _post(c, _doc(1))
        writer, real_write = server.store.writer, server.store.writer.write
        calls = []

        def failing_once(batch, **kwargs):  # storage refuses the new document's write, then recovers
            calls.append(len(batch))
            if len(calls) == 1:
                raise StorageUnavailable("storage rejected the write")
            return real_write(batch, **kwargs)

        monkeypatch.setattr(writer, "write", failing_once)
        changed = {**_doc(1), "tool_calls": []}
        assert c.post("/v1/agent-runs", json=changed).status_code == 503
        run = c.get(f"/v1/runs/{stored['run_id']}").json()
    assert calls == [1 + 4 + 0 + 1, 9]  # the refused write, then the old steps written back
    assert len(run["steps"]) == 9 and run["failure"]["category"] == "tool_schema_mismatch"
