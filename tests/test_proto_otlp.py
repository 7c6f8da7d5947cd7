"""agenttrail.proto.otlp: content types, protobuf decoding, responses and error bodies.

Request bodies come from the real OpenTelemetry SDK (TracerProvider + encode_spans) and from
the generated protobuf classes; nothing here is mocked.
"""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import agenttrail.proto as proto
from agenttrail.proto import (
    MalformedPayload,
    UnsupportedMediaType,
    content_type_for,
    decode_export,
    encode_export_response,
    encode_status,
    parse_content_type,
)


def sdk_spans():
    """An agent run as an instrumented app would export it: agent -> llm, tool; error; link."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent", "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agenttrail.tests", "1.2.3")
    with tracer.start_as_current_span("invoke_agent support", kind=SpanKind.INTERNAL) as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "support")
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes({
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1234,
                "gen_ai.usage.output_tokens": 56,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.request.stream": False,
                "gen_ai.input.messages": json.dumps([{"role": "user", "content": "héllo ✓ 日本"}]),
            })
            llm.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "hi"})
        link = Link(agent.get_span_context(), {"link.kind": "follows"})
        with tracer.start_as_current_span("execute_tool search", links=[link]) as tool:
            tool.set_attribute("gen_ai.tool.name", "search")
            tool.set_attribute("gen_ai.usage.input_tokens", 2**62)
            tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
            tool.record_exception(TimeoutError("search took too long"))
    provider.shutdown()
    return exporter.get_finished_spans()


@pytest.fixture(scope="module")
def sdk_request() -> ExportTraceServiceRequest:
    return encode_spans(sdk_spans())


# --- Content-Type -----------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ("application/x-protobuf", "protobuf"),
    ("Application/X-Protobuf", "protobuf"),
    ("application/protobuf", "protobuf"),
    ("application/x-protobuf; charset=binary", "protobuf"),
    ("application/json", "json"),
    ("application/json; charset=utf-8", "json"),
    ("  APPLICATION/JSON ;charset=UTF-8", "json"),
])
def test_content_types_accepted(header, expected):
    assert parse_content_type(header) == expected


@pytest.mark.parametrize("header", [
    None, "", "text/plain", "application/grpc", "application/jsonx", "application/x-protobuf2",
    "multipart/form-data; boundary=x", "json", "application/json-patch+json", ";application/json",
])
def test_content_types_refused(header):
    with pytest.raises(UnsupportedMediaType, match="application/x-protobuf or application/json") as info:
        parse_content_type(header)
    assert info.value.http_status == 415


def test_response_content_types():
    assert content_type_for("protobuf") == "application/x-protobuf"
    assert content_type_for("json") == "application/json"
    with pytest.raises(ValueError, match="unknown OTLP encoding"):
        content_type_for("xml")


# --- protobuf decoding ------------------------------------------------------------------

def test_sdk_request_round_trips_through_protobuf(sdk_request):
    decoded = decode_export(sdk_request.SerializeToString(), "protobuf")
    assert decoded == sdk_request
    spans = decoded.resource_spans[0].scope_spans[0].spans
    assert sorted(s.name for s in spans) == ["chat gpt-4o", "execute_tool search", "invoke_agent support"]
    tool = next(s for s in spans if s.name == "execute_tool search")
    assert tool.status.code == 2 and tool.status.message == "tool timed out"
    assert {a.key: a.value.int_value for a in tool.attributes}["gen_ai.usage.input_tokens"] == 2**62


@pytest.mark.parametrize("body", [b"", b"\x0a\x00"])
def test_empty_requests_decode_to_empty_messages(body):
    assert decode_export(body, "protobuf") == ExportTraceServiceRequest(resource_spans=[{}] if body else [])


def test_metrics_and_logs_decode():
    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="gen_ai.client.token.usage")
    point = metric.sum.data_points.add(as_int=42, time_unix_nano=1)
    point.exemplars.add(trace_id=bytes(range(16)), span_id=bytes(range(8)), as_int=42)
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(severity_number=9, trace_id=bytes(16))
    assert decode_export(metrics.SerializeToString(), "protobuf", "metrics") == metrics
    assert decode_export(logs.SerializeToString(), "protobuf", "logs") == logs
    assert type(decode_export(b"", "protobuf", "logs")) is ExportLogsServiceRequest


def test_unknown_signal_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown OTLP signal 'profiles'"):
        decode_export(b"", "protobuf", "profiles")


def test_truncated_protobuf_names_the_field(sdk_request):
    body = sdk_request.SerializeToString()
    with pytest.raises(MalformedPayload, match=r"resourceSpans\[0\] declares \d+ bytes but only \d+ remain"):
        decode_export(body[:-7], "protobuf")


def test_every_truncation_of_a_real_request_is_malformed_or_a_valid_prefix(sdk_request):
    body = sdk_request.SerializeToString()
    for cut in range(0, len(body), 7):
        try:
            decode_export(body[:cut], "protobuf")
        except MalformedPayload as exc:
            assert exc.http_status == 400 and "invalid protobuf ExportTraceServiceRequest" in exc.message


def test_invalid_utf8_in_a_string_field_names_its_path():
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.spans.add(name="first")
    scope_spans.spans.add(name="MARKER")
    body = request.SerializeToString().replace(b"MARKER", b"MA\xffKER")
    with pytest.raises(MalformedPayload, match=r"invalid UTF-8 in resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[1\]\.name"):
        decode_export(body, "protobuf")


def test_invalid_utf8_in_an_attribute_value_names_its_path():
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="s")
    span.attributes.add(key="ok", value={"string_value": "fine"})
    span.attributes.add(key="bad", value={"string_value": "MARKER"})
    body = request.SerializeToString().replace(b"MARKER", b"\xc3\x28RKER")
    with pytest.raises(MalformedPayload, match=r"spans\[0\]\.attributes\[1\]\.value\.stringValue"):
        decode_export(body, "protobuf")


@pytest.mark.parametrize("body, problem", [
    (b"\xff" * 11, "longer than 10 bytes"),
    (b"\x0a\x05abc", "declares 5 bytes but only 3 remain"),
    (b"\x00\x01", "field number 0"),
    (b"\x0f", "invalid wire type 7"),
    (b"\x0a", "truncated length"),
    (b"this is not protobuf", "invalid protobuf"),
])
def test_garbage_protobuf(body, problem):
    with pytest.raises(MalformedPayload, match=problem):
        decode_export(body, "protobuf")


def nested_array_request(depth: int) -> bytes:
    """A span attribute holding an array in an array ... ``depth`` levels deep, built on the wire."""
    value = b"\x0a\x01x"  # AnyValue{string_value: "x"}
    for _ in range(depth):
        array = b"\x0a" + _varint(len(value)) + value  # ArrayValue{values: [value]}
        value = b"\x2a" + _varint(len(array)) + array  # AnyValue{array_value: array}
    kv = b"\x0a\x01k\x12" + _varint(len(value)) + value  # KeyValue{key: "k", value: value}
    span = b"\x4a" + _varint(len(kv)) + kv  # Span.attributes (field 9)
    scope_spans = b"\x12" + _varint(len(span)) + span  # ScopeSpans.spans (field 2)
    resource_spans = b"\x12" + _varint(len(scope_spans)) + scope_spans  # ResourceSpans.scope_spans
    return b"\x0a" + _varint(len(resource_spans)) + resource_spans


def test_moderate_nesting_in_protobuf_is_accepted():
    decoded = decode_export(nested_array_request(20), "protobuf")
    value = decoded.resource_spans[0].scope_spans[0].spans[0].attributes[0].value
    for _ in range(20):
        value = value.array_value.values[0]
    assert value.string_value == "x"


def test_hostile_nesting_in_protobuf_is_refused():
    with pytest.raises(MalformedPayload, match="nested deeper than 100"):
        decode_export(nested_array_request(300), "protobuf")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# --- responses --------------------------------------------------------------------------

@pytest.mark.parametrize("signal, response_class", [
    ("traces", ExportTraceServiceResponse),
    ("metrics", ExportMetricsServiceResponse),
    ("logs", ExportLogsServiceResponse),
])
def test_full_success_has_no_partial_success(signal, response_class):
    body = encode_export_response(signal, "protobuf")
    assert body == b""
    assert not response_class.FromString(body).HasField("partial_success")
    assert encode_export_response(signal, "json") == b"{}"


def test_partial_success_in_both_encodings():
    body = encode_export_response("traces", "protobuf", rejected=3, error_message="3 spans had invalid ids")
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "3 spans had invalid ids"
    as_json = json.loads(encode_export_response("traces", "json", rejected=3, error_message="bad ids"))
    assert as_json == {"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}}


def test_partial_success_counters_per_signal():
    metrics = json.loads(encode_export_response("metrics", "json", rejected=2))
    logs = json.loads(encode_export_response("logs", "json", rejected=5))
    assert metrics == {"partialSuccess": {"rejectedDataPoints": "2"}}
    assert logs == {"partialSuccess": {"rejectedLogRecords": "5"}}


def test_warning_without_rejections_still_sets_partial_success():
    response = ExportTraceServiceResponse.FromString(
        encode_export_response("traces", "protobuf", error_message="attribute values truncated")
    )
    assert response.HasField("partial_success") and response.partial_success.rejected_spans == 0


def test_status_body_with_retry_info_in_protobuf():
    body = encode_status(grpc.StatusCode.UNAVAILABLE, "storage is busy", "protobuf", retry_after=2.5)
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message) == (14, "storage is busy")
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() == 2_500_000_000


def test_status_body_in_json_is_parseable_back():
    body = encode_status(14, "busy", "json", retry_after=1)
    document = json.loads(body)
    assert document["code"] == 14
    assert document["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert document["details"][0]["retryDelay"] == "1s"
    status = json_format.Parse(body, status_pb2.Status())
    assert status.message == "busy"


def test_status_body_without_retry_has_no_details():
    err = MalformedPayload("invalid hex in resourceSpans[0].scopeSpans[0].spans[0].traceId")
    status = status_pb2.Status.FromString(encode_status(err.grpc_code, err.message, "protobuf"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == err.message and not status.details


def test_public_surface_is_what_we_mean():
    assert set(proto.__all__) == {
        "ENCODINGS", "MalformedPayload", "PayloadTooLarge", "SIGNALS", "SUPPORTED_ENCODINGS",
        "UnsupportedEncoding", "UnsupportedMediaType", "WireError", "content_type_for",
        "decode_export", "decompress", "encode_export_response", "encode_status",
        "grpc_code_value", "parse_content_type", "request_class", "request_to_json",
    }
    assert all(hasattr(proto, name) for name in proto.__all__)
