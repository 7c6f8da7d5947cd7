"""Hostile and malformed OTLP/HTTP input: the right status, nothing acknowledged is lost, the server stays up."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_helpers import record_support_run

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def post(server, body: bytes, headers: dict, path: str = "/v1/traces"):
    return httpx.post(server.http_endpoint + path, content=body, headers=headers, timeout=30)


def run_of(server, run_id):
    return httpx.get(f"{server.api_url}/v1/runs/{run_id}", timeout=10)


@pytest.fixture
def stored_run(server):
    """A run that was acknowledged before the hostile traffic starts."""
    spans, run_id = record_support_run()
    body = encode_spans(spans).SerializeToString()
    assert post(server, body, PROTOBUF).status_code == 200
    return run_id, run_of(server, run_id).json()


def assert_still_intact(server, stored):
    run_id, before = stored
    after = run_of(server, run_id)
    assert after.status_code == 200 and after.json() == before
    assert httpx.get(server.api_url + "/health", timeout=10).json()["status"] == "ok"


def test_garbage_protobuf_is_400_with_status_body(server, stored_run):
    response = post(server, b"\xff\xfe garbage \x00\x01" * 10, PROTOBUF)
    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert status.message
    assert_still_intact(server, stored_run)


def test_invalid_json_and_invalid_utf8_are_400_in_json(server, stored_run):
    for body in (b"{not json", b'{"resourceSpans": [{"scopeSpans": "\xff\xfe"}]}', b"[1, 2]"):
        response = post(server, body, JSON)
        assert response.status_code == 400, body
        assert "message" in response.json()
    assert_still_intact(server, stored_run)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_unsupported_content_type_is_415(server, stored_run, content_type):
    assert post(server, b"{}", {"content-type": content_type}).status_code == 415
    assert_still_intact(server, stored_run)


def test_non_post_is_405(server):
    response = httpx.get(server.http_endpoint + "/v1/traces", timeout=10)
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")


def test_oversized_body_is_413(make_server):
    server = make_server(max_request_bytes=64 * 1024)
    response = post(server, b"\x00" * (200 * 1024), PROTOBUF)
    assert response.status_code == 413


def test_gzip_bomb_is_413_after_decompression(make_server):
    server = make_server(max_request_bytes=1024 * 1024)
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024  # small on the wire, huge once inflated
    response = post(server, bomb, {**PROTOBUF, "content-encoding": "gzip"})
    assert response.status_code == 413


def test_corrupt_gzip_is_400_and_deflate_works(server):
    assert post(server, b"\x1f\x8b\x08\x00garbage", {**PROTOBUF, "content-encoding": "gzip"}).status_code == 400
    spans, run_id = record_support_run()
    body = zlib.compress(encode_spans(spans).SerializeToString())
    assert post(server, body, {**PROTOBUF, "content-encoding": "deflate"}).status_code == 200
    assert run_of(server, run_id).json()["step_count"] == 5


def _json_request(trace_id: str, spans: list[dict]) -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}],
    }]}).encode()


def test_otlp_json_with_hex_ids_and_partial_success_for_bad_spans(server, stored_run):
    trace_id = "5B8EFFF798038103D269B633813FC60C"  # upper case is legal
    good_root = {"traceId": trace_id, "spanId": "EEE19B7EC3C1B174", "name": "invoke_agent json-agent",
                 "kind": 1, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
                 "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                                {"key": "gen_ai.agent.name", "value": {"stringValue": "json-agent"}}],
                 "status": {"code": "STATUS_CODE_OK"}}
    skewed_child = {"traceId": trace_id, "spanId": "EEE19B7EC3C1B175", "parentSpanId": "EEE19B7EC3C1B174",
                    "name": "chat m", "startTimeUnixNano": 1700000000500000000,
                    "endTimeUnixNano": 1700000000400000000,  # ends before it starts: clock skew
                    "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                   {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}}]}
    bad_span_id = {"traceId": trace_id, "spanId": "0000000000000000", "name": "zero id",
                   "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000000001"}
    short_trace = {"traceId": "abcd", "spanId": "EEE19B7EC3C1B176", "name": "short trace id",
                   "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    response = post(server, _json_request(trace_id, [good_root, skewed_child, bad_span_id, short_trace]), JSON)
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2 and partial["errorMessage"]

    run = run_of(server, trace_id.lower()).json()
    assert run["step_count"] == 2 and run["agent_name"] == "json-agent" and run["status"] == "ok"
    child = run["steps"][1]
    assert child["latency_ms"] == 0 and child["input_tokens"] == 7
    assert_still_intact(server, stored_run)


def test_bad_hex_in_json_is_400(server):
    span = {"traceId": "zz" * 16, "spanId": "EEE19B7EC3C1B174", "name": "x"}
    assert post(server, _json_request("x", [span]), JSON).status_code == 400


def test_empty_requests_succeed(server):
    assert post(server, b"", PROTOBUF).status_code == 200
    assert post(server, b"{}", JSON).status_code == 200


def test_metrics_and_logs_are_accepted_not_stored(server):
    assert post(server, b"", PROTOBUF, "/v1/metrics").status_code == 200
    assert post(server, b"{}", JSON, "/v1/logs").status_code == 200


def test_invalid_utf8_in_protobuf_string_is_400(server):
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "placeholder"
    body = request.SerializeToString().replace(b"placeholder", b"placeh\xff\xfeer")
    assert post(server, body, PROTOBUF).status_code == 400


def test_grpc_garbage_and_bad_utf8_are_invalid_argument(server, stored_run):
    """gRPC Export decodes the raw bytes itself: bad bodies name the problem, nothing else breaks."""
    import grpc

    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "placeholder"
    bad_utf8 = request.SerializeToString().replace(b"placeholder", b"placeh\xff\xfeer")
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        for body in (b"\xff\xfe garbage \x00\x01" * 10, bad_utf8):
            with pytest.raises(grpc.RpcError) as failure:
                export(body, timeout=10)
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert failure.value.details()
        assert export(b"", timeout=10) == b""  # an empty request is a valid, empty export
        spans, run_id = record_support_run()
        export(encode_spans(spans).SerializeToString(), timeout=10)
    assert run_of(server, run_id).json()["step_count"] == len(spans)
    assert_still_intact(server, stored_run)
