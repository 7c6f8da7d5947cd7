"""One mapping from what went wrong to the OTLP answer, for both transports.

Retryable (the exporter should send the same data again later): storage unavailable or
overloaded → HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo.  Permanent: bad data →
400 / INVALID_ARGUMENT, too large → 413, bad key → 401 / UNAUTHENTICATED, missing scope →
403 / PERMISSION_DENIED.  The Python HTTP exporter does not retry 429, so throttling is 503.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from agenttrail.proto.errors import WireError
from agenttrail.service.auth import AuthError
from agenttrail.storage import RetryableError

from .ingest import Forbidden


@dataclass(frozen=True)
class Failure:
    """The transport-neutral form of an error answer."""

    http_status: int
    grpc_code: grpc.StatusCode
    message: str
    retry_after: float | None = None

    @property
    def reason(self) -> str:
        """A short name for the failure, the ``outcome`` label of the receivers' metrics."""
        return _REASONS.get(self.http_status, "invalid")


_REASONS = {503: "retry_later", 401: "unauthenticated", 403: "forbidden", 413: "too_large",
            415: "unsupported", 500: "internal"}


def classify(exc: Exception) -> Failure:
    """Map an exception raised while ingesting to the answer the exporter must get."""
    if isinstance(exc, RetryableError):
        return Failure(503, grpc.StatusCode.UNAVAILABLE, str(exc), max(1.0, exc.retry_after))
    if isinstance(exc, WireError):
        return Failure(exc.http_status, exc.grpc_code, str(exc))
    if isinstance(exc, AuthError):
        return Failure(401, grpc.StatusCode.UNAUTHENTICATED, str(exc))
    if isinstance(exc, Forbidden):
        return Failure(403, grpc.StatusCode.PERMISSION_DENIED, str(exc))
    return Failure(500, grpc.StatusCode.INTERNAL, "internal error while ingesting")
