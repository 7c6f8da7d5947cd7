"""Run list, run detail, steps and timeline through the running server, on the real engine."""

from __future__ import annotations

import pytest

from api_helpers import ADMIN, KEYS, READ_A, READ_B, add_run, client, hours_ago


@pytest.fixture
def api(make_server):
    return make_server(api_keys=KEYS)


def test_list_filters_and_order(api):
    store = api.store
    old = add_run(store, "proj-a", hours_ago(5), agent="billing", session="s1", cost=0.5)
    failed = add_run(store, "proj-a", hours_ago(3), status="error", tools=(("refund", "error", 90),),
                     model="claude-3", service="svc2")
    new = add_run(store, "proj-a", hours_ago(1), session="s1", cost=None)
    other = add_run(store, "proj-b", hours_ago(2))
    with client(api) as c:
        ids = lambda **q: [r["run_id"] for r in c.get("/v1/runs", params=q).json()["runs"]]
        assert ids() == [new, other, failed, old]
        assert ids(project_id="proj-a") == [new, failed, old]
        assert ids(status="error") == [failed]
        assert ids(status="in_progress") == []
        assert ids(agent="billing") == [old]
        assert ids(service="svc2") == [failed]
        assert ids(session="s1") == [new, old]
        assert ids(tool="refund") == [failed]
        assert ids(model="claude-3") == [failed]
        assert ids(has_errors="true") == [failed]
        assert ids(has_errors="false") == [new, other, old]
        assert ids(min_cost="0.1") == [old]
        assert ids(since=hours_ago(2.5).isoformat(), until=hours_ago(1.5).isoformat()) == [other]
        assert ids(sort="started_at") == [old, failed, other, new]
        assert ids(sort="-cost_usd")[0] == old
        assert c.get("/v1/projects/proj-a/runs").json()["runs"][0]["run_id"] == new
        run = c.get("/v1/runs", params={"status": "error"}).json()["runs"][0]
        assert run["status"] == "error" and run["error_count"] == 2 and run["tool_calls"] == 1
        assert run["tools"] == ["refund"] and run["models"] == ["claude-3"] and run["root_missing"] is False
        assert run["input_tokens"] == 100 and run["total_tokens"] == 120


def test_cursor_pages_are_stable_while_runs_arrive(api):
    store = api.store
    made = [add_run(store, "proj-a", hours_ago(10 - i * 0.5)) for i in range(7)]
    expected = list(reversed(made))
    with client(api) as c:
        page = c.get("/v1/runs", params={"limit": 3}).json()
        seen = [r["run_id"] for r in page["runs"]]
        add_run(store, "proj-a", hours_ago(0.1))  # arrives between pages: newer than everything
        while page["next_cursor"]:
            page = c.get("/v1/runs", params={"limit": 3, "cursor": page["next_cursor"]}).json()
            seen += [r["run_id"] for r in page["runs"]]
        assert seen == expected
        first = c.get("/v1/runs", params={"limit": 2, "sort": "duration_ms"}).json()
        bad = c.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["parameter"] == "cursor"


def test_run_detail_steps_and_timeline(api):
    run_id = add_run(api.store, "proj-a", hours_ago(1), tools=(("a", "ok", 30), ("b", "error", 50)))
    dashed = f"{run_id[:8]}-{run_id[8:12]}-{run_id[12:16]}-{run_id[16:20]}-{run_id[20:]}"
    with client(api) as c:
        detail = c.get(f"/v1/runs/{dashed}").json()
        assert detail["run_id"] == run_id and detail["validation"] is None
        steps = detail["steps"]
        assert [s["index"] for s in steps] == [0, 1, 2, 3]
        assert [s["kind"] for s in steps] == ["agent", "llm", "tool", "tool"]
        assert [s["depth"] for s in steps] == [0, 1, 1, 1]
        assert steps[3]["tool"] == "b" and steps[3]["error_type"] == "TimeoutError"
        assert steps[2]["tool_arguments"] == {"id": 1}
        tools = c.get(f"/v1/runs/{run_id}/steps", params={"kind": "tool", "status": "error"}).json()["steps"]
        assert [s["tool"] for s in tools] == ["b"] and tools[0]["index"] == 3
        timeline = c.get(f"/v1/runs/{run_id}/timeline").json()
        (root,) = timeline["roots"]
        assert root["kind"] == "agent" and root["offset_ms"] == 0 and len(root["children"]) == 3
        offsets = [n["offset_ms"] for n in root["children"]]
        assert offsets == sorted(offsets) and offsets[0] == pytest.approx(10)
        assert root["children"][1]["duration_ms"] == pytest.approx(30)
        assert timeline["duration_ms"] == pytest.approx(root["duration_ms"])


def test_run_without_root_is_in_progress_with_orphans_as_roots(api):
    run_id = add_run(api.store, "proj-a", hours_ago(1), root=False)
    with client(api) as c:
        run = c.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "in_progress" and run["root_missing"] is True and run["ended_at"] is None
        roots = c.get(f"/v1/runs/{run_id}/timeline").json()["roots"]
        assert len(roots) == 2 and all(r["orphan"] for r in roots)
        assert [r["run_id"] for r in c.get("/v1/runs", params={"status": "in_progress"}).json()["runs"]] == [run_id]


def test_project_isolation_between_two_keys(api):
    a = add_run(api.store, "proj-a", hours_ago(1), session="shared")
    b = add_run(api.store, "proj-b", hours_ago(1), session="shared")
    with client(api, READ_A) as ca, client(api, READ_B) as cb:
        assert [r["run_id"] for r in ca.get("/v1/runs").json()["runs"]] == [a]
        assert [r["run_id"] for r in cb.get("/v1/runs").json()["runs"]] == [b]
        assert ca.get("/v1/runs", params={"project_id": "proj-b"}).json()["runs"] == []
        for path in (f"/v1/runs/{b}", f"/v1/runs/{b}/steps", f"/v1/runs/{b}/timeline"):
            answer = ca.get(path)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
        assert cb.get(f"/v1/runs/{b}").status_code == 200
        assert ca.get("/v1/projects/proj-b/runs").status_code == 404
        assert ca.get("/v1/projects/proj-b/summary").status_code == 404
        assert [p["project_id"] for p in ca.get("/v1/projects").json()["projects"]] == ["proj-a"]
        sessions = ca.get("/v1/sessions").json()["sessions"]
        assert [(s["project_id"], s["run_ids"]) for s in sessions] == [("proj-a", [a])]
        assert ca.get("/v1/metrics/overview").json()["total_runs"] == 1
        assert ca.get("/v1/metrics/overview", params={"project_id": "proj-b"}).json()["total_runs"] == 0
    with client(api, None) as anonymous, client(api, "wrong-key-000") as wrong:
        assert anonymous.get("/v1/runs").status_code == 401
        assert wrong.get(f"/v1/runs/{a}").json()["error"]["code"] == "unauthorized"
    with client(api, ADMIN) as admin:
        assert len(admin.get("/v1/runs").json()["runs"]) == 2


def test_trace_id_under_two_projects_shows_each_reader_one_consistent_run(api):
    # Run detail reads the run row and the steps side by side; both must pick the same project.
    run_id = add_run(api.store, "proj-a", hours_ago(2), tools=(("a", "ok", 30),))
    add_run(api.store, "proj-b", hours_ago(1), tools=(("b1", "ok", 10), ("b2", "ok", 10)), run_id=run_id)
    with client(api, READ_A) as ca, client(api, READ_B) as cb, client(api, ADMIN) as admin:
        for c, expected in ((ca, "proj-a"), (cb, "proj-b"), (admin, None)):
            detail = c.get(f"/v1/runs/{run_id}").json()
            project = expected or detail["project_id"]
            assert detail["project_id"] == project
            tools = {"proj-a": ["a"], "proj-b": ["b1", "b2"]}[project]
            assert [s["tool"] for s in detail["steps"] if s["kind"] == "tool"] == tools
            assert detail["step_count"] == len(detail["steps"]) == len(tools) + 2
            steps = c.get(f"/v1/runs/{run_id}/steps").json()
            assert steps["project_id"] == project and len(steps["steps"]) == len(tools) + 2
            (root,) = c.get(f"/v1/runs/{run_id}/timeline").json()["roots"]
            assert len(root["children"]) == len(tools) + 1


def test_unknown_run_is_404_and_bearer_auth_works(api):
    with client(api, None) as c:
        answer = c.get("/v1/runs/" + "ab" * 16, headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 404
        assert answer.json() == {"error": {"code": "not_found", "message": f"run {'ab' * 16} not found"}}
