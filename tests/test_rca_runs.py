"""Seed 002's RCA job flow: POST rca-runs, poll, SSE stream ending in done; batch over a project."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from api_helpers import client

DATA = Path(__file__).parent / "seed_docs"


def _seed_runs(c) -> dict:
    ids = {}
    for n in (1, 2):
        r = c.post("/v1/agent-runs", json=json.loads((DATA / f"seed002_workflow{n}.json").read_text()),
                   params={"project_id": "sre"})
        assert r.status_code == 201, r.text
        ids[n] = r.json()["run_id"]
    return ids


def _wait(c, job_id: str) -> dict:
    for _ in range(200):
        body = c.get(f"/v1/rca-runs/{job_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_seed_flow_create_stream_and_get_the_report(server):
    with client(server, None) as c:
        ids = _seed_runs(c)
        created = c.post(f"/v1/runs/{ids[1]}/rca-runs")
        assert created.status_code == 202 and list(created.json()) == ["rca_run_id"]
        job_id = created.json()["rca_run_id"]
        with c.stream("GET", f"/v1/rca-runs/{job_id}/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in stream.iter_lines() if line]
        events = [json.loads(line[len("data: "):]) for line in lines]
        assert all(set(e) == {"status", "step", "pct", "message", "updated_at"} for e in events)
        assert [e["pct"] for e in events] == sorted(e["pct"] for e in events)
        assert events[-1]["status"] == "done" and events[-1]["pct"] == 100
        assert {"Collecting evidence", "Classifying failure", "Generating report"} <= {e["step"] for e in events}
        body = c.get(f"/v1/rca-runs/{job_id}").json()
        assert body["status"] == "done" and body["report"]["category"] == "tool_schema_mismatch"
        # a stream opened after the end replays every event and closes
        with c.stream("GET", f"/v1/rca-runs/{job_id}/stream") as stream:
            assert [json.loads(l[6:])["status"] for l in stream.iter_lines() if l][-1] == "done"
        second = _wait(c, c.post(f"/v1/runs/{ids[2]}/rca-runs").json()["rca_run_id"])
        assert second["report"]["insufficient_evidence"] is True


def test_a_batch_rca_groups_a_projects_failed_runs(server):
    with client(server, None) as c:
        ids = _seed_runs(c)
        r = c.post("/v1/projects/sre/rca-runs", params={"since": "2024-01-15T00:00:00Z",
                                                        "until": "2024-01-16T00:00:00Z"})
        assert r.status_code == 202
        body = _wait(c, r.json()["rca_run_id"])
    result = body["result"]
    assert body["status"] == "done" and result["runs_analysed"] == 2
    assert {(g["category"], g["run_count"], tuple(g["run_ids"])) for g in result["groups"]} == {
        ("tool_schema_mismatch", 1, (ids[1],)), ("unknown", 1, (ids[2],))}
    assert {r["run_id"]: r["insufficient_evidence"] for r in result["runs"]} == {ids[1]: False, ids[2]: True}


@pytest.mark.parametrize("path, status", [
    ("/v1/rca-runs/" + "0" * 32, 404), ("/v1/rca-runs/nothex", 422), ("/v1/rca-runs/" + "a" * 5000, 422),
    ("/v1/rca-runs/../../etc/passwd/stream", 404), ("/v1/rca-runs/" + "0" * 32 + "/stream", 404),
])
def test_unknown_or_malformed_job_ids(server, path, status):
    with client(server, None) as c:
        assert c.get(path).status_code == status
        assert c.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("method, path, params, status", [
    ("POST", "/v1/runs/" + "0" * 31 + "1/rca-runs", {}, 404),
    ("POST", "/v1/runs/bad-id/rca-runs", {}, 422),
    ("POST", "/v1/projects/sre/rca-runs", {"max_runs": "0"}, 422),
    ("POST", "/v1/projects/sre/rca-runs", {"max_runs": "1000000"}, 422),
    ("POST", "/v1/projects/sre/rca-runs", {"since": "soon"}, 422),
])
def test_bad_job_requests(server, method, path, params, status):
    with client(server, None) as c:
        assert c.request(method, path, params=params).status_code == status


def test_jobs_of_other_projects_are_invisible(make_server):
    from api_helpers import INGEST_A, KEYS, READ_B

    server = make_server(api_keys=KEYS)
    with client(server, INGEST_A) as c:
        run_id = c.post("/v1/agent-runs", json=json.loads((DATA / "seed002_workflow1.json").read_text())).json()["run_id"]
        job_id = c.post(f"/v1/runs/{run_id}/rca-runs").json()["rca_run_id"]
        assert _wait(c, job_id)["status"] == "done"
    with client(server, READ_B) as c:
        assert c.get(f"/v1/rca-runs/{job_id}").status_code == 404
        assert c.post(f"/v1/runs/{run_id}/rca-runs").status_code == 404
