"""``GET /v1/projects/{p}/timeseries``: the summary's run figures per time bucket."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api_helpers import ADMIN, KEYS, READ_A, READ_B, add_run, client

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def api(make_server):
    server = make_server(api_keys=KEYS)
    store = server.store
    add_run(store, "proj-a", T0 + timedelta(minutes=10), cost=0.01, tokens=(100, 10))
    add_run(store, "proj-a", T0 + timedelta(minutes=50), cost=0.02, tokens=(200, 20), status="error")
    add_run(store, "proj-a", T0 + timedelta(hours=2, minutes=5), cost=0.04, tokens=(300, 30))
    add_run(store, "proj-a", T0 + timedelta(hours=2, minutes=6), root=False)  # in progress
    add_run(store, "proj-a", T0 + timedelta(hours=5), cost=7.0)  # after the window
    add_run(store, "proj-b", T0 + timedelta(minutes=20), cost=9.0)
    return server


def test_buckets_split_the_window_by_run_start(api):
    with client(api, READ_A) as c:
        body = c.get("/v1/projects/proj-a/timeseries", params={
            "since": "2026-03-01T00:00:00Z", "until": "2026-03-01T03:00:00Z", "buckets": 3}).json()
    assert body["bucket_seconds"] == 3600.0
    first, empty, third = body["buckets"]
    assert [b["start"] for b in body["buckets"]] == ["2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"]
    assert (first["runs"], first["ok_runs"], first["error_runs"], first["success_rate"]) == (2, 1, 1, 0.5)
    assert first["cost_usd"] == pytest.approx(0.03) and first["input_tokens"] == 300 and first["output_tokens"] == 30
    assert first["p50_run_duration_ms"] > 0 and first["p95_run_duration_ms"] >= first["p50_run_duration_ms"]
    assert (empty["runs"], empty["success_rate"], empty["cost_usd"], empty["p95_run_duration_ms"]) == (0, None, None, None)
    assert (third["runs"], third["ok_runs"], third["in_progress_runs"], third["success_rate"]) == (2, 1, 1, 1.0)


def test_buckets_agree_with_the_summary_of_each_bucket(api):
    with client(api, ADMIN) as c:
        series = c.get("/v1/projects/proj-a/timeseries", params={
            "since": "2026-03-01T00:00:00Z", "until": "2026-03-01T06:00:00Z", "buckets": 4}).json()["buckets"]
        for bucket in series:
            start = datetime.fromisoformat(bucket["start"].replace("Z", "+00:00"))
            summary = c.get("/v1/projects/proj-a/summary", params={
                "since": start.isoformat(), "until": (start + timedelta(hours=1.5)).isoformat()}).json()
            for key in ("runs", "ok_runs", "error_runs", "in_progress_runs", "input_tokens", "success_rate"):
                assert bucket[key] == summary[key], (bucket["start"], key)


def test_another_projects_series_is_404_and_bad_parameters_are_422(api):
    with client(api, READ_B) as c:
        assert c.get("/v1/projects/proj-a/timeseries").status_code == 404
        assert c.get("/v1/projects/proj-b/timeseries", params={"since": "2026-03-01T00:00:00Z", "until": "2026-03-02T00:00:00Z"}).json()["buckets"][0]["runs"] == 1
        for params, name in (({"buckets": 0}, "buckets"), ({"buckets": 501}, "buckets"), ({"buckets": "x"}, "buckets"),
                             ({"since": "soon"}, "since"), ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
                             ({"until": "9999-01-01T00:00:00Z"}, "until"), ({"since": "x" * 100}, "since")):
            answer = c.get("/v1/projects/proj-b/timeseries", params=params)
            assert answer.status_code == 422 and name in {d["parameter"] for d in answer.json()["error"]["details"]}
        assert c.get("/v1/projects/" + "p" * 300 + "/timeseries").status_code == 422
        assert c.get("/health").status_code == 200
