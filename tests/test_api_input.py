"""Hostile and malformed input: every parameter is bound or rejected with a 422 naming it."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from api_helpers import KEYS, READ_A, add_run, client, hours_ago

HOSTILE = [
    "'", '"', "\\", "'; DROP TABLE runs; --", "proj-a' OR '1'='1", "proj-a\" OR 1=1 --",
    "{f_projects:Array(String)}", "ünïcødé 😀 中文", "%00%27", "\x00", "\n\r\t", "a" * 256,
]
TEXT_FILTERS = {
    "/v1/runs": ["project_id", "agent", "service", "session", "tool", "model"],
    "/v1/projects/proj-a/runs": ["agent", "service", "session", "tool", "model"],
    "/v1/sessions": ["project_id", "agent"],
    "/v1/metrics/overview": ["project_id"],
}


@pytest.fixture
def api(make_server):
    server = make_server(api_keys=KEYS)
    add_run(server.store, "proj-a", hours_ago(1), session="s")
    add_run(server.store, "proj-b", hours_ago(1), session="s")
    return server


def _assert_error(answer, status: int, parameter: str | None = None):
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) <= {"code", "message", "details"} and error["message"]
    if parameter:
        assert parameter in [d["parameter"] for d in error["details"]], error
        assert parameter in error["message"]


def test_hostile_strings_in_every_text_filter_are_only_values(api):
    with client(api) as c, client(api, READ_A) as ca:
        for path, names in TEXT_FILTERS.items():
            for name in names:
                for value in HOSTILE:
                    for cl in ((c, ca) if name == "project_id" else (c,)):
                        answer = cl.get(path, params={name: value})
                        assert answer.status_code == 200, (path, name, value, answer.text)
                        body = answer.json()
                        if "runs" in body:
                            assert body["runs"] == []
                        elif "sessions" in body:
                            assert body["sessions"] == []
                        else:
                            assert body["total_runs"] == 0
        # the tables are intact and a read key still sees only its own project
        assert len(c.get("/v1/runs").json()["runs"]) == 2
        assert [r["project_id"] for r in ca.get("/v1/runs", params={"project_id": "proj-a' OR '1'='1"}).json()["runs"]] == []


def test_hostile_path_parameters(api):
    with client(api) as c:
        for value in HOSTILE:
            encoded = quote(value, safe="")
            for suffix in ("", "/steps", "/timeline"):
                answer = c.get(f"/v1/runs/{encoded}{suffix}")
                _assert_error(answer, 422, "run_id")
            for suffix in ("/summary", "/runs"):
                answer = c.get(f"/v1/projects/{encoded}{suffix}")
                assert answer.status_code == 200, (value, answer.text)
                assert answer.json()["runs"] in (0, [])  # summary: a count; list: no runs
        _assert_error(c.get("/v1/runs/" + "x" * 300), 422, "run_id")
        _assert_error(c.get("/v1/projects/" + "p" * 300 + "/summary"), 422, "project_id")
        assert len(c.get("/v1/runs").json()["runs"]) == 2


BAD_VALUES = [
    ("/v1/runs", {"status": "broken"}, "status"),
    ("/v1/runs", {"status": "ok' OR 1=1"}, "status"),
    ("/v1/runs", {"since": "yesterday"}, "since"),
    ("/v1/runs", {"until": "2026-13-45T00:00:00Z"}, "until"),
    ("/v1/runs", {"since": "9999-01-01T00:00:00Z"}, "since"),
    ("/v1/runs", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ("/v1/runs", {"limit": "-1"}, "limit"),
    ("/v1/runs", {"limit": "0"}, "limit"),
    ("/v1/runs", {"limit": "100000000000000000000"}, "limit"),
    ("/v1/runs", {"limit": "ten"}, "limit"),
    ("/v1/runs", {"min_cost": "-1"}, "min_cost"),
    ("/v1/runs", {"min_cost": "nan"}, "min_cost"),
    ("/v1/runs", {"min_cost": "1e308"}, "min_cost"),
    ("/v1/runs", {"has_errors": "maybe"}, "has_errors"),
    ("/v1/runs", {"sort": "run_id; DROP TABLE runs"}, "sort"),
    ("/v1/runs", {"sort": "-password"}, "sort"),
    ("/v1/runs", {"cursor": "not-a-cursor!!"}, "cursor"),
    ("/v1/runs", {"cursor": "eyJzIjoic3RhcnRlZF9hdCJ9"}, "cursor"),
    ("/v1/runs", {"cursor": "x" * 600}, "cursor"),
    ("/v1/runs", {"agent": "a" * 257}, "agent"),
    ("/v1/projects/proj-a/runs", {"since": "not a date"}, "since"),
    ("/v1/projects/proj-a/summary", {"until": "31/12/2026"}, "until"),
    ("/v1/sessions", {"cursor": "e30"}, "cursor"),
    ("/v1/sessions", {"limit": "501"}, "limit"),
    ("/v1/metrics/overview", {"hours": "0"}, "hours"),
    ("/v1/metrics/overview", {"hours": "1000000"}, "hours"),
    ("/v1/runs/" + "ab" * 16 + "/steps", {"kind": "evil"}, "kind"),
]


def test_bad_values_are_422_naming_the_parameter(api):
    with client(api) as c:
        for path, params, parameter in BAD_VALUES:
            _assert_error(c.get(path, params=params), 422, parameter)


def test_tampered_cursors(api):
    import base64
    import json

    def forge(payload) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    with client(api) as c:
        for payload in ({"s": "started_at", "d": True, "v": "1' OR 1=1", "r": "x"},
                        {"s": "started_at", "d": True, "v": 2**70, "r": "x"},
                        {"s": "started_at", "d": True, "v": True, "r": "x"},
                        {"s": "started_at", "d": True, "v": 1, "r": ["x"]},
                        {"s": "'; DROP TABLE runs", "d": True, "v": 1, "r": "x"},
                        [1, 2, 3]):
            _assert_error(c.get("/v1/runs", params={"cursor": forge(payload)}), 422, "cursor")
        forged = forge({"s": "started_at", "d": True, "v": 2**62, "r": "'; DROP TABLE runs; --"})
        assert len(c.get("/v1/runs", params={"cursor": forged}).json()["runs"]) == 2
        _assert_error(c.get("/v1/sessions", params={"cursor": forge({"session": [1, "a", 3]})}), 422, "cursor")


def test_unknown_routes_and_methods_share_the_error_shape(api):
    with client(api) as c:
        _assert_error(c.get("/v1/nothing"), 404)
        _assert_error(c.delete("/v1/runs"), 405)
        _assert_error(c.get("/v1/runs/" + "0" * 32), 404)


def test_openapi_documents_every_endpoint(api):
    with client(api) as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    for path in ("/v1/projects", "/v1/projects/{project_id}/summary", "/v1/projects/{project_id}/runs",
                 "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/steps", "/v1/runs/{run_id}/timeline",
                 "/v1/sessions", "/v1/metrics/overview", "/v1/events"):
        operation = next(iter(spec["paths"][path].values()))
        assert operation.get("description"), path
    params = {p["name"]: p for p in spec["paths"]["/v1/runs"]["get"]["parameters"]}
    assert {"project_id", "status", "agent", "service", "session", "tool", "model", "since", "until",
            "has_errors", "min_cost", "sort", "limit", "cursor"} <= params.keys()
    assert all(p.get("description") for p in params.values())


def test_openapi_describes_the_event_body(api):
    with client(api) as c:
        body = c.get("/openapi.json").json()["paths"]["/v1/events"]["post"]["requestBody"]
    events = body["content"]["application/json"]["schema"]["properties"]["events"]
    assert events["maxItems"] == 1000 and "run_id" in events["items"]["properties"]
    assert "$ref" not in str(events)
