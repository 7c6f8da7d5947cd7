"""Fuzzing the wire layer: whatever the bytes, the only exception is a WireError."""

from __future__ import annotations

import copy
import gzip
import json
import os
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agenttrail.proto import MalformedPayload, WireError, decode_export, decompress, request_to_json
from agenttrail.proto.fast_json import parse_document
from agenttrail.proto.otlp_json import _parse_with_json_format
from test_proto_otlp import sdk_spans

FUZZ = settings(max_examples=int(os.environ.get("AGENTTRAIL_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIGNALS = st.sampled_from(["traces", "metrics", "logs"])
ENCODINGS = st.sampled_from(["protobuf", "json"])

SDK_REQUEST = encode_spans(sdk_spans())
PROTOBUF_BODY = SDK_REQUEST.SerializeToString()
JSON_BODY = request_to_json(SDK_REQUEST)

# JSON made of OTLP's own keys, so the fuzzer reaches the id rewriting and ParseDict.
OTLP_KEYS = st.sampled_from([
    "resourceSpans", "resource_spans", "scopeSpans", "scope_spans", "spans", "links", "traceId",
    "trace_id", "spanId", "parentSpanId", "name", "kind", "attributes", "key", "value",
    "stringValue", "intValue", "arrayValue", "kvlistValue", "values", "startTimeUnixNano",
    "status", "code", "events", "resourceLogs", "scopeLogs", "logRecords", "resourceMetrics",
    "scopeMetrics", "metrics", "sum", "gauge", "dataPoints", "exemplars", "bytesValue", "x",
])
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.sampled_from(["00", "0a" * 16, "zz", "AQID", "1e5", "-1"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(OTLP_KEYS, inner, max_size=5),
    max_leaves=40,
)


def decode_or_refuse(body: bytes, encoding: str, signal: str) -> None:
    try:
        decode_export(body, encoding, signal)
    except WireError as exc:
        assert exc.message and exc.http_status == 400


@FUZZ
@given(st.binary(max_size=512), ENCODINGS, SIGNALS)
def test_random_bytes_decode_or_raise_wire_error(body, encoding, signal):
    decode_or_refuse(body, encoding, signal)


@FUZZ
@given(st.data())
def test_mutated_real_protobuf_decodes_or_raises_wire_error(data):
    body = bytearray(PROTOBUF_BODY)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            body[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del body[position:position + data.draw(st.integers(1, 8))]
        else:
            body[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        if not body:
            break
    decode_or_refuse(bytes(body), "protobuf", "traces")


@FUZZ
@given(st.data())
def test_mutated_real_json_decodes_or_raises_wire_error(data):
    body = bytearray(JSON_BODY)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.sampled_from(b'{}[]",:0aZ\\ \xff\xc3'))
    decode_or_refuse(bytes(body), "json", "traces")


@FUZZ
@given(JSON_VALUES, SIGNALS)
def test_random_otlp_shaped_json_decodes_or_raises_wire_error(document, signal):
    decode_or_refuse(json.dumps(document).encode(), "json", signal)


@FUZZ
@given(st.binary(max_size=256), st.sampled_from(["gzip", "deflate", "identity", "br", "gzip, gzip"]))
def test_random_bytes_decompress_or_raise_wire_error(body, encoding):
    try:
        out = decompress(body, encoding, 4096)
    except WireError as exc:
        assert exc.message
    else:
        assert len(out) <= 4096


@FUZZ
@given(st.binary(max_size=2048), st.integers(0, 4096), st.sampled_from(["gzip", "deflate"]))
def test_valid_streams_decompress_exactly_or_are_too_large(payload, limit, encoding):
    body = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)
    try:
        assert decompress(body, encoding, limit) == payload
    except WireError as exc:
        assert exc.http_status == 413 and len(payload) > limit


# --- the fast JSON path must agree with json_format -----------------------------------------

def _anything_but(valid):
    return valid | st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.just([]) | st.just({})


HEX = st.sampled_from(["", "00", "0A" * 8, "ab" * 16, "abc", "zz", "0x12", "ab cd"])
INTS = st.integers(-(2**65), 2**65) | st.integers(0, 2**64).map(str) | st.sampled_from(["1_0", " 5", "1e3", "-0", "+7"]) | st.floats()
ANY_VALUE = st.recursive(
    st.fixed_dictionaries({}, optional={
        "stringValue": _anything_but(st.text(max_size=8)), "intValue": INTS, "doubleValue": _anything_but(st.floats()),
        "boolValue": _anything_but(st.booleans()), "bytesValue": st.sampled_from(["AAEC", "AAE", "-_8=", "***", ""]),
    }),
    lambda inner: st.fixed_dictionaries({}, optional={
        "arrayValue": st.fixed_dictionaries({"values": st.lists(inner, max_size=3)}),
        "kvlist_value": st.fixed_dictionaries({"values": st.lists(
            st.fixed_dictionaries({"key": st.text(max_size=4), "value": inner}), max_size=3)}),
        "stringValue": st.text(max_size=4),
    }),
    max_leaves=8,
)
ATTRIBUTES = st.lists(st.fixed_dictionaries({"key": _anything_but(st.text(max_size=6))}, optional={"value": ANY_VALUE}), max_size=4)
SPAN = st.fixed_dictionaries({}, optional={
    "traceId": _anything_but(HEX), "span_id": HEX, "parentSpanId": HEX, "name": _anything_but(st.text(max_size=8)),
    "kind": _anything_but(st.integers(-3, 9) | st.sampled_from(["SPAN_KIND_SERVER", "SPAN_KIND_NOPE"])),
    "startTimeUnixNano": INTS, "end_time_unix_nano": INTS, "droppedAttributesCount": INTS, "flags": INTS,
    "attributes": _anything_but(ATTRIBUTES),
    "status": _anything_but(st.fixed_dictionaries({}, optional={"code": _anything_but(st.sampled_from([0, 2, "STATUS_CODE_ERROR", "BAD"])), "message": st.text(max_size=4)})),
    "links": st.lists(st.fixed_dictionaries({}, optional={"traceId": HEX, "spanId": HEX, "attributes": ATTRIBUTES}), max_size=2),
    "events": st.lists(st.fixed_dictionaries({}, optional={"name": st.text(max_size=4), "timeUnixNano": INTS}), max_size=2),
    "unknownField": JSON_VALUES,
})
TRACE_DOCUMENTS = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
    {"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(SPAN, max_size=3)},
                                                  optional={"scope": st.fixed_dictionaries({"name": st.text(max_size=4)})}), max_size=2)},
    optional={"resource": st.fixed_dictionaries({"attributes": ATTRIBUTES})}), max_size=2)})


@FUZZ
@given(TRACE_DOCUMENTS)
def test_fast_json_path_agrees_with_json_format(document):
    fast = parse_document(copy.deepcopy(document), ExportTraceServiceRequest)
    try:
        slow = _parse_with_json_format(copy.deepcopy(document), ExportTraceServiceRequest)
    except MalformedPayload:
        assert fast is None, "the fast path accepted what json_format refuses"
        return
    if fast is not None:
        assert fast == slow
    assert decode_export(json.dumps(document).encode(), "json") == slow


def test_fast_json_path_takes_real_requests():
    assert parse_document(json.loads(JSON_BODY), ExportTraceServiceRequest) == SDK_REQUEST
