"""Decoding and mapping in worker processes (the default of ``agenttrail serve``)."""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run


@pytest.fixture
def pooled(make_server):
    return make_server(ingest_workers=2)


def test_both_transports_through_worker_processes(pooled):
    for exporter in (GrpcExporter(endpoint=pooled.grpc_endpoint, insecure=True),
                     HttpExporter(endpoint=pooled.http_endpoint + "/v1/traces")):
        spans, run_id = record_support_run(fail_tool=True)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        run = httpx.get(f"{pooled.api_url}/v1/runs/{run_id}").json()
        assert (run["step_count"], run["input_tokens"], run["error_count"]) == (5, 250, 1)


def test_decode_errors_and_partial_success_cross_the_process_boundary(pooled):
    url = pooled.http_endpoint + "/v1/traces"
    garbage = httpx.post(url, content=b"\xff\x00garbage", headers={"content-type": "application/x-protobuf"})
    assert garbage.status_code == 400
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "ok", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000000000000001"},
        {"traceId": "ab" * 16, "spanId": "00" * 8, "name": "zero span id"}]}]}]}
    answer = httpx.post(url, content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code == 200 and int(answer.json()["partialSuccess"]["rejectedSpans"]) == 1


def test_a_killed_worker_is_replaced(pooled):
    import multiprocessing

    url = pooled.http_endpoint + "/v1/traces"
    spans, run_id = record_support_run()
    HttpExporter(endpoint=url).export(spans)  # make sure the workers are up
    workers = [c for c in multiprocessing.active_children() if c.name.startswith("SpawnProcess")]
    assert workers, "the server should map in worker processes"
    for child in workers:
        os.kill(child.pid, signal.SIGKILL)
    spans, run_id = record_support_run()
    # The first export may meet the broken pool and be told to retry; the exporter retries.
    assert HttpExporter(endpoint=url, timeout=20).export(spans) == SpanExportResult.SUCCESS
    assert httpx.get(f"{pooled.api_url}/v1/runs/{run_id}").json()["step_count"] == 5
