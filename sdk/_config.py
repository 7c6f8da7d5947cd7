"""``configure()``: point OpenTelemetry at an agenttrail server (or any OTLP endpoint).

Each setting comes from, highest first: the argument → its environment variable → the
default.  Variables: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` or
``http/protobuf``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME`` (through the
resource), ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, ``OTEL_SDK_DISABLED``,
``AGENTTRAIL_PROJECT`` and ``AGENTTRAIL_API_KEY``.

A bad argument raises ``ValueError`` at start-up; a bad environment value only logs a warning
and falls back to the default, because a deployment typo must not stop the agent.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass, field
from urllib.parse import urlparse

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.re import parse_env_headers

from . import _attributes as A
from ._export import Hub, SafeBatchProcessor

logger = logging.getLogger("agenttrail.sdk")

PROTOCOLS = {"grpc": "grpc", "http": "http", "http/protobuf": "http"}
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http": "http://localhost:4318"}
PROJECT_HEADER = "x-agenttrail-project"
API_KEY_HEADER = "x-api-key"
_TRUTHY = {"1", "true", "yes", "on", "span_only", "span_and_event"}

# One Hub per provider, so a second configure() swaps the pipeline instead of adding one.
_hubs: "weakref.WeakKeyDictionary[TracerProvider, Hub]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one :func:`configure` call (the API key is kept out of repr)."""

    endpoint: str
    protocol: str
    project: str | None
    service_name: str | None
    capture_content: bool
    timeout: float
    headers: dict = field(repr=False)
    max_value_chars: int = A.DEFAULT_MAX_VALUE_CHARS


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def resolve_protocol(protocol: str | None) -> str:
    """``grpc`` or ``http``: the argument, else the OTLP protocol variables, else ``grpc``."""
    if protocol is not None:
        if protocol.lower() not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, not {protocol!r}")
        return PROTOCOLS[protocol.lower()]
    value = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if value is None:
        return "grpc"
    if value.lower() not in PROTOCOLS:
        logger.warning("agenttrail: OTEL_EXPORTER_OTLP_PROTOCOL=%r is not supported (grpc or http/protobuf); using grpc", value)
        return "grpc"
    return PROTOCOLS[value.lower()]


def resolve_endpoint(endpoint: str | None, protocol: str) -> str:
    """The URL the exporter sends to; for HTTP a bare base URL gets ``/v1/traces`` appended."""
    signal_specific = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") if endpoint is None else None
    url = endpoint or signal_specific or _env("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINTS[protocol]
    if "://" not in url:
        url = "http://" + url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"endpoint must be an http(s) URL with a host, not {url!r}")
    if protocol == "http" and not signal_specific and parsed.path in ("", "/"):
        url = url.rstrip("/") + "/v1/traces"
    return url


def resolve_headers(headers: dict | None, project: str | None, api_key: str | None) -> dict:
    """Env headers, then ``headers``, then the project and key headers; keys lower-cased (gRPC needs it)."""
    merged: dict[str, str] = {}
    raw = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    if raw:
        merged.update({k.lower(): v for k, v in parse_env_headers(raw, liberal=True).items()})
    for key, value in (headers or {}).items():
        merged[str(key).lower()] = str(value)
    if project:
        merged[PROJECT_HEADER] = project
    if api_key:
        merged[API_KEY_HEADER] = api_key
    return merged


def resolve_capture(capture_content: bool | None) -> bool:
    """Content capture: the argument, else the GenAI instrumentation variable, else off."""
    if capture_content is not None:
        return bool(capture_content)
    value = _env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    return bool(value) and value.lower() in _TRUTHY


def build_exporter(settings: Settings) -> SpanExporter:
    """The standard OTLP exporter for ``settings.protocol``."""
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=settings.endpoint, headers=settings.headers, timeout=settings.timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=settings.endpoint, headers=settings.headers, timeout=settings.timeout)


def choose_provider(tracer_provider, project: str | None, service_name: str | None,
                    resource_attributes: dict | None, set_global: bool) -> TracerProvider:
    """``tracer_provider`` if given; else the application's global SDK provider if it has one;
    else a new provider, made global when ``set_global`` (with ``set_global=False`` agenttrail
    keeps a provider of its own and never touches the global one)."""
    if tracer_provider is not None:
        if not isinstance(tracer_provider, TracerProvider):
            raise ValueError("tracer_provider must be an opentelemetry.sdk.trace.TracerProvider")
        return tracer_provider
    current = trace.get_tracer_provider()
    if set_global and isinstance(current, TracerProvider):
        if service_name:
            logger.info("agenttrail: adding to the application's TracerProvider; its resource keeps its service.name")
        return current
    attributes = dict(A.clean_attributes(resource_attributes or {}))
    if service_name:
        attributes["service.name"] = service_name
    if project:
        attributes[A.PROJECT] = project
    provider = TracerProvider(resource=Resource.create(attributes))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def hub_for(provider: TracerProvider) -> Hub:
    """agenttrail's processor on ``provider``, added on first use."""
    hub = _hubs.get(provider)
    if hub is None:
        hub = Hub()
        provider.add_span_processor(hub)
        _hubs[provider] = hub
    return hub


def sdk_disabled() -> bool:
    """True when ``OTEL_SDK_DISABLED`` asks for no telemetry at all."""
    return (_env("OTEL_SDK_DISABLED") or "").lower() == "true"


def new_pipeline(exporter: SpanExporter, *, max_queue_size: int, max_export_batch_size: int,
                 schedule_delay_millis: float, shutdown_timeout: float) -> SafeBatchProcessor:
    """The bounded, counted batch pipeline around ``exporter``."""
    return SafeBatchProcessor(
        exporter,
        max_queue_size=max_queue_size,
        max_export_batch_size=max_export_batch_size,
        schedule_delay_millis=schedule_delay_millis,
        shutdown_timeout_millis=shutdown_timeout * 1000,
    )
