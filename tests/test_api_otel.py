"""The read API on runs sent by the real OpenTelemetry SDK exporters and by the event API."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from api_helpers import client
from otel_helpers import record_support_run


@pytest.fixture
def api(server):
    ok_spans, ok_run = record_support_run(project="shop")
    bad_spans, bad_run = record_support_run(project="shop", fail_tool=True)
    other_spans, other_run = record_support_run(project="other")
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(ok_spans) == SpanExportResult.SUCCESS
    grpc = GrpcExporter(endpoint=server.grpc_endpoint, insecure=True)
    assert grpc.export(bad_spans + other_spans) == SpanExportResult.SUCCESS
    server.runs = {"ok": ok_run, "bad": bad_run, "other": other_run}
    return server


def test_lists_and_filters_over_exported_runs(api):
    runs = api.runs
    with client(api, None) as c:
        shop = [r["run_id"] for r in c.get("/v1/projects/shop/runs").json()["runs"]]
        assert sorted(shop) == sorted([runs["ok"], runs["bad"]])
        assert [r["run_id"] for r in c.get("/v1/runs", params={"has_errors": "true"}).json()["runs"]] == [runs["bad"]]
        assert len(c.get("/v1/runs", params={"tool": "order_lookup", "model": "gpt-4o-mini"}).json()["runs"]) == 3
        assert c.get("/v1/runs", params={"agent": "support-agent", "session": "conv-1",
                                         "service": "support-svc"}).json()["runs"]
        sessions = c.get("/v1/sessions", params={"project_id": "shop"}).json()["sessions"]
        assert [(s["session_id"], s["run_count"], s["llm_calls"]) for s in sessions] == [("conv-1", 2, 4)]


def test_summary_timeline_and_overview_over_exported_runs(api):
    with client(api, None) as c:
        summary = c.get("/v1/projects/shop/summary").json()
        assert summary["runs"] == 2 and summary["success_rate"] == 1.0
        assert summary["top_failing_tools"] == [{"tool": "order_lookup", "count": 1, "calls": 2}]
        assert {t["tool"] for t in summary["top_tools"]} == {"order_lookup", "shipping_status"}
        assert summary["models"][0]["model"] == "gpt-4o-mini" and summary["models"][0]["calls"] == 4
        assert summary["input_tokens"] == 500 and summary["cost_usd"] > 0
        timeline = c.get(f"/v1/runs/{api.runs['bad']}/timeline").json()
        (root,) = timeline["roots"]
        assert root["kind"] == "agent" and [n["kind"] for n in root["children"]] == ["llm", "tool", "tool", "llm"]
        assert all(n["offset_ms"] >= 0 and n["duration_ms"] >= 0 for n in root["children"])
        overview = c.get("/v1/metrics/overview").json()
        assert overview["total_runs"] == 3 and overview["top_failing_tools"][0]["tool"] == "order_lookup"
        projects = {p["project_id"]: p["run_count"] for p in c.get("/v1/projects").json()["projects"]}
        assert projects == {"shop": 2, "other": 1}


def test_event_runs_and_otlp_runs_share_one_shape(api):
    with client(api, None) as c:
        ids = c.post("/v1/events", json={"events": [
            {"type": "run.start", "run_id": "evt-run", "project_id": "shop", "agent": "support-agent"},
            {"type": "step.start", "run_id": "evt-run", "step_id": "a", "tool": "order_lookup"},
            {"type": "step.end", "run_id": "evt-run", "step_id": "a", "status": "ok", "latency_ms": 3},
            {"type": "run.end", "run_id": "evt-run"}]}).json()["run_ids"]
        listed = c.get("/v1/projects/shop/runs").json()["runs"]
        assert len(listed) == 3 and len({frozenset(r) for r in listed}) == 1
        event_run, otlp_run = c.get(f"/v1/runs/{ids['evt-run']}").json(), c.get(f"/v1/runs/{api.runs['ok']}").json()
        assert event_run.keys() == otlp_run.keys()
        assert event_run["steps"][0].keys() == otlp_run["steps"][0].keys()
        top = c.get("/v1/projects/shop/summary").json()["top_tools"][0]
        assert (top["tool"], top["calls"], top["errors"]) == ("order_lookup", 3, 1)
