"""OTLP request decoding and response encoding, for both HTTP encodings and gRPC.

The receivers call, in order: :func:`parse_content_type` (HTTP only), then
``compression.decompress``, then :func:`decode_export`; and answer with
:func:`encode_export_response` or, on error, :func:`encode_status` in the request's encoding
with :func:`content_type_for` as the response Content-Type.
"""

from __future__ import annotations

from typing import Literal

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from .errors import MalformedPayload, UnsupportedMediaType
from .otlp_json import message_to_json, parse_json
from .wire_diagnose import describe_problem

__all__ = [
    "ENCODINGS",
    "SIGNALS",
    "content_type_for",
    "decode_export",
    "encode_export_response",
    "encode_status",
    "grpc_code_value",
    "parse_content_type",
    "request_class",
]

Encoding = Literal["protobuf", "json"]
ENCODINGS = ("protobuf", "json")
SIGNALS = ("traces", "metrics", "logs")

_PROTOBUF_TYPES = {"application/x-protobuf", "application/protobuf"}
_JSON_TYPES = {"application/json"}
_CONTENT_TYPE = {"protobuf": "application/x-protobuf", "json": "application/json"}

# signal -> (request class, response class, name of PartialSuccess's rejected counter)
_MESSAGES: dict[str, tuple[type[Message], type[Message], str]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "rejected_spans",
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "rejected_data_points",
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "rejected_log_records",
    ),
}


def parse_content_type(header: str | None) -> Encoding:
    """Map a Content-Type header to ``"protobuf"`` or ``"json"``; parameters are ignored.

    ``application/x-protobuf`` is what OTLP specifies; ``application/protobuf`` (the
    IANA-registered name) is accepted too.  Anything else raises :class:`UnsupportedMediaType`.
    """
    media_type = (header or "").split(";", 1)[0].strip().lower()
    if media_type in _PROTOBUF_TYPES:
        return "protobuf"
    if media_type in _JSON_TYPES:
        return "json"
    shown = repr(header) if header else "no Content-Type"
    raise UnsupportedMediaType(
        f"unsupported media type {shown}; send application/x-protobuf or application/json"
    )


def content_type_for(encoding: str) -> str:
    """The Content-Type of a response in ``encoding`` (the request's)."""
    return _CONTENT_TYPE[_check_encoding(encoding)]


def request_class(signal: str) -> type[Message]:
    """The Export*ServiceRequest class of ``signal`` (traces, metrics or logs)."""
    return _messages(signal)[0]


def decode_export(body: bytes, encoding: str, signal: str = "traces") -> Message:
    """Decode an (already decompressed) body into the signal's Export*ServiceRequest.

    Raises :class:`MalformedPayload` for anything that is not a valid request, with a
    message naming the defect and, when it can be found, the path of the field.
    """
    if _check_encoding(encoding) == "json":
        return parse_json(body, request_class(signal))
    message = request_class(signal)()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        where = describe_problem(body, message.DESCRIPTOR)
        raise MalformedPayload(f"invalid protobuf {message.DESCRIPTOR.name}: {where or exc}") from None
    return message


def encode_export_response(signal: str, encoding: str, rejected: int = 0, error_message: str = "") -> bytes:
    """The success body: partial_success is set only when something was rejected or said."""
    _, response_class, rejected_field = _messages(signal)
    response = response_class()
    if rejected or error_message:
        setattr(response.partial_success, rejected_field, rejected)
        response.partial_success.error_message = error_message
    return _encode(response, encoding)


def encode_status(
    code: int | grpc.StatusCode, message: str, encoding: str, retry_after: float | None = None
) -> bytes:
    """A ``google.rpc.Status`` error body; with ``retry_after`` (seconds) it carries RetryInfo."""
    status = status_pb2.Status(code=grpc_code_value(code), message=message)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(max(retry_after, 0.0) * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return _encode(status, encoding)


def grpc_code_value(code: int | grpc.StatusCode) -> int:
    """The numeric value of a gRPC status code given as an int or a ``grpc.StatusCode``."""
    return code.value[0] if isinstance(code, grpc.StatusCode) else int(code)


def _encode(message: Message, encoding: str) -> bytes:
    if _check_encoding(encoding) == "json":
        return message_to_json(message)
    return message.SerializeToString()


def _messages(signal: str) -> tuple[type[Message], type[Message], str]:
    try:
        return _MESSAGES[signal]
    except KeyError:
        raise ValueError(f"unknown OTLP signal {signal!r}; expected one of {SIGNALS}") from None


def _check_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown OTLP encoding {encoding!r}; expected one of {ENCODINGS}")
    return encoding
