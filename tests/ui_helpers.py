"""Runs for the run explorer's browser tests, the screenshots and bench/ui_bench.py, recorded
by the real OpenTelemetry SDK and sent through its own OTLP/HTTP exporter."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_helpers import record_support_run


def record_long_run(steps: int, project: str = "research", agent: str = "research-agent", fail_at=(),
                    service: str = "research-svc"):
    """One run of about ``steps`` spans: a root agent, then rounds of (plan step → chat →
    search tool), the tool failing in the rounds listed in ``fail_at``.  Returns (spans, run id)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, "agenttrail.project": project}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.research-agent", "1.0")
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
            "gen_ai.conversation.id": f"conv-{project}"}) as root:
        for i in range(max(1, (steps - 1) // 3)):
            with tracer.start_as_current_span(f"Step {i + 1}", attributes={"gen_ai.operation.name": "invoke_workflow"}):
                with tracer.start_as_current_span("chat gpt-4o", attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 400 + i,
                        "gen_ai.usage.output_tokens": 60,
                        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                            {"type": "text", "content": f"Find sources for question {i}"}]}])}):
                    pass
                with tracer.start_as_current_span("execute_tool web_search", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search",
                        "gen_ai.tool.call.arguments": json.dumps({"query": f"topic {i}", "top_k": 5})}) as tool:
                    if i in fail_at:
                        tool.set_status(Status(StatusCode.ERROR, "HTTP 429: rate limit exceeded"))
                        tool.set_attribute("error.type", "RateLimitError")
        run_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return list(memory.get_finished_spans()), run_id


def send(server, spans, key: str | None = None) -> None:
    """Export ``spans`` to ``server`` with the SDK's OTLP/HTTP exporter."""
    exporter = OTLPSpanExporter(endpoint=server.http_endpoint + "/v1/traces",
                                headers={"x-api-key": key} if key else None)
    result = exporter.export(spans)
    exporter.shutdown()
    assert result.name == "SUCCESS", result


def seed(server, key: str | None = None) -> dict:
    """A small varied store: support runs in ``shop`` (one failing) and ``billing``, and a
    long research run with two failed searches.  Returns the run ids by name."""
    runs = {}
    for name, project, fail in (("ok", "shop", False), ("failed", "shop", True), ("billing", "billing", False)):
        spans, runs[name] = record_support_run(project=project, fail_tool=fail)
        send(server, spans, key)
    spans, runs["long"] = record_long_run(60, fail_at=(4, 11))
    send(server, spans, key)
    return runs
