"""Ingest acknowledged from the journal (``ack_after = journal``, the default): an export is
answered once its spans are fsync'd on local disk, ClickHouse gets them a commit later, and
nothing acknowledged is lost or doubled on the way — through a slow store, an outage, a commit
lost half-way and a SIGKILL under load."""

from __future__ import annotations

import json
import signal
import threading

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run
from spool_helpers import Outage, Stall, job, metric, serve, spool_of, wait_for

SUCCESS = SpanExportResult.SUCCESS


def _exporter(server) -> HttpExporter:
    return HttpExporter(endpoint=server.http_endpoint + "/v1/traces", timeout=20)


def _post(url: str, spans) -> httpx.Response:
    return httpx.post(url, content=encode_spans(spans).SerializeToString(),
                      headers={"content-type": "application/x-protobuf"}, timeout=30)


def _step_counts(server) -> tuple[int, int]:
    return server.store.query("SELECT count(), uniqExact(project_id, run_id, step_id) FROM steps").result_rows[0]


def _run(api_url: str, run_id: str) -> dict:
    return httpx.get(f"{api_url}/v1/runs/{run_id}", timeout=30).json()


def test_an_export_is_answered_once_journaled_and_a_read_waits_for_its_commit(server):
    assert server.settings.ack_after == "journal"  # the default
    stall = Stall()
    server.store.writer.wrap_clients(stall.wrap)
    spans, run_id = record_support_run()
    assert _exporter(server).export(spans) == SUCCESS  # answered while its insert is held
    wait_for(stall.waiting.is_set, what="the commit to reach its insert")
    stored = "SELECT count() FROM steps WHERE run_id = {run:String}"
    assert server.store.query(stored, {"run": run_id}).result_rows == [(0,)]
    journal = spool_of(server.api_url)  # /health does not wait
    assert (journal["journal"], journal["failing"], journal["spans"]) == (True, False, 5)
    read: dict = {}
    reader = threading.Thread(target=lambda: read.update(response=httpx.get(
        f"{server.api_url}/v1/runs/{run_id}", timeout=30)))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and not read  # the read waits for the acknowledged spans' commit
    stall.release()
    reader.join(30)
    assert read["response"].status_code == 200 and read["response"].json()["step_count"] == 5
    assert server.store.query(stored, {"run": run_id}).result_rows == [(5,)]
    assert metric(server.api_url, "agenttrail_spool_journaled_spans_total") == 5
    assert metric(server.api_url, "agenttrail_spool_spooled_spans_total") == 0  # nothing waited out an outage
    assert httpx.get(server.api_url + "/health").json()["status"] == "ok"


def test_through_an_outage_the_journal_keeps_answering_and_drains_after(server):
    exporter = _exporter(server)
    outage = Outage()
    server.store.writer.wrap_clients(outage.wrap)
    server.store.writer.drainer.retry = server.store.writer.drainer.max_retry = 0.2
    runs = [record_support_run(fail_tool=i % 2 == 0) for i in range(4)]
    with outage:
        for spans, _ in runs:
            assert exporter.export(spans) == SUCCESS
        assert exporter.export(runs[0][0]) == SUCCESS  # an exporter's resend
        wait_for(lambda: metric(server.api_url, "agenttrail_spool_drain_failures_total") >= 1, what="a failed drain")
        health = httpx.get(server.api_url + "/health").json()
        assert health["status"] == "degraded" and health["spool"]["failing"]
        assert health["spool"]["spans"] == 25
        # While the store is down a read does not wait for what it cannot have.
        assert httpx.get(f"{server.api_url}/v1/runs/{runs[1][1]}", timeout=30).status_code == 404
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the journal to drain")
    assert httpx.get(server.api_url + "/health").json()["status"] == "ok"
    assert _step_counts(server) == (20, 20)
    for i, (_, run_id) in enumerate(runs):
        run = _run(server.api_url, run_id)
        assert (run["step_count"], run["error_count"], run["total_tokens"]) == (5, 1 if i % 2 == 0 else 0, 310)


def test_a_backlog_past_max_pending_spans_is_answered_retry_later(make_server):
    server = make_server(max_pending_spans=12)
    stall = Stall()
    server.store.writer.wrap_clients(stall.wrap)
    url = server.http_endpoint + "/v1/traces"
    runs = [record_support_run() for _ in range(3)]
    assert _post(url, runs[0][0]).status_code == 200
    wait_for(stall.waiting.is_set, what="the commit to reach its insert")
    assert _post(url, runs[1][0]).status_code == 200  # 10 spans journaled, none committed
    refused = _post(url, runs[2][0])
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    stall.release()
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the journal to drain")
    assert _post(url, runs[2][0]).status_code == 200  # the exporter's retry
    assert [_run(server.api_url, run_id)["step_count"] for _, run_id in runs] == [5, 5, 5]
    assert _step_counts(server) == (15, 15)


def test_a_drain_lost_after_its_insert_is_retried_without_doubling(server):
    exporter = _exporter(server)
    runs = [record_support_run() for _ in range(3)]
    for spans, run_id in runs:  # stored runs: the next commit recomputes them after its insert
        assert exporter.export(spans[:2]) == SUCCESS
        assert _run(server.api_url, run_id)["step_count"] == 2
    outage = Outage(after_insert=True)
    server.store.writer.wrap_clients(outage.wrap)
    server.store.writer.drainer.retry = server.store.writer.drainer.max_retry = 0.2
    with outage:
        for spans, _ in runs:
            assert exporter.export(spans[2:]) == SUCCESS
        wait_for(outage.lost.is_set, what="a drain's insert to go through before the store goes away")
        wait_for(lambda: metric(server.api_url, "agenttrail_spool_drain_failures_total") >= 1, what="the failed drain")
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the journal to drain")
    assert _step_counts(server) == (15, 15)
    assert [_run(server.api_url, run_id)["step_count"] for _, run_id in runs] == [5, 5, 5]


def test_sigkill_under_load_loses_no_acknowledged_span_and_doubles_none(tmp_path):
    proc, api, traces = serve(tmp_path)
    acknowledged: list[str] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                spans, run_id = record_support_run()
                try:
                    response = client.post(traces, content=encode_spans(spans).SerializeToString(),
                                           headers={"content-type": "application/x-protobuf"})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    acknowledged.append(run_id)

    senders = [threading.Thread(target=send) for _ in range(4)]
    try:
        for sender in senders:
            sender.start()
        wait_for(lambda: len(acknowledged) >= 40, what="acknowledged exports")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        stop.set()
        for sender in senders:
            sender.join(30)
    proc, api, _ = serve(tmp_path)
    try:
        wait_for(lambda: spool_of(api)["batches"] == 0, timeout=90, what="the replay")
        counts = [_run(api, run_id)["step_count"] for run_id in acknowledged]
        assert counts == [5] * len(acknowledged)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    stored = json.loads(job("count", tmp_path))
    assert stored["rows"] == stored["distinct"] >= 5 * len(acknowledged)
