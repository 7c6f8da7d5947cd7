"""The spool's quarantine: a record that ClickHouse refuses for good, or that cannot be decoded,
is set aside on disk instead of holding up every record behind it, and a restart retries it.
Nothing acknowledged is dropped on the way."""

from __future__ import annotations

import os

import httpx
from clickhouse_connect.driver.exceptions import DatabaseError
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from agenttrail.storage.spool import QUARANTINE_DIR

from otel_helpers import record_support_run
from spool_helpers import Outage, metric, spool_of, wait_for

SUCCESS = SpanExportResult.SUCCESS


class Refusal:
    """Refuses the steps inserts that hold ``marker`` (or every insert, with ``everything``) the
    way ClickHouse refuses bad data: a DatabaseError whose code waiting cannot fix."""

    def __init__(self, marker: bytes = b"\0never\0"):
        self.marker, self.everything = marker, False

    def wrap(self, client):
        return _RefusingClient(client, self)


class _RefusingClient:
    def __init__(self, client, refusal: Refusal):
        self._client, self._refusal = client, refusal

    def raw_insert(self, table, *args, insert_block=b"", **kwargs):
        if self._refusal.everything or self._refusal.marker in bytes(insert_block):
            raise DatabaseError("Code: 53. DB::Exception: Type mismatch in VALUES section. (TYPE_MISMATCH)", code=53)
        return self._client.raw_insert(table, *args, insert_block=insert_block, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _start(make_server, spool_dir: str, *wrappers):
    server = make_server(spool_dir=spool_dir)
    drainer = server.store.writer.drainer
    drainer.retry = drainer.max_retry = 0.2
    for wrapper in wrappers:
        server.store.writer.wrap_clients(wrapper.wrap)
    return server


def _export(server, spans) -> None:
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces", timeout=20)
    assert exporter.export(spans) == SUCCESS


def _stored(server, run_id: str) -> int:
    return server.store.query("SELECT count() FROM steps WHERE run_id = {run:String}",
                              {"run": run_id}).result_rows[0][0]


def _quarantined(spool_dir: str) -> list[str]:
    directory = os.path.join(spool_dir, "0", QUARANTINE_DIR)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_a_record_clickhouse_refuses_is_set_aside_the_rest_drains_and_a_restart_retries_it(make_server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    runs = [record_support_run(fail_tool=i == 1) for i in range(3)]
    poison = runs[1][1]
    outage = Outage()
    server = _start(make_server, spool_dir, Refusal(poison.encode()), outage)
    with outage:  # the three exports wait in the journal, to be drained as one group
        for spans, _ in runs:
            _export(server, spans)
        wait_for(lambda: metric(server.api_url, "agenttrail_spool_drain_failures_total") >= 1, what="a failed drain")
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the records behind it to drain")
    assert [_stored(server, run_id) for _, run_id in runs] == [5, 0, 5]
    journal = spool_of(server.api_url)
    assert (journal["quarantined_batches"], journal["quarantined_spans"], journal["failing"]) == (1, 5, False)
    assert metric(server.api_url, "agenttrail_spool_quarantined_spans_total") == 5
    assert httpx.get(server.api_url + "/health").json()["status"] == "degraded"  # spans wait outside the store
    assert len(_quarantined(spool_dir)) == 1
    _export(server, record_support_run()[0])  # and ingest goes on
    server.stop()

    restarted = _start(make_server, spool_dir)  # the cause is gone: the restart retries it
    wait_for(lambda: _stored(restarted, poison) == 5, what="the quarantined record to be stored")
    assert _quarantined(spool_dir) == []
    assert spool_of(restarted.api_url)["quarantined_batches"] == 0
    assert httpx.get(restarted.api_url + "/health").json()["status"] == "ok"
    counts = restarted.store.query("SELECT count(), uniqExact(project_id, run_id, step_id) FROM steps")
    assert counts.result_rows == [(20, 20)]
    assert httpx.get(f"{restarted.api_url}/v1/runs/{poison}", timeout=30).json()["error_count"] == 1


def test_when_clickhouse_refuses_every_record_nothing_is_set_aside(make_server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    refusal = Refusal()
    server = _start(make_server, spool_dir, refusal)
    runs = [record_support_run() for _ in range(3)]
    refusal.everything = True  # a table gone, say: no record is at fault
    for spans, _ in runs:
        _export(server, spans)
    wait_for(lambda: metric(server.api_url, "agenttrail_spool_drain_failures_total") >= 4, what="failed drains")
    journal = spool_of(server.api_url)
    assert (journal["batches"], journal["quarantined_batches"], journal["failing"]) == (3, 0, True)
    assert _quarantined(spool_dir) == []
    refusal.everything = False
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the journal to drain")
    assert [_stored(server, run_id) for _, run_id in runs] == [5, 5, 5]
    assert spool_of(server.api_url)["quarantined_batches"] == 0


def test_a_record_that_cannot_be_decoded_is_set_aside_not_dropped(make_server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    server = _start(make_server, spool_dir)
    writer = server.store.writer
    writer.spool.append([(b"not a batch of steps", 3)])  # its checksum holds; its contents do not
    writer.drainer.wake()
    wait_for(lambda: spool_of(server.api_url)["batches"] == 0, what="the drainer to pass it")
    assert writer.stats["spool_unreadable"] == 3 and spool_of(server.api_url)["quarantined_spans"] == 3
    [name] = _quarantined(spool_dir)
    with open(os.path.join(spool_dir, "0", QUARANTINE_DIR, name), "rb") as fh:
        assert fh.read().endswith(b"not a batch of steps")  # the record, whole
    spans, run_id = record_support_run()
    _export(server, spans)
    wait_for(lambda: _stored(server, run_id) == 5, what="the next export")
    server.stop()
    restarted = _start(make_server, spool_dir)  # retried, and set aside again: still not lost
    wait_for(lambda: spool_of(restarted.api_url)["quarantined_spans"] == 3, what="the retry")
    assert len(_quarantined(spool_dir)) == 1
