"""agenttrail.proto.otlp_json: OTLP/JSON (hex ids, camelCase, string int64s) to protobuf."""

from __future__ import annotations

import copy
import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agenttrail.proto import MalformedPayload, decode_export, request_to_json
from agenttrail.proto.fast_json import parse_document
from agenttrail.proto.otlp_json import _parse_with_json_format
from test_proto_otlp import sdk_spans

# In the style of opentelemetry-proto's examples/trace.json: upper-case hex ids, enum as a
# name and as a number, int64 as strings and as numbers, snake_case mixed in, unknown fields.
SPEC_STYLE = """
{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "support-agent"}}]},
    "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
    "futureField": {"ignored": true},
    "scopeSpans": [{
      "scope": {"name": "openai.instrumentation", "version": "0.1"},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "eee19b7ec3c1b173",
        "name": "chat gpt-4o",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "attributes": [
          {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
          {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1234"}},
          {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 56}},
          {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}},
          {"key": "gen_ai.request.stream", "value": {"boolValue": false}},
          {"key": "blob", "value": {"bytesValue": "AAEC/w=="}},
          {"key": "gen_ai.response.finish_reasons",
           "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
          {"key": "meta", "value": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "-1"}}]}}}
        ],
        "events": [{"timeUnixNano": "1544712660500000000", "name": "gen_ai.choice",
                    "attributes": [{"key": "index", "value": {"intValue": "0"}}]}],
        "links": [{"traceId": "00000000000000000000000000000001", "spanId": "0000000000000002",
                   "traceState": "k=v", "droppedAttributesCount": 1}],
        "status": {"code": 2, "message": "rate limited"},
        "flags": 257
      }, {
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "EEE19B7EC3C1B173",
        "name": "invoke_agent support",
        "kind": 1,
        "start_time_unix_nano": "1544712659000000000",
        "end_time_unix_nano": "1544712662000000000",
        "status": {"code": "STATUS_CODE_OK"}
      }]
    }]
  }]
}
"""


def expected_spec_style() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    resource_spans.resource.attributes.add(key="service.name", value={"string_value": "support-agent"})
    scope_spans = resource_spans.scope_spans.add(scope={"name": "openai.instrumentation", "version": "0.1"})
    trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    llm = scope_spans.spans.add(
        trace_id=trace_id, span_id=bytes.fromhex("eee19b7ec3c1b174"), parent_span_id=bytes.fromhex("eee19b7ec3c1b173"),
        name="chat gpt-4o", kind=Span.SPAN_KIND_CLIENT, flags=257,
        start_time_unix_nano=1544712660000000000, end_time_unix_nano=1544712661000000000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="rate limited"),
    )
    for key, value in [
        ("gen_ai.request.model", {"string_value": "gpt-4o"}),
        ("gen_ai.usage.input_tokens", {"int_value": 1234}),
        ("gen_ai.usage.output_tokens", {"int_value": 56}),
        ("gen_ai.request.temperature", {"double_value": 0.2}),
        ("gen_ai.request.stream", {"bool_value": False}),
        ("blob", {"bytes_value": b"\x00\x01\x02\xff"}),
        ("gen_ai.response.finish_reasons", {"array_value": {"values": [{"string_value": "stop"}]}}),
        ("meta", {"kvlist_value": {"values": [{"key": "a", "value": {"int_value": -1}}]}}),
    ]:
        llm.attributes.add(key=key, value=value)
    event = llm.events.add(time_unix_nano=1544712660500000000, name="gen_ai.choice")
    event.attributes.add(key="index", value={"int_value": 0})
    llm.links.add(trace_id=bytes(15) + b"\x01", span_id=bytes(7) + b"\x02", trace_state="k=v", dropped_attributes_count=1)
    scope_spans.spans.add(
        trace_id=trace_id, span_id=bytes.fromhex("eee19b7ec3c1b173"), name="invoke_agent support",
        kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=1544712659000000000,
        end_time_unix_nano=1544712662000000000, status=Status(code=Status.STATUS_CODE_OK),
    )
    return request


def spans_doc(span: dict) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_spec_style_fixture_decodes_to_the_expected_message():
    assert decode_export(SPEC_STYLE.encode(), "json") == expected_spec_style()


def test_spec_style_fixture_is_read_alike_by_the_fast_and_the_reference_path():
    document = json.loads(SPEC_STYLE)
    fast = parse_document(copy.deepcopy(document), ExportTraceServiceRequest)
    assert fast is not None
    assert fast == _parse_with_json_format(document, ExportTraceServiceRequest) == expected_spec_style()


def test_sdk_request_round_trips_through_json_and_protobuf():
    spans = sdk_spans()
    request = encode_spans(spans)
    from_json = decode_export(request_to_json(request), "json")
    from_protobuf = decode_export(request.SerializeToString(), "protobuf")
    assert from_json == request == from_protobuf


def test_json_ids_are_the_sdk_ids_in_hex():
    spans = sdk_spans()
    document = json.loads(request_to_json(encode_spans(spans)))
    by_name = {s["name"]: s for s in document["resourceSpans"][0]["scopeSpans"][0]["spans"]}
    for span in spans:
        encoded = by_name[span.name]
        assert encoded["traceId"] == format(span.context.trace_id, "032x")
        assert encoded["spanId"] == format(span.context.span_id, "016x")
        if span.parent is not None:
            assert encoded["parentSpanId"] == format(span.parent.span_id, "016x")
    tool = by_name["execute_tool search"]
    assert tool["links"][0]["spanId"] == by_name["invoke_agent support"]["spanId"]
    assert isinstance(tool["kind"], int)  # OTLP/JSON wants enums as integers


@pytest.mark.parametrize("body", [b"", b"   \n", b"{}", b"\xef\xbb\xbf{}", b'{"resourceSpans": []}'])
def test_empty_requests(body):
    assert decode_export(body, "json") == ExportTraceServiceRequest()


def test_ids_of_the_wrong_length_pass_through_as_bytes():
    decoded = decode_export(spans_doc({"traceId": "abcd", "spanId": "", "name": "short ids"}), "json")
    span = decoded.resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id) == (b"\xab\xcd", b"")


def test_null_ids_are_absent():
    decoded = decode_export(spans_doc({"traceId": None, "parentSpanId": None, "name": "n"}), "json")
    assert decoded.resource_spans[0].scope_spans[0].spans[0].trace_id == b""


@pytest.mark.parametrize("field, value, problem", [
    ("traceId", "5B8EFFF798038103D269B633813FC6ZZ", "invalid hex in resourceSpans[0].scopeSpans[0].spans[0].traceId"),
    ("spanId", "W7jv95gDgQM=", "invalid hex in resourceSpans[0].scopeSpans[0].spans[0].spanId"),
    ("parentSpanId", "abc", "invalid hex in resourceSpans[0].scopeSpans[0].spans[0].parentSpanId"),
    ("spanId", "ab cd", "invalid hex"),
    ("spanId", "0xabcdef0123456789", "invalid hex"),
    ("spanId", "ééééééééééééééé", "invalid hex"),
    ("traceId", 12345, "traceId must be a hex string, got number"),
    ("traceId", ["ab"], "traceId must be a hex string, got array"),
])
def test_bad_ids_name_the_path(field, value, problem):
    with pytest.raises(MalformedPayload) as info:
        decode_export(spans_doc({field: value}), "json")
    assert problem in info.value.message
    assert info.value.http_status == 400


def test_bad_id_deep_in_the_request_names_every_index():
    document = {"resourceSpans": [
        {"scopeSpans": [{"spans": [{"traceId": "00"}]}]},
        {"scopeSpans": [{}, {"spans": [{}, {}, {}, {"links": [{}, {"spanId": "nothex!!"}]}]}]},
    ]}
    with pytest.raises(MalformedPayload, match=r"invalid hex in resourceSpans\[1\]\.scopeSpans\[1\]\.spans\[3\]\.links\[1\]\.spanId"):
        decode_export(json.dumps(document).encode(), "json")


def test_snake_case_bad_id_is_named_as_sent():
    body = json.dumps({"resource_spans": [{"scope_spans": [{"spans": [{"parent_span_id": "zz"}]}]}]}).encode()
    with pytest.raises(MalformedPayload, match=r"resource_spans\[0\]\.scope_spans\[0\]\.spans\[0\]\.parent_span_id"):
        decode_export(body, "json")


def test_logs_and_metrics_ids_are_hex_too():
    logs = decode_export(json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
        "severityNumber": "SEVERITY_NUMBER_INFO", "body": {"stringValue": "hello"}}]}]}]}).encode(), "json", "logs")
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id == bytes(range(1, 17)) and record.span_id == bytes(range(1, 9))
    assert record.severity_number == 9 and isinstance(logs, ExportLogsServiceRequest)

    metrics = decode_export(json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "name": "gen_ai.client.token.usage",
        "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "count": "3", "bucketCounts": ["1", "2"], "explicitBounds": [10.0],
            "exemplars": [{"traceId": "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "spanId": "0000000000000001", "asDouble": 5}],
        }]},
    }]}]}]}).encode(), "json", "metrics")
    exemplar = metrics.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0].exemplars[0]
    assert exemplar.trace_id == b"\xff" * 16 and exemplar.span_id == bytes(7) + b"\x01"
    assert isinstance(metrics, ExportMetricsServiceRequest)


def test_bad_exemplar_id_names_the_path():
    body = json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "sum": {"dataPoints": [{"exemplars": [{"spanId": "q"}]}]}}]}]}]}).encode()
    with pytest.raises(MalformedPayload, match=r"metrics\[0\]\.sum\.dataPoints\[0\]\.exemplars\[0\]\.spanId"):
        decode_export(body, "json", "metrics")


def test_request_to_json_handles_logs_and_metrics():
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8)
    document = json.loads(request_to_json(logs))
    assert document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] == "0a" * 16
    assert decode_export(request_to_json(logs), "json", "logs") == logs


@pytest.mark.parametrize("body, problem", [
    (b"\xff\xfe{}", "invalid UTF-8 in JSON body at byte 0"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "caf\xe9"}]}]}]}', "invalid UTF-8 in JSON body at byte 59"),
    (b"{", "invalid JSON body"),
    (b'{"resourceSpans": [}', "invalid JSON body"),
    (b"[]", "must be a JSON object, got array"),
    (b"null", "must be a JSON object, got null"),
    (b'"resourceSpans"', "must be a JSON object, got string"),
    (b"42", "must be a JSON object, got number"),
    (b"true", "must be a JSON object, got boolean"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'{"a":' * 200_000 + b"1" + b"}" * 200_000, "nested too deeply"),
    (b'{"resourceSpans": {}}', "invalid OTLP/JSON ExportTraceServiceRequest"),
    (b'{"resourceSpans": "x"}', "invalid OTLP/JSON"),
    (b'{"resourceSpans": [42]}', "invalid OTLP/JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_NOPE", "startTimeUnixNano": "soon"}]}]}]}',
     "startTimeUnixNano"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "-1"}]}]}]}', "startTimeUnixNano"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": 1.5}]}]}]}', "startTimeUnixNano"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 7}]}]}]}', "name"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\\ud800"}]}]}]}', "name"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}]}]}]}',
     "oneof"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"droppedAttributesCount": ' + b"9" * 5000 + b"}]}]}]}",
     "invalid JSON body"),
])
def test_malformed_json(body, problem):
    with pytest.raises(MalformedPayload) as info:
        decode_export(body, "json")
    assert problem in info.value.message, info.value.message


def test_deep_but_legal_anyvalue_nesting_is_accepted():
    value: dict = {"stringValue": "leaf"}
    for _ in range(20):
        value = {"arrayValue": {"values": [value]}}
    decoded = decode_export(spans_doc({"attributes": [{"key": "k", "value": value}]}), "json")
    assert decoded.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.HasField("array_value")


def test_hostile_anyvalue_nesting_is_malformed():
    # 60 levels of kvlist: 240 JSON levels, fine for json.loads; 180 message levels, too deep.
    value = '{"kvlistValue": {"values": [{"key": "k", "value": ' * 60 + '{"stringValue": "leaf"}' + "}]}}" * 60
    body = '{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": %s}]}]}]}]}' % value
    with pytest.raises(MalformedPayload, match="too deep"):
        decode_export(body.encode(), "json")


def test_unknown_enum_names_and_fields_are_ignored():
    decoded = decode_export(spans_doc({"name": "n", "kind": "SPAN_KIND_FUTURE", "newThing": [1, 2]}), "json")
    assert decoded.resource_spans[0].scope_spans[0].spans[0].kind == Span.SPAN_KIND_UNSPECIFIED
