"""Failure columns filled at ingest: real OpenTelemetry SDK spans through the real receiver
(OTLP/HTTP and gRPC exporters) into ClickHouse, read back through the REST API; and the event API."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from api_helpers import client

LLM = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.provider.name": "openai"}
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.type": "function"}


def _failing_run():
    """A run whose children each fail (or not) by one kind of evidence; returns (spans, run id)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "agenttrail.project": "fail"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.failures")

    def child(name, attrs, *, error=None, exception=None, events=(), status=None):
        with tracer.start_as_current_span(name, attributes=attrs, record_exception=False,
                                          set_status_on_exception=False) as span:
            for event_name, event_attrs in events:
                span.add_event(event_name, event_attrs)
            if exception is not None:
                span.record_exception(exception)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            elif status is not None:
                span.set_status(Status(status))

    with tracer.start_as_current_span("invoke_agent shop", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shop"}) as root:
        child("rate", {**LLM, "error.type": "RateLimitError"}, error="Rate limit reached for gpt-4o-mini")
        child("auth", {**LLM}, exception=PermissionError("no"), error="Error code: 401")
        child("ctx", {**LLM}, error="This model's maximum context length is 8192 tokens, you asked 9000")
        child("filtered", {**LLM, "gen_ai.response.finish_reasons": ["content_filter"]}, status=StatusCode.OK)
        child("schema", {**TOOL, "gen_ai.tool.name": "lookup"},
              events=[("exception", {"exception.type": "ValidationError",
                                     "exception.message": "Missing required field: 'customer_id'"})],
              error="tool failed")
        child("http404", {**TOOL, "gen_ai.tool.name": "fetch", "http.response.status_code": 404}, error="")
        child("grpc", {**TOOL, "gen_ai.tool.name": "rpc", "rpc.grpc.status_code": 4}, error="")
        child("empty", {"gen_ai.operation.name": "retrieval", "db.response.returned_rows": 0})
        child("handled", {**TOOL, "gen_ai.tool.name": "flaky"},
              events=[("exception", {"exception.type": "TimeoutError", "exception.message": "first try"}),
                      ("agent.step_recovery", {"severity": "expected", "message": "retried"})],
              status=StatusCode.OK)
        child("fine", {**TOOL, "gen_ai.tool.name": "ok_tool"})
        root.set_status(Status(StatusCode.ERROR, "agent gave up"))
        root.add_event("agenttrail.failure", {"agenttrail.failure.type": "tool",
                                              "agenttrail.failure.code": "timeout"})
        run_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return list(memory.get_finished_spans()), run_id


EXPECTED = {
    "rate": ("rate_limited", "model"), "auth": ("auth", "model"), "ctx": ("context_length", "model"),
    "filtered": ("content_filter", "model"), "schema": ("tool_schema_mismatch", "tool"),
    "http404": ("not_found", "tool"), "grpc": ("timeout", "tool"), "empty": ("retrieval_empty", "retrieval"),
    "handled": (None, None), "fine": (None, None), "invoke_agent shop": ("timeout", "tool"),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sdk_spans_land_classified(server, protocol):
    spans, run_id = _failing_run()
    exporter = (HttpExporter(endpoint=server.http_endpoint + "/v1/traces") if protocol == "http"
                else GrpcExporter(endpoint=server.grpc_endpoint, insecure=True))
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    with client(server, None) as c:
        steps = {s["name"]: s for s in c.get(f"/v1/runs/{run_id}").json()["steps"]}
    assert {name: (s["failure_category"], s["failure_type"]) for name, s in steps.items()} == EXPECTED
    assert steps["schema"]["error_fingerprint"] == "Missing required field: <v>"  # exception message
    assert steps["ctx"]["error_fingerprint"] == "This model's maximum context length is <n> tokens, you asked <n>"
    assert steps["fine"]["error_fingerprint"] is None and steps["fine"]["handled_errors"] == []
    assert [(h["event"], h["type"]) for h in steps["handled"]["handled_errors"]] == [
        ("exception", "TimeoutError"), ("agent.step_recovery", None)]
    assert steps["handled"]["status"] == "ok"


def test_a_huge_hostile_error_is_stored_bounded_and_the_server_stays_up(server):
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.failures")
    with tracer.start_as_current_span("root", attributes={"error.type": ["odd", "list"],
                                                          "http.response.status_code": "NaN"}) as root:
        root.add_event("exception", {"exception.type": 42, "exception.message": "'" * 300_000})
        root.add_event("agenttrail.failure", {"agenttrail.failure.code": True})
        root.set_status(Status(StatusCode.ERROR, "x9" * 200_000))
        run_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(
        list(memory.get_finished_spans())) == SpanExportResult.SUCCESS
    with client(server, None) as c:
        (step,) = c.get(f"/v1/runs/{run_id}").json()["steps"]
        assert step["failure_category"] == "unknown" and len(step["error_fingerprint"]) <= 200
        assert c.get("/health").json()["status"] == "ok"


def test_event_api_steps_are_classified(server):
    with client(server, None) as c:
        r = c.post("/v1/events", json={"events": [
            {"type": "run.start", "run_id": "evt-fail", "project_id": "fail", "agent": "a"},
            {"type": "step.start", "run_id": "evt-fail", "step_id": "s1", "tool": "search"},
            {"type": "step.end", "run_id": "evt-fail", "step_id": "s1", "status": "error",
             "error_type": "RateLimitError", "error": "429 Too Many Requests for order 77"},
            {"type": "step.start", "run_id": "evt-fail", "step_id": "s2", "tool": "search"},
            {"type": "step.end", "run_id": "evt-fail", "step_id": "s2", "status": "ok"},
            {"type": "run.end", "run_id": "evt-fail", "status": "error", "error": "gave up"}]})
        assert r.status_code == 200, r.text
        run = c.get(f"/v1/runs/{r.json()['run_ids']['evt-fail']}").json()
    by_tool = {(s["tool"], s["status"]): s for s in run["steps"]}
    failed = by_tool[("search", "error")]
    assert (failed["failure_category"], failed["failure_type"]) == ("rate_limited", "tool")
    assert failed["error_fingerprint"] == "<n> Too Many Requests for order <n>"
    assert by_tool[("search", "ok")]["failure_category"] is None
