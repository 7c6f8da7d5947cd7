"""API keys on ingest, and retryable answers while storage cannot take writes."""

from __future__ import annotations

import threading
import time

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run

KEYS = (
    {"key": "ingest-demo-key", "scopes": ["ingest"], "projects": ["demo"]},
    {"key": "reader-demo-key", "scopes": ["read"], "projects": ["demo"]},
)


def grpc_export(server, request, metadata=()):
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        return trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, metadata=metadata, timeout=20)


def test_keys_required_for_ingest_over_http_and_grpc(make_server):
    server = make_server(api_keys=KEYS)
    spans, run_id = record_support_run(service="whatever-service")
    body = encode_spans(spans).SerializeToString()
    url = server.http_endpoint + "/v1/traces"
    headers = {"content-type": "application/x-protobuf"}
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    assert httpx.post(url, content=body, headers={**headers, "x-api-key": "wrong-key-123"}).status_code == 401
    assert httpx.post(url, content=body, headers={**headers, "x-api-key": "reader-demo-key"}).status_code == 403
    with pytest.raises(grpc.RpcError) as missing:
        grpc_export(server, encode_spans(spans))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # The real exporter, configured the way OTEL_EXPORTER_OTLP_HEADERS would configure it.
    exporter = GrpcExporter(endpoint=server.grpc_endpoint, insecure=True,
                            headers={"authorization": "Bearer ingest-demo-key"})
    assert exporter.export(spans) == SpanExportResult.SUCCESS

    api = f"{server.api_url}/v1/runs/{run_id}"
    assert httpx.get(api).status_code == 401
    run = httpx.get(api, headers={"x-api-key": "reader-demo-key"}).json()
    assert run["project_id"] == "demo"  # the key's project wins over service.name


def test_header_project_used_without_keys(server):
    spans, run_id = record_support_run(service="svc")
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces",
                            headers={"x-agenttrail-project": "team-a"})
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert httpx.get(f"{server.api_url}/v1/runs/{run_id}").json()["project_id"] == "team-a"


class StorageOutage:
    """Make the steps table disappear (writes fail for real), then bring it back."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        self.store.command("RENAME TABLE steps TO steps_outage")
        return self

    def restore(self):
        if self.store.query("EXISTS TABLE steps_outage").result_rows[0][0]:
            self.store.command("RENAME TABLE steps_outage TO steps")

    def __exit__(self, *exc):
        self.restore()


def test_storage_outage_is_retryable_on_both_transports_and_nothing_is_lost(make_server):
    server = make_server(ack_after="commit")  # answers wait for ClickHouse, which refuses
    spans, run_id = record_support_run()
    request = encode_spans(spans)
    with StorageOutage(server.store):
        response = httpx.post(server.http_endpoint + "/v1/traces", content=request.SerializeToString(),
                              headers={"content-type": "application/x-protobuf"}, timeout=30)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1

        with pytest.raises(grpc.RpcError) as failure:
            grpc_export(server, request)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        trailers = dict(failure.value.trailing_metadata())
        retry = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds >= 1

    # Nothing of the refused exports was half-written.
    assert httpx.get(f"{server.api_url}/v1/runs/{run_id}").status_code == 404


def test_exporter_retry_lands_after_storage_recovers(make_server):
    server = make_server(ack_after="commit")
    spans, run_id = record_support_run()
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces", timeout=20)
    outage = StorageOutage(server.store).__enter__()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", exporter.export(spans)))
    thread.start()
    time.sleep(1.5)  # the exporter has been refused at least once by now
    outage.restore()
    thread.join(30)
    assert result["r"] == SpanExportResult.SUCCESS
    assert httpx.get(f"{server.api_url}/v1/runs/{run_id}").json()["step_count"] == 5


def test_with_the_journal_exports_are_kept_until_storage_takes_them_again(server):
    spans, run_id = record_support_run()
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces", timeout=20)
    server.store.writer.drainer.retry = server.store.writer.drainer.max_retry = 0.2
    with StorageOutage(server.store):
        assert exporter.export(spans) == SpanExportResult.SUCCESS  # durable in the journal
        deadline = time.monotonic() + 30
        while not server.store.writer.drainer.failing and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.store.writer.drainer.failing and server.store.spool_status()["spans"] == 5
    assert server.store.flush()
    assert httpx.get(f"{server.api_url}/v1/runs/{run_id}").json()["step_count"] == 5


def test_health_reports_storage_state(server):
    empty_spool = {"batches": 0, "spans": 0, "bytes": 0, "oldest_age_s": 0.0, "max_bytes": 1024 ** 3,
                   "quarantined_batches": 0, "quarantined_spans": 0, "journal": True, "failing": False}
    assert httpx.get(server.api_url + "/health").json() == {"status": "ok", "storage": "ok", "spool": empty_spool}
    with StorageOutage(server.store):
        response = httpx.get(server.api_url + "/health")
        assert response.status_code == 503 and response.json()["storage"] == "unreachable"
    assert httpx.get(server.api_url + "/health").status_code == 200


def test_too_many_bytes_in_flight_is_retryable_on_both_transports(make_server):
    server = make_server(max_inflight_bytes=64 * 1024)
    spans, run_id = record_support_run()
    request = encode_spans(spans)
    # Other exports fill the budget but for 100 bytes (held here), so this one does not fit.
    assert request.ByteSize() > 100
    with server.ingestor.budget.hold(64 * 1024 - 100):
        response = httpx.post(server.http_endpoint + "/v1/traces", content=request.SerializeToString(),
                              headers={"content-type": "application/x-protobuf"}, timeout=30)
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        with pytest.raises(grpc.RpcError) as refused:
            grpc_export(server, request)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.ingestor.budget.in_flight == 0  # refused requests released what they held
    assert httpx.get(f"{server.api_url}/v1/runs/{run_id}").status_code == 404
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces")
    assert exporter.export(spans) == SpanExportResult.SUCCESS  # alone, it is admitted
