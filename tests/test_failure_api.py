"""The failure block in run detail and run lists, and the failure_category filter, over runs
sent by the real OpenTelemetry SDK through the real receiver."""

from __future__ import annotations

import json
import time

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from api_helpers import client
from spool_helpers import wait_for


def _run(shape: str):
    """One run of the given shape: 'recovered', 'exhausted', 'loop', 'filtered' or 'clean'.
    Returns (spans, run id, ids)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "agenttrail.project": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.failure-api")
    ids = []

    def call(name, attrs, error=None, error_type=None):
        with tracer.start_as_current_span(name, attributes=attrs) as span:
            if error_type:
                span.set_attribute("error.type", error_type)
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
            ids.append(format(span.get_span_context().span_id, "016x"))

    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm",
            "gen_ai.tool.call.arguments": json.dumps({"id": 7})}
    with tracer.start_as_current_span("invoke_agent shop", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shop-agent"}) as root:
        if shape == "recovered":
            call("chat", chat, "Rate limit reached", "RateLimitError")
            call("chat", chat)
        elif shape == "exhausted":
            call("chat", chat)
            for _ in range(3):
                call("execute_tool crm", tool, "Read timed out after 30 s", "TimeoutError")
            root.set_status(Status(StatusCode.ERROR, "crm unavailable"))
        elif shape == "loop":
            for _ in range(3):
                call("execute_tool crm", tool)
        elif shape == "filtered":  # a failure without an error status
            call("chat", {**chat, "gen_ai.response.finish_reasons": ["content_filter"]})
        else:
            call("chat", chat)
            call("execute_tool crm", tool)
        run_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return list(memory.get_finished_spans()), run_id, ids


@pytest.fixture
def api(server):
    server.runs = {}
    spans = []
    for shape in ("recovered", "exhausted", "loop", "filtered", "clean"):
        shape_spans, run_id, ids = _run(shape)
        spans += shape_spans
        server.runs[shape] = (run_id, ids)
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    return server


def test_run_detail_names_the_root_cause_and_the_retry_chain(api):
    run_id, ids = api.runs["exhausted"]
    with client(api, None) as c:
        failure = c.get(f"/v1/runs/{run_id}").json()["failure"]
    assert failure["category"] == "timeout" and failure["failure_type"] == "tool"
    assert failure["root_cause_step_id"] == ids[1]  # the first attempt, not the root
    (chain,) = failure["retries"]
    assert chain["outcome"] == "exhausted" and [a["step_id"] for a in chain["attempts"]] == ids[1:]
    # the root (which failed too) first, then the attempts, in execution order
    assert len(failure["failed_step_ids"]) == 4 and failure["failed_step_ids"][1:] == ids[1:]


def test_run_lists_carry_the_failure_block_of_every_run(api):
    with client(api, None) as c:
        rows = {r["run_id"]: r for r in c.get("/v1/projects/shop/runs").json()["runs"]}
        detail = {shape: c.get(f"/v1/runs/{run_id}").json()["failure"] for shape, (run_id, _) in api.runs.items()}
    failures = {shape: rows[run_id]["failure"] for shape, (run_id, _) in api.runs.items()}
    assert failures["clean"] is None
    recovered = failures["recovered"]
    assert recovered["category"] is None and recovered["retries"][0]["outcome"] == "recovered"
    assert recovered["retries"][0]["model"] == "gpt-4o-mini"
    assert failures["loop"]["category"] == "planner_loop" and failures["loop"]["loops"][0]["count"] == 3
    assert failures["exhausted"]["category"] == "timeout"
    assert failures["filtered"]["category"] == "content_filter"  # no step has an error status
    # the list's light read gives the same answer as the detail's full read
    assert failures == detail


def test_failure_category_filters_runs_in_sql(api):
    with client(api, None) as c:
        def listed(**params):
            return {r["run_id"] for r in c.get("/v1/runs", params=params).json()["runs"]}
        assert listed(failure_category="timeout") == {api.runs["exhausted"][0]}
        assert listed(failure_category="rate_limited") == {api.runs["recovered"][0]}
        assert listed(failure_category="auth") == set()
        assert listed(failure_category="content_filter") == {api.runs["filtered"][0]}
        shop = c.get("/v1/projects/shop/runs", params={"failure_category": "timeout", "status": "error"}).json()
        assert [r["run_id"] for r in shop["runs"]] == [api.runs["exhausted"][0]]
        assert c.get("/v1/projects/other/runs", params={"failure_category": "timeout"}).json()["runs"] == []


@pytest.mark.parametrize("value", ["bogus", "timeout' OR 1=1 --", "x" * 10_000, "", "TIMEOUT"])
def test_a_bad_failure_category_is_a_clear_422_and_the_server_stays_up(api, value):
    with client(api, None) as c:
        r = c.get("/v1/runs", params={"failure_category": value})
        assert r.status_code == 422 and "failure_category" in r.text
        assert c.get("/health").json()["status"] == "ok"
        assert len(c.get("/v1/runs").json()["runs"]) == len(api.runs)


def test_the_timeline_marks_failed_steps_and_the_root_cause(api):
    run_id, ids = api.runs["exhausted"]
    with client(api, None) as c:
        timeline = c.get(f"/v1/runs/{run_id}/timeline").json()
    (root,) = timeline["roots"]
    assert [(n["kind"], n["failure_category"]) for n in root["children"]] == [
        ("llm", None), ("tool", "timeout"), ("tool", "timeout"), ("tool", "timeout")]
    assert timeline["failure"]["root_cause_step_id"] == ids[1] == root["children"][1]["step_id"]


def test_a_run_sent_in_two_exports_keeps_its_whole_failure_block_in_lists(server):
    """The list reads a page's steps between its rows' first_seen_at and last_span_at: a run's
    first export (the root cause) and its last (the final attempt) both fall inside."""
    spans, run_id, ids = _run("exhausted")
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces")
    early = {ids[0], ids[1]}  # the chat and the first failed attempt: the root cause
    first = [s for s in spans if format(s.context.span_id, "016x") in early]
    assert exporter.export(first) == SpanExportResult.SUCCESS
    with client(server, None) as c:
        wait_for(lambda: c.get(f"/v1/runs/{run_id}").json()["step_count"] == 2, what="the first export")
        time.sleep(0.01)  # the second export is ingested at a later millisecond
        rest = [s for s in spans if format(s.context.span_id, "016x") not in early]
        assert exporter.export(rest) == SpanExportResult.SUCCESS
        wait_for(lambda: c.get(f"/v1/runs/{run_id}").json()["step_count"] == 5, what="the second export")
        row = c.get(f"/v1/runs/{run_id}").json()
        listed = {r["run_id"]: r for r in c.get("/v1/projects/shop/runs").json()["runs"]}[run_id]
    ingested = server.store.query("SELECT first_seen_at < last_span_at FROM runs FINAL WHERE run_id = {r:String}",
                                  {"r": run_id}).result_rows
    assert ingested == [(1,)]  # the two exports: two ingest times
    failure = listed["failure"]
    assert failure["root_cause_step_id"] == ids[1]
    assert [a["step_id"] for a in failure["retries"][0]["attempts"]] == ids[1:]
    assert failure == row["failure"]


def _run_spanning_three_days():
    """A run whose failed tool calls start a day before its root span and a day after it ends
    (clocks of other services, a late callback): steps in three daily partitions of ``steps``."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "agenttrail.project": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.failure-api")
    day, now = 86_400 * 10**9, time.time_ns()
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm",
            "gen_ai.tool.call.arguments": json.dumps({"id": 7})}
    root = tracer.start_span("invoke_agent shop", start_time=now, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shop-agent"})
    context = trace.set_span_in_context(root)
    ids = []
    for start in (now - day, now + day):
        span = tracer.start_span("execute_tool crm", context=context, start_time=start, attributes=tool)
        span.set_attribute("error.type", "TimeoutError")
        span.set_status(Status(StatusCode.ERROR, "Read timed out after 30 s"))
        span.end(end_time=start + 10**9)
        ids.append(format(span.get_span_context().span_id, "016x"))
    root.set_status(Status(StatusCode.ERROR, "crm unavailable"))
    root.end(end_time=now + 2 * 10**9)
    provider.shutdown()
    return list(memory.get_finished_spans()), format(root.get_span_context().trace_id, "032x"), ids


def test_steps_started_outside_the_root_span_are_read_in_lists_and_detail(server):
    """Lists bound their read of a page's steps by the runs' first_step_at / last_step_at
    (earliest and latest step start), not by the root span's times, which these steps fall outside."""
    spans, run_id, ids = _run_spanning_three_days()
    assert HttpExporter(endpoint=server.http_endpoint + "/v1/traces").export(spans) == SpanExportResult.SUCCESS
    with client(server, None) as c:
        wait_for(lambda: c.get(f"/v1/runs/{run_id}").status_code == 200, what="the run")
        row = c.get(f"/v1/runs/{run_id}").json()
        listed = {r["run_id"]: r for r in c.get("/v1/projects/shop/runs").json()["runs"]}[run_id]
        assert {s["step_id"] for s in row["steps"]} >= set(ids)
        assert [a["step_id"] for a in row["failure"]["retries"][0]["attempts"]] == ids
        assert listed["failure"] == row["failure"]
        # A row stored before the bounds existed holds the epoch in both: read unbounded.
        server.store.command("INSERT INTO runs SELECT * REPLACE (toDateTime64(0, 9, 'UTC') AS first_step_at, "
                             "toDateTime64(0, 9, 'UTC') AS last_step_at, version + 1 AS version) "
                             "FROM runs FINAL WHERE run_id = {r:String}", {"r": run_id})
        assert c.get(f"/v1/runs/{run_id}").json()["steps"] == row["steps"]
        again = {r["run_id"]: r for r in c.get("/v1/projects/shop/runs").json()["runs"]}[run_id]
        assert again["failure"] == row["failure"]
