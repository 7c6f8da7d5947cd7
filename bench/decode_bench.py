"""Decode speed of the OTLP wire layer on a realistic GenAI batch.

One request = one BatchSpanProcessor batch: 512 spans (agent, llm, tool, retrieval steps of
64 traces), about 15 attributes each, a prompt/completion of a few hundred bytes on llm spans.
Prints requests/s and spans/s for protobuf and OTLP/JSON decoding, with and without gzip, and
for the json_format reference path that the fast JSON path falls back to.

    .venv/bin/python bench/decode_bench.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agenttrail.proto import decode_export, decompress, request_to_json
from agenttrail.proto.otlp_json import _parse_with_json_format

SPANS_PER_REQUEST = 512
LIMIT = 64 << 20


def genai_request(spans: int = SPANS_PER_REQUEST) -> ExportTraceServiceRequest:
    """A batch as an instrumented agent app exports it."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in [("service.name", "support-agent"), ("service.version", "2.3.1"),
                       ("deployment.environment", "prod"), ("telemetry.sdk.language", "python")]:
        resource_spans.resource.attributes.add(key=key, value={"string_value": value})
    scope_spans = resource_spans.scope_spans.add(scope={"name": "opentelemetry.instrumentation.openai", "version": "0.47b0"})
    start = 1_760_000_000_000_000_000
    trace_id = b""
    for i in range(spans):
        if i % 8 == 0:  # eight steps per agent run
            trace_id = os.urandom(16)
        kind = ("invoke_agent", "chat", "execute_tool", "retrieval")[i % 4]
        span = scope_spans.spans.add(
            trace_id=trace_id, span_id=os.urandom(8), parent_span_id=os.urandom(8) if i % 8 else b"",
            name=f"{kind} gpt-4o", kind=Span.SPAN_KIND_CLIENT if kind == "chat" else Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start + i * 1_000_000, end_time_unix_nano=start + i * 1_000_000 + 850_000_000,
        )
        _add_attributes(span, kind, i)
        if kind == "chat":
            span.events.add(time_unix_nano=start + i, name="gen_ai.choice").attributes.add(
                key="index", value={"int_value": 0})
    return request


def _add_attributes(span: Span, kind: str, i: int) -> None:
    strings = {
        "gen_ai.operation.name": kind, "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": f"chatcmpl-{i:012d}",
        "gen_ai.agent.name": "support", "gen_ai.conversation.id": f"conv-{i // 8}",
        "gen_ai.tool.name": "search_kb", "gen_ai.tool.call.id": f"call_{i:08x}",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Where is my order #%d? " % i * 6}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "It ships tomorrow. " * 8}]}]),
    }
    for key, value in strings.items():
        span.attributes.add(key=key, value={"string_value": value})
    for key, value in {"gen_ai.usage.input_tokens": 1200 + i, "gen_ai.usage.output_tokens": 80 + i % 50,
                       "gen_ai.request.max_tokens": 1024}.items():
        span.attributes.add(key=key, value={"int_value": value})
    span.attributes.add(key="gen_ai.request.temperature", value={"double_value": 0.2})
    span.attributes.add(key="gen_ai.response.finish_reasons",
                        value={"array_value": {"values": [{"string_value": "stop"}]}})


def measure(label: str, decode, seconds: float) -> None:
    decode()  # warm up
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        decode()
        count += 1
    per_second = count / elapsed
    print(f"{label:<24} {per_second:10.1f} requests/s {per_second * SPANS_PER_REQUEST:12,.0f} spans/s"
          f" {elapsed / count * 1e3:9.2f} ms/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    request = genai_request()
    protobuf_body = request.SerializeToString()
    json_body = request_to_json(request)
    assert decode_export(json_body, "json") == request == decode_export(protobuf_body, "protobuf")
    gz_protobuf, gz_json = gzip.compress(protobuf_body), gzip.compress(json_body)
    attributes = sum(len(s.attributes) for s in request.resource_spans[0].scope_spans[0].spans) / SPANS_PER_REQUEST
    print(f"{SPANS_PER_REQUEST} spans, {attributes:.0f} attributes/span; bodies: protobuf {len(protobuf_body):,} B"
          f" (gzip {len(gz_protobuf):,}), JSON {len(json_body):,} B (gzip {len(gz_json):,})")
    measure("protobuf", lambda: decode_export(protobuf_body, "protobuf"), args.seconds)
    measure("protobuf + gunzip", lambda: decode_export(decompress(gz_protobuf, "gzip", LIMIT), "protobuf"), args.seconds)
    measure("json", lambda: decode_export(json_body, "json"), args.seconds)
    measure("json + gunzip", lambda: decode_export(decompress(gz_json, "gzip", LIMIT), "json"), args.seconds)
    # The reference path the fast one falls back to, for comparison.
    measure("json via json_format", lambda: _parse_with_json_format(json.loads(json_body), type(request)), args.seconds)


if __name__ == "__main__":
    main()
