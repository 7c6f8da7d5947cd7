"""The benchmark scripts run end to end on a tiny load and refuse bad flags (nothing is timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_ingest_bench_runs_end_to_end_on_a_tiny_load():
    done = run("ingest_bench.py", "--protocol", "both", "--requests", "3", "--spans-per-request", "16",
               "--concurrency", "2", "--ingest-workers", "1")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    results, footer = lines[:-1], lines[-1]
    assert [r["protocol"] for r in results] == ["http", "grpc"]
    for result in results:
        assert (result["acknowledged_spans"], result["errors"]) == (48, 0)
        writer = result["writer"]  # read from the server's /metrics: this phase's commits alone
        assert 1 <= writer["commits"] <= 3 and writer["spans_per_commit"] * writer["commits"] == 48
        found, sampled = result["sampled_runs_queryable"].split("/")
        assert found == sampled and int(sampled) > 0  # every sampled run is readable through the API
        # CPU is read in clock ticks (10 ms): at 48 spans only the shape can be checked
        assert set(result["cpu_us_per_span"]) == {"main", "workers", "load_generator"}
        split = result["main_cpu_us_per_span"]
        assert set(split) == {"python", "merges", "native"} and min(split.values()) >= 0
    assert footer["server_peak_rss_mib"] > 0


def test_ingest_bench_spreads_a_run_over_requests_apart():
    sys.path.insert(0, str(BENCH))
    try:
        from ingest_bench import RUN_PART_STRIDE, build_requests
    finally:
        sys.path.remove(str(BENCH))
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies, _ = build_requests(2 * RUN_PART_STRIDE, 64, seed=3, requests_per_run=2)
    where: dict[bytes, list[int]] = {}
    for index, body in enumerate(bodies):
        request = ExportTraceServiceRequest.FromString(body)
        spans = request.resource_spans[0].scope_spans[0].spans
        assert len(spans) == 64
        for span in spans:
            where.setdefault(span.trace_id, []).append(index)
    # every run: 8 spans in each of two requests RUN_PART_STRIDE apart
    assert {(len(set(at)), max(at) - min(at), len(at)) for at in where.values()} == {(2, RUN_PART_STRIDE, 16)}


def test_merge_bench_times_both_merge_algorithms_on_a_tiny_load():
    done = run("merge_bench.py", "--parts", "2", "--requests-per-part", "1", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    assert "merging 2 parts of 512 rows (1024 rows in all)" in done.stdout
    assert "row by row (ClickHouse default)" in done.stdout and "by column (agenttrail)" in done.stdout


def test_sql_parse_bench_reads_every_span_through_clickhouses_protobuf_format():
    done = run("sql_parse_bench.py", "--requests", "2", "--repeat", "1")
    assert done.returncode == 0, done.stderr  # it exits non-zero when ClickHouse read a different count
    assert done.stdout.count("µs CPU per span") == 4 and "Python, decode + map + encode" in done.stdout
    assert "one query per request" in done.stdout and done.stdout.count("planning a query of") == 4


@pytest.mark.parametrize("script, args, message", [
    ("ingest_bench.py", ["--requests", "0"], "must be positive"),
    ("ingest_bench.py", ["--concurrency", "-3"], "must be positive"),
    ("ingest_bench.py", ["--requests-per-run", "0"], "must be positive"),
    ("ingest_bench.py", ["--database", "x"], "--database needs --storage"),
    ("ingest_bench.py", ["--protocol", "udp"], "invalid choice"),
    ("ingest_bench.py", ["--requests", "many"], "invalid int value"),
    ("commit_bench.py", ["--rounds", "0"], "--rounds must be positive"),
    ("commit_bench.py", ["--prefill", "-1"], "--prefill and --prefill-age not negative"),
    ("commit_bench.py", ["--prefill-age", "-60"], "--prefill and --prefill-age not negative"),
    ("commit_bench.py", ["--prefill-age", "soon"], "invalid float value"),
    ("merge_bench.py", ["--parts", "1"], "--parts must be at least 2"),
    ("sql_parse_bench.py", ["--repeat", "0"], "--requests and --repeat must be positive"),
    ("merge_bench.py", ["--rounds", "0"], "--requests-per-part and --rounds positive"),
])
def test_bench_scripts_refuse_bad_flags(script, args, message):
    done = run(script, *args, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_ui_bench_times_every_page_in_the_browser_on_a_tiny_store():
    done = run("ui_bench.py", "--runs", "300", "--steps", "40", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["page"] for line in lines] == [
        "runs page", "runs page, project", "runs page, project+status=error", "run page, 40 steps",
        "run page, 10 steps", "overview, 24 h"]
    assert all(line["runs"] == 301 and 0 < line["p50_ms"] <= line["max_ms"] for line in lines)


@pytest.mark.parametrize("flags", [["--runs", "0"], ["--steps", "2"], ["--repeat", "0"], ["--runs", "many"]])
def test_ui_bench_refuses_bad_flags(flags):
    done = run("ui_bench.py", *flags)
    assert done.returncode == 2 and "error" in done.stderr
