"""GET /v1/runs/{id}/rca: evidence first, hypotheses citing evidence, insufficient-evidence mode."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from api_helpers import client
from test_failure_api import _run


def _generic_failure():
    """A run with no tool call, no error type, and only a generic message."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "agenttrail.project": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.rca")
    with tracer.start_as_current_span("process batch") as root:
        with tracer.start_as_current_span("finalize"):
            pass
        root.set_status(Status(StatusCode.ERROR, "Internal Server Error"))
        run_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return list(memory.get_finished_spans()), run_id


@pytest.fixture
def api(server):
    runs, spans = {}, []
    for shape in ("exhausted", "loop", "clean", "recovered"):
        shape_spans, run_id, ids = _run(shape)
        spans += shape_spans
        runs[shape] = (run_id, ids)
    generic_spans, generic_run = _generic_failure()
    spans += generic_spans
    runs["generic"] = (generic_run, [])
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    server.runs = runs
    return server


def _rca(api, shape):
    with client(api, None) as c:
        r = c.get(f"/v1/runs/{api.runs[shape][0]}/rca")
        assert r.status_code == 200, r.text
        return r.json()


def _cites_only_known_evidence(report):
    known = {e["evidence_id"] for e in report["evidence_index"]}
    assert len(known) == len(report["evidence_index"])
    for hypothesis in report["hypotheses"]:
        assert hypothesis["evidence_ids"] and set(hypothesis["evidence_ids"]) <= known
        assert hypothesis["confidence"] in ("high", "medium", "low") and hypothesis["verification_steps"]


def test_a_failed_run_gets_an_evidence_first_report(api):
    report = _rca(api, "exhausted")
    _cites_only_known_evidence(report)
    ids = api.runs["exhausted"][1]
    assert report["category"] == "timeout" and report["insufficient_evidence"] is False
    assert report["root_cause_step_id"] == ids[1]
    kinds = {e["kind"] for e in report["evidence_index"]}
    assert {"tool_call", "retry_chain"} <= kinds
    first = next(e for e in report["evidence_index"] if e["step_id"] == ids[1] and e["kind"] == "tool_call")
    assert first["snippet"] == "Read timed out after 30 s" and first["attributes"]["error_type"] == "TimeoutError"
    (primary, *_) = report["hypotheses"]
    assert primary["evidence_ids"][0] == first["evidence_id"] and primary["confidence"] == "high"
    assert report["action_items"] and all(a["priority"] in ("high", "medium", "low") for a in report["action_items"])


def test_a_loop_is_reported_with_its_calls_as_evidence(api):
    report = _rca(api, "loop")
    _cites_only_known_evidence(report)
    assert report["category"] == "planner_loop"
    assert report["hypotheses"][0]["evidence_ids"] == [f"ev_loop_{api.runs['loop'][1][0]}"]


@pytest.mark.parametrize("shape, reason", [
    ("generic", "Limited telemetry"), ("clean", "Nothing failed"), ("recovered", "recovered")])
def test_without_evidence_the_report_says_so_and_asks_for_data(api, shape, reason):
    report = _rca(api, shape)
    assert report["insufficient_evidence"] is True and reason in report["insufficient_reason"]
    assert report["category"] == "unknown" and report["hypotheses"] == []
    assert [a["title"] for a in report["action_items"]] == ["Enable detailed tracing", "Add structured error codes"]
    if shape == "generic":
        assert report["evidence_index"] == []  # "Internal Server Error" alone is not evidence


@pytest.mark.parametrize("run_id, status", [("0" * 31 + "1", 404), ("not-a-run", 422), ("x" * 5000, 422), ("' OR 1=1", 422)])
def test_unknown_or_malformed_run_ids(api, run_id, status):
    with client(api, None) as c:
        r = c.get(f"/v1/runs/{run_id}/rca")
        assert r.status_code == status and "run" in r.json()["error"]["message"]
        assert c.get("/health").json()["status"] == "ok"
