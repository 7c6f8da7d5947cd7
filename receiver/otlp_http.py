"""OTLP/HTTP receiver: ``POST /v1/traces`` (and ``/v1/metrics``, ``/v1/logs``) on port 4318.

Protobuf and JSON share the port, routed on Content-Type; gzip and deflate bodies are
decompressed with the size limit applied to the decompressed bytes.  Answers use the
request's encoding: an ``ExportTraceServiceResponse`` on success (with ``partial_success``
when some spans were refused), a ``google.rpc.Status`` on error.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agenttrail.proto import compression, otlp
from agenttrail.proto.errors import PayloadTooLarge, WireError

from .errors import classify
from .ingest import TraceIngestor

log = logging.getLogger(__name__)

SIGNALS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes of body (compressed bodies are capped again after inflating)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def create_http_receiver(ingestor: TraceIngestor, keyring, max_request_bytes: int) -> Starlette:
    """The ASGI app serving OTLP/HTTP."""

    async def _answer(signal: str, encoding: str, body: bytes, principal, request: Request) -> bytes:
        if signal != "traces":
            # agenttrail stores traces only; metrics and logs are checked, answered, not kept (README).
            otlp.decode_export(body, encoding, signal)
            return otlp.encode_export_response(signal, encoding)
        outcome = await ingestor.export(
            body, principal, request.headers.get("x-agenttrail-project"), encoding=encoding
        )
        return otlp.encode_export_response(
            signal, encoding, rejected=outcome.rejected, error_message=outcome.error_message
        )

    async def export(request: Request) -> Response:
        signal = SIGNALS[request.url.path]
        encoding = "protobuf"
        try:
            encoding = otlp.parse_content_type(request.headers.get("content-type"))
            principal = keyring.authenticate(
                request.headers.get("x-api-key"), request.headers.get("authorization")
            )
            declared = request.headers.get("content-length", "")
            reserve = min(int(declared), max_request_bytes) if declared.isdigit() else max_request_bytes
            with ingestor.budget.hold(reserve):
                raw = await _read_body(request, max_request_bytes)
                body = compression.decompress(raw, request.headers.get("content-encoding"), max_request_bytes)
                with ingestor.budget.hold(len(body) if body is not raw else 0):
                    payload = await _answer(signal, encoding, body, principal, request)
            if signal == "traces":
                ingestor.counters.answered("http", "ok")
            return Response(payload, 200, media_type=otlp.content_type_for(encoding))
        except Exception as exc:  # every failure becomes a well-formed OTLP error answer
            failure = classify(exc)
            if signal == "traces":
                ingestor.counters.answered("http", failure.reason)
            if failure.http_status >= 500 and not isinstance(exc, WireError):
                log.log(logging.WARNING if failure.retry_after else logging.ERROR,
                        "OTLP/HTTP %s: %s", signal, exc, exc_info=failure.http_status == 500)
            headers = {}
            if failure.retry_after:
                headers["Retry-After"] = str(int(round(failure.retry_after)))
            if failure.http_status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            if getattr(exc, "accept_encoding", None):
                headers["Accept-Encoding"] = exc.accept_encoding
            body = otlp.encode_status(failure.grpc_code.value[0], failure.message, encoding,
                                      retry_after=failure.retry_after)
            return Response(body, failure.http_status, headers=headers,
                            media_type=otlp.content_type_for(encoding))

    # Starlette answers other methods with 405 and an Allow header.
    return Starlette(routes=[Route(path, export, methods=["POST"]) for path in SIGNALS])
