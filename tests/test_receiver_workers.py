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
    metrics = httpx.get(f"{pooled.api_url}/metrics").text
    assert f"agenttrail_receiver_mapping_workers_lost_total {float(len(workers))}" in metrics


@pytest.mark.parametrize("ack_after", ["commit", "journal"])
def test_workers_run_below_the_server_priority_only_when_clients_wait_for_commits(make_server, ack_after):
    import multiprocessing

    from agenttrail.receiver.pool import WORKER_NICENESS

    server = make_server(ingest_workers=2, ack_after=ack_after)
    HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(record_support_run()[0])
    workers = [c for c in multiprocessing.active_children() if c.name.startswith("SpawnProcess")]
    assert workers
    niceness = WORKER_NICENESS if ack_after == "commit" else 0
    expected = min(os.getpriority(os.PRIO_PROCESS, 0) + niceness, 19)
    assert {os.getpriority(os.PRIO_PROCESS, child.pid) for child in workers} == {expected}


def _resource_spans(service: str, spans: list[tuple[str, str]]) -> dict:
    return {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": [
                {"traceId": trace, "spanId": span, "name": f"{service} {span}",
                 "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000000001"}
                for trace, span in spans]}]}


@pytest.mark.parametrize("workers", [0, 2])
def test_foreign_projects_refused_and_partial_resends_deduplicated(make_server, workers):
    key = {"key": "two-projects", "scopes": ["ingest", "read"], "projects": ["a", "b"]}
    server = make_server(api_keys=[key], ingest_workers=workers)
    url, headers = server.http_endpoint + "/v1/traces", {"x-api-key": "two-projects"}
    a, c = "aa" * 16, "cc" * 16
    first = {"resourceSpans": [_resource_spans("a", [(a, "01" * 8)]), _resource_spans("c", [(c, "02" * 8)])]}
    answer = httpx.post(url, json=first, headers=headers)
    partial = answer.json()["partialSuccess"]
    assert answer.status_code == 200 and int(partial["rejectedSpans"]) == 1
    assert "may not write to" in partial["errorMessage"]
    # The same span again, with a new one: only the new one is written (the writer rebuilds the rows).
    again = {"resourceSpans": [_resource_spans("a", [(a, "01" * 8), (a, "03" * 8)])]}
    answer = httpx.post(url, json=again, headers=headers)
    assert answer.status_code == 200 and not answer.json().get("partialSuccess", {}).get("rejectedSpans")
    assert server.store.flush()  # read from ClickHouse itself, not through the API
    rows = server.store.query("SELECT project_id, step_id FROM steps ORDER BY step_id").result_rows
    assert rows == [("a", "01" * 8), ("a", "03" * 8)]
    assert httpx.get(f"{server.api_url}/v1/runs/{a}", headers=headers).json()["step_count"] == 2


def test_a_request_is_mapped_with_the_collector_paused_and_resumed_after():
    import gc

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from agenttrail.proto.errors import MalformedPayload
    from agenttrail.receiver import pool
    from agenttrail.receiver.mapping import default_options

    spans = []
    while len(spans) < 5000:  # enough new containers to start several collections, were it on
        spans += record_support_run()[0]
    body = encode_spans(spans).SerializeToString()
    pool._init_worker(default_options())
    collections = []
    gc.callbacks.append(lambda phase, info: collections.append(phase))
    try:
        mapped = pool._map_in_worker(body, "protobuf", None, lambda project: True)
        assert collections == []
        assert len(mapped.steps) == len(spans) and mapped.rejected == 0
        assert gc.isenabled()
        with pytest.raises(MalformedPayload):
            pool._map_in_worker(b"\xff" * 4096, "protobuf", None, lambda project: True)
        assert gc.isenabled()  # resumed when the mapping fails too
    finally:
        gc.callbacks.pop()
        gc.unfreeze()  # _init_worker froze this test process's heap


def _spawned_workers() -> int:
    """Worker processes this test process has spawned (the in-process server's pool)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                spawned = b"spawn_main" in fh.read()
        except (OSError, ValueError):  # gone meanwhile
            continue
        count += ppid == os.getpid() and spawned
    return count


def test_workers_start_with_the_server_not_with_the_first_export(make_server):
    import time

    before = _spawned_workers()
    make_server(ingest_workers=2)
    deadline = time.monotonic() + 60
    while _spawned_workers() < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _spawned_workers() == before + 2  # no export has been sent


def test_a_worker_gets_its_prices_from_the_server_not_from_genai_prices(tmp_path):
    import pickle
    import subprocess
    import sys

    from agenttrail.receiver.mapping import default_options

    options = tmp_path / "options.pickle"
    options.write_bytes(pickle.dumps(default_options()))
    # What a spawned worker does: import the pool, take the pickled options, warm up.
    script = ("import pickle, sys\n"
              "from agenttrail.receiver import pool\n"
              f"pool._init_worker(pickle.loads(open({str(options)!r}, 'rb').read()))\n"
              "print('genai_prices' in sys.modules, len(pool._worker_options.prices.models))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded, models = done.stdout.split()
    assert loaded == "False"  # its ~14 MiB of price data stays in the server process
    assert int(models) == len(default_options().prices.models)
