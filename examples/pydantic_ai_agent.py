"""A Pydantic AI agent traced by Pydantic AI's own OpenTelemetry instrumentation.

Nothing agenttrail-specific runs in the agent: the standard OpenTelemetry SDK with the standard
OTLP exporter points at the agenttrail server, and Pydantic AI emits GenAI semantic-convention
spans (``invoke_agent``, ``chat``, ``execute_tool``) that the server maps to runs and steps.
The model is Pydantic AI's ``TestModel`` (deterministic, no API key), which calls every tool.

Needs ``pip install pydantic-ai-slim``.  Run it against a local server::

    python examples/pydantic_ai_agent.py --endpoint http://localhost:4317 --api-url http://localhost:8000

The same works with no code at all via environment variables, e.g.
``OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
OTEL_EXPORTER_OTLP_HEADERS=x-agenttrail-project=demo``.  ``--json`` prints a summary for tests.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

ORDERS = {"A-1001": {"status": "shipped", "tracking": "TRK-9"}}


def build_agent() -> Agent:
    """The support agent: two tools, a deterministic test model."""
    agent = Agent(TestModel(), name="support-agent",
                  instructions="Answer order questions using the order and shipping tools.")

    @agent.tool_plain
    def order_lookup(order_id: str) -> dict:
        """Look up an order by id."""
        return ORDERS.get(order_id.upper(), {"status": "unknown", "tracking": ""})

    @agent.tool_plain
    def shipping_status(tracking: str) -> str:
        """Where a parcel is."""
        return "out for delivery" if tracking else "no tracking number"

    return agent


def setup_tracing(endpoint: str, protocol: str, project: str, api_key: str | None) -> TracerProvider:
    """Standard OpenTelemetry: a provider, a batch processor, the stock OTLP exporter."""
    headers = {"x-agenttrail-project": project}
    if api_key:
        headers["x-api-key"] = api_key
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", headers=headers)
    provider = TracerProvider(resource=Resource.create({"service.name": "pydantic-ai-example"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    Agent.instrument_all()  # Pydantic AI's own instrumentation, on the global provider
    return provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://localhost:4317")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--api-url", default="http://localhost:8000")
    parser.add_argument("--project", default="demo")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    provider = setup_tracing(args.endpoint, args.protocol, args.project, args.api_key)
    result = build_agent().run_sync("Where is my order A-1001?")
    provider.force_flush()
    provider.shutdown()

    headers = {"x-api-key": args.api_key} if args.api_key else {}
    runs = httpx.get(f"{args.api_url}/v1/runs", params={"project_id": args.project, "agent": "support-agent"},
                     headers=headers, timeout=10).json()["runs"]
    summary = {"output": result.output, "runs": [
        {"run_id": r["run_id"], "status": r["status"], "steps": r["step_count"], "llm_calls": r["llm_calls"],
         "tool_calls": r["tool_calls"], "tools": r.get("tools"), "total_tokens": r["total_tokens"]} for r in runs]}
    if args.json:
        print(json.dumps(summary))
    else:
        print("agent output:", result.output)
        for r in summary["runs"]:
            print(f"run {r['run_id']}: {r['status']}, {r['steps']} steps, tools {r['tools']}, {r['total_tokens']} tokens")
    return 0 if summary["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
