"""Errors of the OTLP wire layer, each carrying the HTTP status and gRPC code to answer with.

Every error raised by :mod:`agenttrail.proto` is a :class:`WireError`; all of them are
*permanent*: the same bytes will fail the same way, so clients must not retry them.

* :class:`MalformedPayload` — 400 / INVALID_ARGUMENT: bytes that do not decode to the request.
* :class:`PayloadTooLarge` — 413 / RESOURCE_EXHAUSTED (no RetryInfo): too big after decompression.
* :class:`UnsupportedMediaType` — 415 / INVALID_ARGUMENT: Content-Type not OTLP protobuf or JSON.
* :class:`UnsupportedEncoding` — 415 / UNIMPLEMENTED: Content-Encoding not identity, gzip, deflate.

Choices made where sources differ:

* Too large: the OTLP spec lets RESOURCE_EXHAUSTED be retried only when the status carries
  RetryInfo, so we send none: a body that is too big stays too big.  grpcio answers its own
  receive-limit overflow with RESOURCE_EXHAUSTED too, so clients see one code for both.
  The Collector answers 400 over HTTP; 413 says more and is equally non-retryable.
* Unknown Content-Encoding: the Collector answers 400 ("unsupported Content-Encoding");
  RFC 9110 section 12.5.3 says 415 plus an ``Accept-Encoding`` header naming what is
  accepted, which :attr:`UnsupportedEncoding.accept_encoding` supplies.  Neither is retried
  by the OpenTelemetry exporters.  gRPC's own rule for an unknown ``grpc-encoding`` is
  UNIMPLEMENTED.
"""

from __future__ import annotations

import grpc

__all__ = [
    "MalformedPayload",
    "PayloadTooLarge",
    "UnsupportedEncoding",
    "UnsupportedMediaType",
    "WireError",
]


class WireError(Exception):
    """A request the wire layer refuses; ``message`` says precisely what is wrong."""

    http_status: int = 400
    grpc_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    retryable: bool = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def grpc_code_value(self) -> int:
        """The numeric gRPC code, as ``google.rpc.Status.code`` wants it."""
        return self.grpc_code.value[0]


class MalformedPayload(WireError):
    """The body is not a valid OTLP request in the declared encoding."""


class PayloadTooLarge(WireError):
    """The body, once decompressed, is larger than the configured limit."""

    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnsupportedMediaType(WireError):
    """The Content-Type is neither OTLP protobuf nor OTLP JSON."""

    http_status = 415


class UnsupportedEncoding(WireError):
    """The Content-Encoding names a compression this receiver does not decode."""

    http_status = 415
    grpc_code = grpc.StatusCode.UNIMPLEMENTED
    #: Value for the ``Accept-Encoding`` response header (RFC 9110 section 12.5.3).
    accept_encoding = "gzip, deflate, identity"
