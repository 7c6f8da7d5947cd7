"""Spans made by the real OpenTelemetry SDK, for tests that feed them to real exporters."""

from __future__ import annotations

import json

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode


def record_support_run(service: str = "support-svc", project: str | None = None, fail_tool: bool = False):
    """One agent run (invoke_agent → chat, execute_tool ×2, chat), as finished SDK spans.

    Returns (spans, run_id hex).  Spans come in end order, children before the root, as a
    BatchSpanProcessor would export them.
    """
    attrs = {"service.name": service}
    if project:
        attrs["agenttrail.project"] = project
    provider = TracerProvider(resource=Resource.create(attrs))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.support-agent", "1.0")
    with tracer.start_as_current_span("invoke_agent support-agent", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-agent",
        "gen_ai.conversation.id": "conv-1",
    }) as root:
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
        }):
            pass
        with tracer.start_as_current_span("execute_tool order_lookup", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_lookup",
            "gen_ai.tool.call.arguments": json.dumps({"order_id": "12345"}),
        }) as tool:
            if fail_tool:
                tool.set_status(Status(StatusCode.ERROR, "timeout"))
                tool.set_attribute("error.type", "TimeoutError")
        with tracer.start_as_current_span("execute_tool shipping_status", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "shipping_status",
            "gen_ai.tool.call.arguments": json.dumps({"tracking": "T-1"}),
        }):
            pass
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 150,
            "gen_ai.usage.output_tokens": 40,
        }):
            pass
        run_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return list(memory.get_finished_spans()), run_id
