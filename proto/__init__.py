"""agenttrail.proto — the OTLP wire layer: pure functions from bytes to messages and back.

No sockets and no storage: the HTTP and gRPC receivers call

* :func:`parse_content_type` — Content-Type header to ``"protobuf"`` / ``"json"``;
* :func:`decompress` — Content-Encoding (identity, gzip, deflate) with a post-decompression cap;
* :func:`decode_export` — body to ``Export{Trace,Metrics,Logs}ServiceRequest``;
* :func:`encode_export_response` / :func:`encode_status` / :func:`content_type_for` — answers.

Every refusal is a :class:`WireError` carrying its HTTP status and gRPC code.
"""

from .compression import SUPPORTED_ENCODINGS, decompress
from .errors import (
    MalformedPayload,
    PayloadTooLarge,
    UnsupportedEncoding,
    UnsupportedMediaType,
    WireError,
)
from .otlp import (
    ENCODINGS,
    SIGNALS,
    content_type_for,
    decode_export,
    encode_export_response,
    encode_status,
    grpc_code_value,
    parse_content_type,
    request_class,
)
from .otlp_json import request_to_json

__all__ = [
    "ENCODINGS",
    "MalformedPayload",
    "PayloadTooLarge",
    "SIGNALS",
    "SUPPORTED_ENCODINGS",
    "UnsupportedEncoding",
    "UnsupportedMediaType",
    "WireError",
    "content_type_for",
    "decode_export",
    "decompress",
    "encode_export_response",
    "encode_status",
    "grpc_code_value",
    "parse_content_type",
    "request_class",
    "request_to_json",
]
