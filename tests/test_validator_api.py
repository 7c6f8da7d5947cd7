"""The runbook REST endpoints through the real app, keys scoped to projects."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agenttrail.api.app import create_app
from agenttrail.service.auth import ApiKey, KeyRing
from validator_helpers import step, write_runs

T0 = 1_700_000_000_000_000_000
RUN_A, RUN_B, RUN_X = ("a" * 32, "b" * 32, "c" * 32)
RB = "name: tools\nallowed_tools: [search]\n"
A = {"x-api-key": "key-a"}
B = {"x-api-key": "key-b"}


def _run(tool):
    return [step("r", kind="agent", start_time=T0),
            step("c1", parent_step_id="r", kind="tool", tool_name=tool, start_time=T0 + 1)]


@pytest.fixture
def client(store):
    write_runs(store, "pa", {RUN_A: _run("search"), RUN_B: _run("shell")})
    write_runs(store, "pb", {RUN_X: _run("search")})
    keys = KeyRing([ApiKey("key-a", frozenset({"read", "ingest"}), frozenset({"pa"})),
                    ApiKey("key-b", frozenset({"read"}), frozenset({"pb"}))])
    app = create_app(store, keys)
    return TestClient(app)


def test_store_list_and_get_runbooks(client):
    created = client.post("/v1/runbooks", json={"yaml": RB, "auto": True}, headers=A)
    assert created.status_code == 201 and created.json()["version"] == 1 and created.json()["auto"]
    assert client.post("/v1/runbooks", json={"yaml": RB, "auto": True}, headers=A).json()["created"] is False
    assert client.post("/v1/runbooks", json={"yaml": RB + "denied_tools: [x]\n"}, headers=A).json()["version"] == 2
    assert [r["name"] for r in client.get("/v1/runbooks", headers=A).json()["runbooks"]] == ["tools"]
    assert client.get("/v1/runbooks/tools", headers=A).json()["version"] == 2
    assert client.get("/v1/runbooks/tools?version=1", headers=A).json()["yaml"] == RB
    # another project's key sees nothing and cannot write
    assert client.get("/v1/runbooks", headers=B).json()["runbooks"] == []
    assert client.get("/v1/runbooks/tools", headers=B).status_code == 404
    assert client.post("/v1/runbooks", json={"yaml": RB}, headers=B).status_code == 403
    assert client.post("/v1/runbooks", json={"yaml": RB, "project_id": "pb"}, headers=A).status_code == 404
    assert client.get("/v1/runbooks").status_code == 401


def test_bad_runbooks_are_422_with_line_and_column(client):
    r = client.post("/v1/runbooks", json={"yaml": "name: x\nbudgets: {max_tokens: 1}\n"}, headers=A)
    assert r.status_code == 422
    (detail,) = r.json()["error"]["details"]
    assert (detail["line"], detail["column"], detail["path"]) == (2, 11, "budgets.max_tokens")
    assert client.post("/v1/runbooks", json={"yaml": "allowed_tools: []"}, headers=A).status_code == 422  # no name
    assert client.post("/v1/runbooks", json={"yaml": RB, "extra": 1}, headers=A).status_code == 422
    assert client.post("/v1/runbooks", json={"yaml": "a: " * 200_000}, headers=A).status_code == 422
    assert client.post("/v1/runbooks", content=b"{not json", headers={**A, "content-type": "application/json"}
                       ).status_code == 422


def test_validate_a_run_inline_or_stored(client):
    r = client.post(f"/v1/runs/{RUN_B}/validate", json={"runbook_yaml": RB}, headers=A)
    assert r.status_code == 200 and r.json()["status"] == "failed" and not r.json()["existing"]
    assert r.json()["reasons"][0]["step_ids"] == ["c1"]
    again = client.post(f"/v1/runs/{RUN_B}/validate", json={"runbook_yaml": RB}, headers=A).json()
    assert again["existing"] and again["validation_id"] == r.json()["validation_id"]
    client.post("/v1/runbooks", json={"yaml": RB}, headers=A)
    stored = client.post(f"/v1/runs/{RUN_A}/validate", json={"runbook": "tools"}, headers=A).json()
    assert stored["status"] == "passed" and (stored["runbook_name"], stored["runbook_version"]) == ("tools", 1)
    history = client.get(f"/v1/runs/{RUN_B}/validations?limit=5", headers=A).json()["validations"]
    assert [v["validation_id"] for v in history] == [r.json()["validation_id"]]
    detail = client.get(f"/v1/runs/{RUN_B}", headers=A)
    assert detail.status_code == 200 and detail.json()["validation"]["status"] == "failed"  # run detail shows it


def test_both_engines_judge_one_run_alike(client):
    by_sql = client.post(f"/v1/runs/{RUN_B}/validate", json={"runbook_yaml": RB, "engine": "sql"}, headers=A).json()
    assert by_sql["status"] == "failed" and not by_sql["existing"]
    again = client.post(f"/v1/runs/{RUN_B}/validate", json={"runbook_yaml": RB, "engine": "python"}, headers=A).json()
    assert again["existing"] and again["validation_id"] == by_sql["validation_id"]  # same state, same verdict


@pytest.mark.parametrize("body, status", [
    ({}, 422), ({"runbook_yaml": RB, "runbook": "tools"}, 422), ({"runbook": "absent"}, 404),
    ({"runbook_yaml": "allowed_tools: ["}, 422), ({"runbook_yaml": RB, "version": 0}, 422),
    ({"runbook_yaml": RB, "engine": "fast"}, 422), ({"runbook_yaml": RB, "engine": ["sql"]}, 422),
])
def test_validate_rejects_bad_bodies(client, body, status):
    assert client.post(f"/v1/runs/{RUN_A}/validate", json=body, headers=A).status_code == status


def test_other_projects_runs_are_not_found(client):
    assert client.post(f"/v1/runs/{RUN_X}/validate", json={"runbook_yaml": RB}, headers=A).status_code == 404
    assert client.get(f"/v1/runs/{RUN_X}/validations", headers=A).status_code == 404
    assert client.post(f"/v1/runs/{RUN_X}/validate", json={"runbook_yaml": RB}, headers=B).status_code == 200
    assert client.post(f"/v1/runs/{'d' * 32}/validate", json={"runbook_yaml": RB}, headers=A).status_code == 404


def test_batch_counts_and_pages(client):
    r = client.post("/v1/validations", json={"runbook_yaml": RB, "since": "2023-01-01T00:00:00Z"}, headers=A)
    assert r.status_code == 200
    body = r.json()
    assert body["counts"] == {"passed": 1, "failed": 1, "incomplete": 0, "total": 2}
    assert [x["run_id"] for x in body["runs"]] == [RUN_B] and body["next_offset"] is None
    every = client.post("/v1/validations", json={"runbook_yaml": RB, "statuses": ["passed", "failed"], "limit": 1},
                        headers=A).json()
    assert [x["run_id"] for x in every["runs"]] == [RUN_A] and every["next_offset"] == 1
    for bad in ({"runbook_yaml": RB, "since": "whenever"}, {"runbook_yaml": RB, "agent": "[x"},
                {"runbook_yaml": RB, "limit": 0}, {"runbook_yaml": RB, "statuses": ["weird"]}):
        assert client.post("/v1/validations", json=bad, headers=A).status_code == 422
    assert client.post("/v1/validations", json={"runbook_yaml": RB, "project_id": "pa"}, headers=B).status_code == 404


def test_run_list_filters_by_latest_validation_status(client):
    def listed(status, headers=A):
        r = client.get(f"/v1/runs?validation_status={status}", headers=headers)
        assert r.status_code == 200, r.text
        return sorted(run["run_id"] for run in r.json()["runs"])

    assert listed("none") == [RUN_A, RUN_B] and listed("failed") == []
    client.post(f"/v1/runs/{RUN_B}/validate", json={"runbook_yaml": RB}, headers=A)
    assert (listed("failed"), listed("passed"), listed("none")) == ([RUN_B], [], [RUN_A])
    # The newest verdict counts: a later runbook that RUN_B passes makes it "passed".
    client.post(f"/v1/runs/{RUN_B}/validate", json={"runbook_yaml": "name: lenient\n"}, headers=A)
    assert (listed("failed"), listed("passed")) == ([], [RUN_B])
    assert listed("none", headers=B) == [RUN_X]  # another key's projects stay invisible
    bad = client.get("/v1/runs?validation_status=maybe", headers=A)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["parameter"] == "validation_status"
