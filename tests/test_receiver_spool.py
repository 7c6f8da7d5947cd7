"""Ingest through a storage outage, as exporters see it: acknowledged, spooled, drained, stored once."""

from __future__ import annotations

import json
import logging
import signal

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SpanExportResult

from agenttrail.receiver.mapping import map_export_request
from agenttrail.service.settings import SettingsError
from agenttrail.storage import EncodedSteps
from agenttrail.storage.spool import Spool
from agenttrail.storage.spooled import batch_to_record

from otel_helpers import record_support_run
from spool_helpers import Outage, job, metric, serve, spool_of, wait_for

SUCCESS = SpanExportResult.SUCCESS


@pytest.fixture
def server(make_server):
    """The spool as the outage buffer behind acknowledgements that wait for the commit
    (``ack_after = commit``); tests/test_receiver_journal.py shows it as the ingest journal."""
    return make_server(ack_after="commit")


def _outage(server, **kwargs) -> Outage:
    outage = Outage(**kwargs)
    server.store.writer.wrap_clients(outage.wrap)
    if server.store.writer.drainer is not None:
        server.store.writer.drainer.retry = server.store.writer.drainer.max_retry = 0.2
    return outage


def _run(server, run_id) -> dict:
    return httpx.get(f"{server.api_url}/v1/runs/{run_id}", timeout=10).json()


def _step_counts(server) -> tuple[int, int]:
    return server.store.query("SELECT count(), uniqExact(project_id, run_id, step_id) FROM steps").result_rows[0]


def test_exports_succeed_through_an_outage_and_every_span_is_stored_once(server):
    http = HttpExporter(endpoint=server.http_endpoint + "/v1/traces", timeout=20)
    grpc_exporter = GrpcExporter(endpoint=server.grpc_endpoint, insecure=True, timeout=20)
    before = [record_support_run() for _ in range(2)]
    for spans, _ in before:
        assert http.export(spans) == SUCCESS
    expected = {run_id: _run(server, run_id) for _, run_id in before}
    outage = _outage(server)
    during = [record_support_run(fail_tool=i % 2 == 0) for i in range(6)]
    with outage:
        for i, (spans, _) in enumerate(during):
            assert (http if i % 2 else grpc_exporter).export(spans) == SUCCESS
        assert http.export(during[0][0]) == SUCCESS  # a resend of an acknowledged export
        health = httpx.get(server.api_url + "/health").json()
        assert health["status"] == "degraded"
        assert (health["spool"]["batches"], health["spool"]["spans"]) == (7, 35)
        assert health["spool"]["bytes"] > 0 and health["spool"]["oldest_age_s"] >= 0
        assert metric(server.api_url, "agenttrail_spool_spooled_spans_total") == 35
        assert metric(server.api_url, "agenttrail_spool_backlog_spans") == 35
        wait_for(lambda: metric(server.api_url, "agenttrail_spool_drain_failures_total") >= 2, what="failed drains")
        assert httpx.get(f"{server.api_url}/v1/runs/{during[1][1]}").status_code == 404  # not in ClickHouse yet
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the spool to drain")
    assert httpx.get(server.api_url + "/health").json()["status"] == "ok"
    assert _step_counts(server) == (40, 40)
    for i, (_, run_id) in enumerate(during):
        run = _run(server, run_id)
        assert (run["step_count"], run["status"], run["error_count"], run["total_tokens"]) == \
            (5, "ok", 1 if i % 2 == 0 else 0, 310)
    for run_id, run in expected.items():
        assert _run(server, run_id) == run
    assert metric(server.api_url, "agenttrail_spool_drained_spans_total") == 35
    assert metric(server.api_url, "agenttrail_spool_backlog_bytes") == 0


def test_a_commit_lost_after_its_insert_is_drained_without_doubling(server):
    http = HttpExporter(endpoint=server.http_endpoint + "/v1/traces", timeout=20)
    runs = [record_support_run() for _ in range(3)]
    for spans, _ in runs:  # known runs: a commit of more of their spans recomputes them after its insert
        assert http.export(spans[:2]) == SUCCESS
    with _outage(server, after_insert=True):
        for spans, _ in runs:
            assert http.export(spans[2:]) == SUCCESS
        # The first commit's steps went in before the server went away, its recompute did not.
        assert server.store.query("SELECT count() FROM steps").result_rows == [(9,)]
        assert spool_of(server.api_url)["spans"] == 9
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the spool to drain")
    assert _step_counts(server) == (15, 15)
    assert [_run(server, run_id)["step_count"] for _, run_id in runs] == [5, 5, 5]


def _post(server, request) -> httpx.Response:
    return httpx.post(server.http_endpoint + "/v1/traces", content=request.SerializeToString(),
                      headers={"content-type": "application/x-protobuf"}, timeout=30)


def test_a_full_spool_answers_retry_later_on_both_transports_then_recovers(make_server):
    spans, _ = record_support_run()
    one = len(batch_to_record(EncodedSteps.of(map_export_request(encode_spans(spans)).batch, 0), 0)) + 24
    server = make_server(spool_max_bytes=int(2.5 * one), ack_after="commit")
    runs = [record_support_run() for _ in range(3)]
    with _outage(server):
        assert _post(server, encode_spans(runs[0][0])).status_code == 200
        assert _post(server, encode_spans(runs[1][0])).status_code == 200
        refused = _post(server, encode_spans(runs[2][0]))
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert "spool is full" in refused.text
        with grpc.insecure_channel(server.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as failure:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(encode_spans(runs[2][0]), timeout=20)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        retry = error_details_pb2.RetryInfo.FromString(dict(failure.value.trailing_metadata())["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds >= 1
        assert metric(server.api_url, "agenttrail_spool_full_refused_spans_total") == 10
        assert spool_of(server.api_url)["bytes"] <= int(2.5 * one)
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the spool to drain")
    assert _post(server, encode_spans(runs[2][0])).status_code == 200  # the exporter's retry
    assert _step_counts(server) == (15, 15)
    assert [_run(server, run_id)["step_count"] for _, run_id in runs] == [5, 5, 5]


def test_a_damaged_spool_is_replayed_up_to_the_damage_and_the_server_starts(make_server, tmp_path, caplog):
    directory = tmp_path / "left-behind" / "0"  # the first slot: taken by the next process to start
    runs = [record_support_run() for _ in range(3)]
    spool = Spool(str(directory), max_bytes=1 << 24)
    spool.append([(batch_to_record(EncodedSteps.of(map_export_request(encode_spans(spans)).batch, 0), 0), 5)
                  for spans, _ in runs])
    spool.close()
    segment = next(directory.glob("*.spool"))
    segment.write_bytes(segment.read_bytes()[:-40])  # the last record was torn by a crash
    with caplog.at_level(logging.ERROR, logger="agenttrail.storage.spool"):
        server = make_server(spool_dir=str(directory.parent))
    assert "torn record" in caplog.text
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the replay")
    assert [_run(server, run_id)["step_count"] for _, run_id in runs[:2]] == [5, 5]
    assert httpx.get(f"{server.api_url}/v1/runs/{runs[2][1]}").status_code == 404
    assert _step_counts(server) == (10, 10)


def test_a_spool_directory_that_cannot_be_used_stops_the_start_naming_the_setting(make_server, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(SettingsError, match="spool_dir.*not-a-dir"):
        make_server(spool_dir=str(blocker / "spool"))


def test_receivers_given_one_spool_directory_take_a_slot_each(make_server, tmp_path):
    first, second = (make_server(spool_dir=str(tmp_path / "shared")) for _ in range(2))
    assert {first.store.writer.spool.directory, second.store.writer.spool.directory} == \
        {str(tmp_path / "shared" / "0"), str(tmp_path / "shared" / "1")}


def test_without_a_spool_an_outage_is_answered_retry_later(make_server):
    server = make_server(spool_max_bytes=0)
    spans, run_id = record_support_run()
    with _outage(server):
        assert _post(server, encode_spans(spans)).status_code == 503
    assert "spool" not in httpx.get(server.api_url + "/health").json()
    assert httpx.get(f"{server.api_url}/v1/runs/{run_id}").status_code == 404


# -- a crash with a non-empty spool: `agenttrail serve` killed with SIGKILL, then restarted ------------


def test_a_server_killed_with_a_spool_replays_it_on_restart_nothing_lost_nothing_doubled(tmp_path):
    job("refuse", tmp_path)  # ClickHouse now refuses inserts into steps (TOO_MANY_PARTS)
    proc, api, traces = serve(tmp_path)
    runs = [record_support_run(fail_tool=i == 1) for i in range(4)]
    try:
        exporter = HttpExporter(endpoint=traces, timeout=20)
        for spans, _ in runs:
            assert exporter.export(spans) == SUCCESS
        exporter.export(runs[0][0])  # an exporter's resend, acknowledged too
        assert spool_of(api)["spans"] == 25
        assert (tmp_path / "spool").is_dir()  # next to the embedded data
        wait_for(lambda: metric(api, "agenttrail_spool_drain_failures_total") >= 1, what="a refused drain")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    job("accept", tmp_path)
    proc, api, _ = serve(tmp_path)
    try:
        wait_for(lambda: spool_of(api)["batches"] == 0, timeout=90, what="the replay")
        for i, (_, run_id) in enumerate(runs):
            run = httpx.get(f"{api}/v1/runs/{run_id}", timeout=10).json()
            assert (run["step_count"], run["status"], run["error_count"]) == (5, "ok", 1 if i == 1 else 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert json.loads(job("count", tmp_path)) == {"rows": 23, "distinct": 23}  # 3 before + 4 runs of 5
