"""OTLP/gRPC receiver: ``TraceService/Export`` (plus metrics and logs) on port 4317.

Runs on grpc.aio in the service's event loop.  ``TraceService/Export`` takes the request as
raw bytes (no deserializer): they go to the mapping workers as they came, so the server
process neither parses nor re-encodes the message, and a malformed body is an
INVALID_ARGUMENT naming the bad field, as over HTTP.  Backpressure and storage outages answer
UNAVAILABLE with a RetryInfo trailer (``google.rpc.retryinfo-bin``, which the OpenTelemetry
exporters read, and the standard ``grpc-status-details-bin``), so clients back off and retry.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from .errors import classify
from .ingest import TraceIngestor

log = logging.getLogger(__name__)


def _metadata(context) -> dict[str, str]:
    return {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


async def _abort(context, exc: Exception):
    failure = classify(exc)
    trailers = ()
    if failure.retry_after:
        seconds = int(failure.retry_after)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((failure.retry_after - seconds) * 1e9))
        )
        status = status_pb2.Status(code=failure.grpc_code.value[0], message=failure.message)
        status.details.add().Pack(retry)
        trailers = (
            ("google.rpc.retryinfo-bin", retry.SerializeToString()),
            ("grpc-status-details-bin", status.SerializeToString()),
        )
    if failure.grpc_code == grpc.StatusCode.INTERNAL:
        log.error("OTLP/gRPC export failed", exc_info=exc)
    await context.abort(failure.grpc_code, failure.message, trailing_metadata=trailers)


_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class TraceService:
    """``opentelemetry.proto.collector.trace.v1.TraceService``; ``Export`` gets encoded bytes."""

    def __init__(self, ingestor: TraceIngestor, keyring):
        self.ingestor = ingestor
        self.keyring = keyring

    async def Export(self, request: bytes, context):  # noqa: N802 (gRPC method name)
        try:
            headers = _metadata(context)
            principal = self.keyring.authenticate(headers.get("x-api-key"), headers.get("authorization"))
            with self.ingestor.budget.hold(len(request)):
                outcome = await self.ingestor.export(request, principal, headers.get("x-agenttrail-project"),
                                                     encoding="protobuf")
        except Exception as exc:
            self.ingestor.counters.answered("grpc", classify(exc).reason)
            await _abort(context, exc)
        self.ingestor.counters.answered("grpc", "ok")
        response = trace_service_pb2.ExportTraceServiceResponse()
        if outcome.rejected or outcome.error_message:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.error_message
        return response


class _AcceptAndDiscard:
    """Metrics and logs: authenticated, answered with success, not stored (see README)."""

    def __init__(self, keyring, response_type):
        self.keyring = keyring
        self.response_type = response_type

    async def Export(self, request, context):  # noqa: N802
        try:
            headers = _metadata(context)
            self.keyring.authenticate(headers.get("x-api-key"), headers.get("authorization"))
        except Exception as exc:
            await _abort(context, exc)
        return self.response_type()


class MetricsService(_AcceptAndDiscard, metrics_service_pb2_grpc.MetricsServiceServicer):
    """``MetricsService``: accepted and discarded."""

    def __init__(self, keyring):
        super().__init__(keyring, metrics_service_pb2.ExportMetricsServiceResponse)


class LogsService(_AcceptAndDiscard, logs_service_pb2_grpc.LogsServiceServicer):
    """``LogsService``: accepted and discarded."""

    def __init__(self, keyring):
        super().__init__(keyring, logs_service_pb2.ExportLogsServiceResponse)


def create_grpc_server(ingestor: TraceIngestor, keyring, max_request_bytes: int) -> grpc.aio.Server:
    """A grpc.aio server with the three OTLP services registered (not yet bound or started)."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ])
    export = grpc.unary_unary_rpc_method_handler(
        TraceService(ingestor, keyring).Export, request_deserializer=None,  # None: the raw bytes
        response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_TRACE_SERVICE, {"Export": export}),))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(keyring), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(keyring), server)
    return server
