"""The real OpenTelemetry SDK exporters (gRPC and HTTP) against a running agenttrail server."""

from __future__ import annotations

import random

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run


def exporter(server, protocol: str, **kwargs):
    if protocol == "grpc":
        return GrpcExporter(endpoint=server.grpc_endpoint, insecure=True, **kwargs)
    return HttpExporter(endpoint=server.http_endpoint + "/v1/traces", **kwargs)


def get_run(server, run_id, **headers):
    return httpx.get(f"{server.api_url}/v1/runs/{run_id}", headers=headers, timeout=10)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_exported_run_is_queryable_with_totals_and_ordered_steps(server, protocol):
    spans, run_id = record_support_run(fail_tool=True)
    assert exporter(server, protocol).export(spans) == SpanExportResult.SUCCESS

    response = get_run(server, run_id)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["project_id"] == "support-svc"  # service.name, no key or header
    assert run["agent_name"] == "support-agent"
    assert run["session_id"] == "conv-1"
    assert run["status"] == "ok" and run["root_missing"] is False
    assert (run["step_count"], run["llm_calls"], run["tool_calls"], run["error_count"]) == (5, 2, 2, 1)
    assert (run["input_tokens"], run["output_tokens"]) == (250, 60)
    assert run["cost_usd"] is not None and run["cost_usd"] > 0  # gpt-4o-mini is in the price table
    kinds = [s["kind"] for s in run["steps"]]
    assert kinds == ["agent", "llm", "tool", "tool", "llm"]
    assert [s["depth"] for s in run["steps"]] == [0, 1, 1, 1, 1]
    tool = run["steps"][2]
    assert tool["tool"] == "order_lookup" and tool["status"] == "error"
    assert tool["error_type"] == "TimeoutError" and tool["tool_arguments"] == {"order_id": "12345"}


def test_http_exporter_gzip_and_uuid_run_id(server):
    spans, run_id = record_support_run()
    assert exporter(server, "http", compression=Compression.Gzip).export(spans) == SpanExportResult.SUCCESS
    uuid_form = f"{run_id[:8]}-{run_id[8:12]}-{run_id[12:16]}-{run_id[16:20]}-{run_id[20:]}".upper()
    assert get_run(server, uuid_form).json()["run_id"] == run_id


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_any_arrival_order_and_duplicates_give_the_same_run(server, protocol):
    spans, run_id = record_support_run()
    reference, reference_id = record_support_run()
    exp = exporter(server, protocol)
    assert exp.export(reference) == SpanExportResult.SUCCESS
    expected = get_run(server, reference_id).json()

    root = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None]
    random.Random(7).shuffle(children)
    assert exp.export(children[:2]) == SpanExportResult.SUCCESS
    partial = get_run(server, run_id).json()
    assert partial["status"] == "in_progress" and partial["root_missing"] is True
    assert partial["orphan_count"] == 2  # their parent (the root) is not stored yet
    for batch in (children[2:], root, children, spans):  # the last two are client retries
        assert exp.export(batch) == SpanExportResult.SUCCESS

    final = get_run(server, run_id).json()
    comparable = ("status", "step_count", "llm_calls", "tool_calls", "error_count", "input_tokens",
                  "output_tokens", "total_tokens", "cost_usd", "root_missing", "orphan_count", "agent_name")
    assert {k: final[k] for k in comparable} == {k: expected[k] for k in comparable}
    assert len(final["steps"]) == 5
    assert [s["kind"] for s in final["steps"]] == [s["kind"] for s in expected["steps"]]


def test_unknown_run_is_404_and_bad_run_id_is_422(server):
    assert get_run(server, "0" * 31 + "1").status_code == 404
    bad = get_run(server, "not-a-run")
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_parameter"
