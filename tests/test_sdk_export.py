"""configure() and the export pipeline against real OTLP endpoints the tests run themselves:
a gRPC and an HTTP sink that can be held (to play a slow server), and a port nobody listens on.

What is proven: headers/endpoint/env resolution on the wire, and that a dead, slow or
overwhelmed server never blocks or breaks the agent, keeps memory bounded (queued spans ≤
max_queue_size) and shows every lost span in ``stats()``.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agenttrail import sdk
from agenttrail.sdk import _config
from agenttrail.sdk.testing import capture_spans


class Sink:
    """What an OTLP sink received; ``release`` is cleared to hold every export (a slow server)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, trace_service_pb2.ExportTraceServiceRequest]] = []
        self.waiting = 0
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()

    def receive(self, headers: dict, request) -> None:
        with self.lock:
            self.waiting += 1
        self.release.wait(60)
        with self.lock:
            self.waiting -= 1
            self.requests.append((headers, request))

    def spans(self) -> list:
        return [s for _, r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def resources(self) -> list[dict]:
        return [{kv.key: kv.value.string_value for kv in rs.resource.attributes}
                for _, r in self.requests for rs in r.resource_spans]


def wait_until(condition, what: str, limit: float = 20.0) -> None:
    """Poll for a condition (a synchronisation point, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def grpc_sink():
    sink = Sink()

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            sink.receive(dict(context.invocation_metadata()), request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sink.endpoint = f"http://127.0.0.1:{port}"
    yield sink
    sink.release.set()
    server.stop(0)


@pytest.fixture
def http_sink():
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            sink.receive({k.lower(): v for k, v in self.headers.items()} | {":path": self.path}, request)
            payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield sink
    sink.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["grpc", "http"])
def sink(request, grpc_sink, http_sink):
    sink = grpc_sink if request.param == "grpc" else http_sink
    sink.protocol = request.param
    return sink


@pytest.fixture
def dead_endpoint():
    """A port that was free a moment ago and that nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _stop_pipeline():
    yield
    sdk.shutdown()


def private(**kwargs):
    """configure() on a provider of the test's own, never the process-global one."""
    kwargs.setdefault("schedule_delay_millis", 20)
    return sdk.configure(set_global=False, **kwargs)


def agent(n_runs: int = 2, steps: int = 3) -> list[str]:
    """A small agent: its return value proves its code ran to the end."""
    ids = []
    for i in range(n_runs):
        with sdk.run(agent="support-agent", session=f"s{i}") as r:
            for k in range(steps):
                with r.step(f"step{k}", tool="orders_api"):
                    pass
            ids.append(r.run_id)
    return ids


def test_spans_reach_the_endpoint_with_project_and_key_headers(sink):
    private(endpoint=sink.endpoint, protocol=sink.protocol, project="demo", api_key="dev-key-123",
            service_name="support-svc")
    run_ids = agent()
    assert sdk.flush(10)
    headers = sink.requests[0][0]
    assert headers["x-agenttrail-project"] == "demo" and headers["x-api-key"] == "dev-key-123"
    if sink.protocol == "http":
        assert headers[":path"] == "/v1/traces"
    assert {s.trace_id.hex() for s in sink.spans()} == set(run_ids)
    assert {r["service.name"] for r in sink.resources()} == {"support-svc"}
    assert {r["agenttrail.project"] for r in sink.resources()} == {"demo"}
    stats = sdk.stats()
    assert stats.spans_exported == stats.spans_ended == 8 and stats.spans_lost == 0


def test_environment_variables_are_used_and_explicit_arguments_win(http_sink, dead_endpoint, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_sink.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=env-key,x-tenant=blue%20team")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("AGENTTRAIL_PROJECT", "env-project")
    private()
    agent(1, 1)
    assert sdk.flush(10)
    headers = http_sink.requests[-1][0]
    assert headers["x-api-key"] == "env-key" and headers["x-tenant"] == "blue team"
    assert headers["x-agenttrail-project"] == "env-project"
    assert http_sink.resources()[-1]["service.name"] == "from-env"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead_endpoint)
    private(endpoint=http_sink.endpoint, api_key="arg-key", project="arg-project", service_name="from-arg")
    agent(1, 1)
    assert sdk.flush(10)
    headers = http_sink.requests[-1][0]
    assert headers["x-api-key"] == "arg-key" and headers["x-agenttrail-project"] == "arg-project"
    assert headers["x-tenant"] == "blue team"
    assert http_sink.resources()[-1]["service.name"] == "from-arg"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_server_down_the_agent_finishes_and_every_span_is_counted_lost(protocol, dead_endpoint):
    private(endpoint=dead_endpoint, protocol=protocol, timeout=1)
    run_ids = agent(3, 2)
    assert len(run_ids) == 3 and all(len(r) == 32 for r in run_ids)
    sdk.flush(15)
    stats = sdk.stats()
    assert stats.spans_ended == 9
    assert stats.spans_exported == 0
    assert stats.spans_failed == 9 and stats.spans_lost == 9 and stats.failed_exports >= 1
    assert stats.last_error


def test_slow_server_the_agent_runs_on_and_flush_is_bounded(sink):
    private(endpoint=sink.endpoint, protocol=sink.protocol, timeout=30, max_export_batch_size=2)
    sink.release.clear()  # the server now holds every export until the test lets go
    agent(1, 0)
    wait_until(lambda: sink.waiting >= 1, "the server to hold an export")
    # The whole agent runs while the server still holds the first export.
    run_ids = agent(5, 3)
    assert len(run_ids) == 5 and sink.waiting >= 1 and not sink.requests
    assert sdk.flush(timeout=0.3) is False  # bounded: returns although the server is stuck
    for _ in range(5):
        assert sdk.flush(timeout=0.01) is False
    assert sum(t.name == "agenttrail-flush" for t in threading.enumerate()) == 1  # joined, not piled up
    stats = sdk.stats()
    assert stats.spans_exported == 0 and stats.spans_ended == 21
    sink.release.set()
    assert sdk.flush(timeout=20)
    stats = sdk.stats()
    assert stats.spans_exported == 21 and stats.spans_lost == 0 and stats.spans_queued == 0


def test_server_slower_than_the_export_timeout_counts_the_batch_failed(sink):
    private(endpoint=sink.endpoint, protocol=sink.protocol, timeout=0.5)
    sink.release.clear()  # held past the exporter's timeout; released at teardown
    assert len(agent(2, 1)) == 2
    sdk.flush(10)
    stats = sdk.stats()
    assert stats.spans_ended == 4 and stats.spans_failed == 4 and stats.spans_exported == 0
    assert sink.waiting >= 1  # the server really was still holding the request


def test_full_queue_drops_are_counted_and_memory_stays_bounded(grpc_sink, caplog):
    private(endpoint=grpc_sink.endpoint, timeout=30, max_queue_size=8, max_export_batch_size=4)
    grpc_sink.release.clear()
    agent(1, 0)
    wait_until(lambda: grpc_sink.waiting >= 1, "the server to hold an export")
    high_water = 0
    with caplog.at_level(logging.WARNING, logger="agenttrail.sdk"):
        for _ in range(50):
            agent(1, 3)
            high_water = max(high_water, sdk.stats().spans_queued)
    stats = sdk.stats()
    assert high_water <= 8
    assert stats.spans_ended == 201
    assert stats.spans_dropped >= 201 - 8 - 4  # at most a queue and one batch in flight were kept
    assert sum("export queue full" in r.getMessage() for r in caplog.records) == 1  # warned once, not per span
    grpc_sink.release.set()
    assert sdk.flush(timeout=20)
    stats = sdk.stats()
    assert stats.spans_queued == 0
    assert stats.spans_exported + stats.spans_failed + stats.spans_dropped == stats.spans_ended
    assert len(grpc_sink.spans()) == stats.spans_exported


def test_shutdown_with_a_stuck_server_returns_and_counts_what_it_could_not_send(grpc_sink):
    private(endpoint=grpc_sink.endpoint, timeout=30, max_export_batch_size=1, shutdown_timeout=0.2)
    grpc_sink.release.clear()
    agent(1, 0)
    wait_until(lambda: grpc_sink.waiting >= 1, "the server to hold an export")
    agent(2, 2)
    sdk.shutdown()
    agent(1, 1)  # after shutdown: still no exception, spans counted as dropped
    stats = sdk.stats()
    assert stats.spans_queued == 0
    assert stats.spans_dropped >= 2 + 6  # the post-shutdown run, plus what was queued
    grpc_sink.release.set()


class ExplodingExporter(SpanExporter):
    def export(self, spans):
        raise RuntimeError("exporter bug")

    def shutdown(self):
        raise RuntimeError("shutdown bug")


class RecordingExporter(SpanExporter):
    def __init__(self):
        self.count = 0

    def export(self, spans):
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def test_an_exporter_that_raises_never_reaches_the_agent():
    private(exporter=ExplodingExporter())
    assert len(agent(2, 1)) == 2
    sdk.flush(5)
    stats = sdk.stats()
    assert stats.spans_failed == 4 and "exporter bug" in stats.last_error
    sdk.shutdown()
    assert "shutdown bug" in sdk.stats().last_error


def test_adds_to_an_application_provider_without_replacing_its_processors():
    app_memory = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(app_memory))
    first, second = RecordingExporter(), RecordingExporter()
    sdk.configure(tracer_provider=app_provider, exporter=first, schedule_delay_millis=20)
    sdk.configure(tracer_provider=app_provider, exporter=second, schedule_delay_millis=20)
    agent(1, 2)
    assert sdk.flush(5)
    assert len(app_memory.get_finished_spans()) == 3  # the application's exporter still gets everything
    assert (first.count, second.count) == (0, 3)  # reconfiguring replaced agenttrail's pipeline, no doubles
    processors = app_provider._active_span_processor._span_processors
    assert sum(type(p).__name__ == "Hub" for p in processors) == 1


def test_adds_to_the_global_provider_an_application_already_set(grpc_sink):
    script = f"""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from agenttrail import sdk
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)
sdk.configure(endpoint="{grpc_sink.endpoint}", project="p1")
with trace.get_tracer("app").start_as_current_span("app-span"):
    with sdk.run(agent="a") as r:
        pass
assert sdk.flush(10)
assert sorted(s.name for s in memory.get_finished_spans()) == ["app-span", "invoke_agent a"]
print(sdk.stats().spans_exported)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    assert sorted(s.name for s in grpc_sink.spans()) == ["app-span", "invoke_agent a"]


def test_capture_spans_taps_a_configured_provider_and_export_goes_on():
    recording = RecordingExporter()
    private(exporter=recording)
    with capture_spans() as spans:
        agent(1, 1)
    assert sdk.flush(5)
    assert len(spans) == 2 and recording.count == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": "carrier-pigeon"}, "protocol"),
    ({"endpoint": "ftp://collector:21"}, "endpoint"),
    ({"endpoint": "http://"}, "endpoint"),
    ({"timeout": 0}, "timeout"),
    ({"max_queue_size": 0, "exporter": RecordingExporter()}, "max_queue_size"),
    ({"max_value_chars": 0}, "max_value_chars"),
    ({"tracer_provider": object()}, "tracer_provider"),
])
def test_bad_arguments_are_refused_at_configure_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        private(**kwargs)


def test_bad_environment_values_fall_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "garbage-without-equals,,=,x-ok=1")
    with caplog.at_level(logging.WARNING):
        assert _config.resolve_protocol(None) == "grpc"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in caplog.text
    assert _config.resolve_headers(None, None, None) == {"x-ok": "1"}
    assert _config.resolve_endpoint("collector:4318", "http") == "http://collector:4318/v1/traces"
    assert _config.resolve_endpoint("https://c.example/otlp/v1/traces", "http") == "https://c.example/otlp/v1/traces"
    from agenttrail.sdk.compat import _default_otlp_endpoint

    assert _default_otlp_endpoint("https://api.example:8000/base", "http") == "http://api.example:4318"
    assert _default_otlp_endpoint("http://10.0.0.5:8000", "grpc") == "http://10.0.0.5:4317"


def test_sdk_disabled_turns_configure_into_a_no_op(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry = sdk.configure(endpoint="http://127.0.0.1:1")
    assert telemetry.provider is None and telemetry.flush() is True
