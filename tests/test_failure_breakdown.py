"""GET /v1/projects/{p}/failures: failed steps grouped by category, tool, agent, fingerprint, model."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from api_helpers import client
from test_failure_api import _run


@pytest.fixture
def api(server):
    runs, spans = {}, []
    for shape in ("exhausted", "recovered", "loop", "clean"):
        shape_spans, run_id, _ = _run(shape)
        spans += shape_spans
        runs[shape] = run_id
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    server.runs = runs
    return server


def _groups(api, **params):
    with client(api, None) as c:
        r = c.get("/v1/projects/shop/failures", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
    return body, {g["key"]: g for g in body["groups"]}


def test_grouped_by_category(api):
    body, groups = _groups(api)
    assert body["group_by"] == "category" and body["total_runs"] == 4
    assert set(groups) == {"timeout", "rate_limited", "server_error"}  # the exhausted run's root: "crm unavailable"
    timeout = groups["timeout"]
    assert (timeout["run_count"], timeout["step_count"], timeout["share_of_runs"]) == (1, 3, 0.25)
    assert timeout["example_run_ids"] == [api.runs["exhausted"]] and timeout["categories"] == ["timeout"]
    assert timeout["sample_message"] == "Read timed out after 30 s"
    (hour,) = timeout["trend"]
    assert hour["steps"] == 3 and hour["hour"].endswith(":00:00Z")
    assert timeout["first_seen"] <= timeout["last_seen"]
    assert groups["rate_limited"]["example_run_ids"] == [api.runs["recovered"]]


@pytest.mark.parametrize("group_by, key, steps", [
    ("tool", "crm", 3), ("model", "gpt-4o-mini", 1), ("fingerprint", "Read timed out after <n> s", 3),
    ("agent", "shop-agent", 5)])
def test_grouped_by_tool_model_fingerprint_agent(api, group_by, key, steps):
    body, groups = _groups(api, group_by=group_by)
    assert key in groups, groups
    assert groups[key]["step_count"] == steps
    if group_by == "tool":
        assert set(groups) == {"crm"}


def test_a_window_without_failures_is_empty(api):
    past = datetime.now(timezone.utc) - timedelta(days=3)
    body, groups = _groups(api, since=past.isoformat(), until=(past + timedelta(hours=1)).isoformat())
    assert groups == {}


@pytest.mark.parametrize("params", [
    {"group_by": "bogus"}, {"group_by": "category; DROP TABLE steps"}, {"limit": "0"}, {"limit": "100000"},
    {"since": "yesterday"}, {"since": "x" * 100}, {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
])
def test_bad_parameters_are_a_clear_4xx_and_nothing_breaks(api, params):
    with client(api, None) as c:
        r = c.get("/v1/projects/shop/failures", params=params)
        assert 400 <= r.status_code < 500 and r.json()["error"]["message"]
        assert c.get("/v1/projects/shop/failures").json()["total_runs"] == 4


def test_other_projects_see_nothing(api):
    with client(api, None) as c:
        assert c.get("/v1/projects/elsewhere/failures").json()["groups"] == []
