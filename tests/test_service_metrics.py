"""``GET /metrics``: the server's ingest telemetry, scraped and parsed as Prometheus would."""

from __future__ import annotations

import grpc
import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SpanExportResult
from prometheus_client.parser import text_string_to_metric_families

from otel_helpers import record_support_run

PROTOBUF = {"content-type": "application/x-protobuf"}


def scrape(server, headers=None) -> dict[tuple, float]:
    response = httpx.get(f"{server.api_url}/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def exports(samples, transport, outcome) -> float:
    return samples[("agenttrail_receiver_exports_total", (("outcome", outcome), ("transport", transport)))]


def test_metrics_count_what_the_receivers_answered(server):
    before = scrape(server)
    assert exports(before, "http", "ok") == 0 and exports(before, "grpc", "retry_later") == 0
    assert before[("agenttrail_writer_pending_spans", ())] == 0

    spans, _ = record_support_run(service="metrics-svc")
    # Each export committed before the next (the journal would otherwise commit them as one).
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    assert server.store.flush()
    assert GrpcExporter(endpoint=server.grpc_endpoint, insecure=True).export(spans) == SpanExportResult.SUCCESS
    assert server.store.flush()
    url = server.http_endpoint + "/v1/traces"
    assert httpx.post(url, content=b"\xff garbage", headers=PROTOBUF).status_code == 400
    assert httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    bad_ids = encode_spans(spans)
    bad_ids.resource_spans[0].scope_spans[0].spans[0].trace_id = b"short"
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(bad_ids, timeout=20)  # partial success
    assert server.store.flush()

    after = scrape(server)
    assert exports(after, "http", "ok") == 1
    assert exports(after, "http", "invalid") == 1
    assert exports(after, "http", "unsupported") == 1
    assert exports(after, "grpc", "ok") == 2
    assert after[("agenttrail_receiver_refused_spans_total", ())] == 1
    # three exports of the same run: every span acknowledged each time, stored once
    assert after[("agenttrail_receiver_accepted_spans_total", ())] == 3 * len(spans) - 1
    assert after[("agenttrail_writer_written_spans_total", ())] == len(spans)
    assert after[("agenttrail_writer_duplicate_spans_total", ())] == 2 * len(spans) - 1
    assert after[("agenttrail_writer_commits_total", ())] >= 1
    assert after[("agenttrail_writer_commit_seconds_total", ())] > 0
    assert after[("agenttrail_writer_commit_failures_total", ())] == 0
    # the first export's run was new (its row came from the commit); the two retries recomputed it
    assert after[("agenttrail_writer_runs_total", (("source", "commit"),))] == 1
    assert after[("agenttrail_writer_runs_total", (("source", "steps"),))] == 2
    assert after[("agenttrail_writer_settling", ())] == 0
    assert after[("agenttrail_receiver_mapping_workers_lost_total", ())] == 0


def test_metrics_need_an_admin_key_when_keys_are_configured(make_server):
    server = make_server(api_keys=(
        {"key": "ingest-demo-key", "scopes": ["ingest"], "projects": ["demo"]},
        {"key": "reader-demo-key", "scopes": ["read"], "projects": ["demo"]},
        {"key": "admin-key-12345", "scopes": ["admin"], "projects": ["*"]},
    ))
    url = f"{server.api_url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"x-api-key": "not-a-key-000"}).status_code == 401
    assert httpx.get(url, headers={"x-api-key": "reader-demo-key"}).status_code == 403

    spans, _ = record_support_run(service="svc")
    body = encode_spans(spans).SerializeToString()
    assert httpx.post(server.http_endpoint + "/v1/traces", content=body, headers=PROTOBUF).status_code == 401
    assert httpx.post(server.http_endpoint + "/v1/traces", content=body,
                      headers={**PROTOBUF, "x-api-key": "reader-demo-key"}).status_code == 403
    samples = scrape(server, {"authorization": "Bearer admin-key-12345"})
    assert exports(samples, "http", "unauthenticated") == 1
    assert exports(samples, "http", "forbidden") == 1
    assert samples[("agenttrail_receiver_accepted_spans_total", ())] == 0


def test_metrics_count_refusals_while_storage_cannot_take_writes(make_server):
    server = make_server()
    server.store.writer.close()  # the writer stops: nothing can be acknowledged any more
    spans, _ = record_support_run(service="svc")
    response = httpx.post(server.http_endpoint + "/v1/traces", content=encode_spans(spans).SerializeToString(),
                          headers=PROTOBUF)
    assert response.status_code == 503
    samples = scrape(server)
    assert exports(samples, "http", "retry_later") == 1
    assert samples[("agenttrail_receiver_accepted_spans_total", ())] == 0


def test_metrics_show_the_store_parts_merges_and_mutations(server):
    spans, _ = record_support_run(service="parts-svc")
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    assert server.store.flush()
    samples = scrape(server)
    assert samples[("agenttrail_store_up", ())] == 1
    steps = (("table", "steps"),)
    assert samples[("agenttrail_store_active_parts", steps)] >= 1
    assert 1 <= samples[("agenttrail_store_partition_parts", steps)] <= samples[("agenttrail_store_active_parts", steps)]
    assert samples[("agenttrail_store_merges_running", steps)] >= 0
    assert samples[("agenttrail_store_mutations_pending", steps)] == 0


def test_a_store_that_does_not_answer_leaves_only_its_up_gauge():
    from prometheus_client import CollectorRegistry, generate_latest

    from agenttrail.service.telemetry import StoreCollector
    from agenttrail.storage import StorageUnavailable

    class Unreachable:
        database = "agenttrail"

        def query(self, *args, **kwargs):
            raise StorageUnavailable("connection refused")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(Unreachable()))
    text = generate_latest(registry).decode()
    samples = {sample.name: sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples}
    assert samples == {"agenttrail_store_up": 0}
