"""The process-wide SDK state and the public set-up calls: configure, stats, flush, shutdown."""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from . import _config as C
from ._export import ExportStats, Hub, SafeBatchProcessor, StatsCounter
from ._version import VERSION

logger = logging.getLogger("agenttrail.sdk")


@dataclass
class _State:
    provider: TracerProvider | None = None
    hub: Hub | None = None
    pipeline: SafeBatchProcessor | None = None
    settings: C.Settings | None = None
    override: TracerProvider | None = None  # set by agenttrail.sdk.testing while capturing


_state = _State()
_tracers: "weakref.WeakKeyDictionary[TracerProvider, trace.Tracer]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()
instrumentation_errors = StatsCounter()


class Telemetry:
    """What :func:`configure` set up: the provider, the settings, and the pipeline's counters."""

    def __init__(self, provider: TracerProvider | None, settings: C.Settings | None,
                 pipeline: SafeBatchProcessor | None):
        self.provider = provider
        self.settings = settings
        self.pipeline = pipeline

    def stats(self) -> ExportStats:
        """Counters of this pipeline (see :class:`ExportStats`)."""
        return _snapshot(self.pipeline)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is queued; True if everything queued was handed over within ``timeout`` s."""
        return self.pipeline.force_flush(int(timeout * 1000)) if self.pipeline else True

    def __repr__(self) -> str:
        return f"Telemetry({self.settings!r})"


def configure(endpoint: str | None = None, project: str | None = None, api_key: str | None = None,
              protocol: str | None = None, service_name: str | None = None,
              capture_content: bool | None = None, *, headers: dict | None = None,
              timeout: float = 10.0, max_queue_size: int = 2048, max_export_batch_size: int = 512,
              schedule_delay_millis: float = 1000, shutdown_timeout: float = 5.0,
              resource_attributes: dict | None = None, tracer_provider: TracerProvider | None = None,
              exporter: SpanExporter | None = None, set_global: bool = True,
              max_value_chars: int = 16_384) -> Telemetry:
    """Send this process's traces to agenttrail (or any OTLP endpoint).

    If the application already set an SDK ``TracerProvider``, agenttrail adds one processor
    to it and leaves its other processors alone; otherwise it creates a provider (global when
    ``set_global``).  Calling ``configure`` again replaces the previous agenttrail pipeline.

    ``project`` travels as the ``x-agenttrail-project`` header (and resource attribute
    ``agenttrail.project`` when agenttrail creates the provider), ``api_key`` as ``x-api-key``.
    ``protocol`` is ``"grpc"`` (port 4317) or ``"http"`` (port 4318, ``/v1/traces``).
    ``capture_content`` keeps tool arguments/results and messages; off by default.
    ``exporter`` replaces the OTLP exporter (e.g. a ConsoleSpanExporter) but keeps the
    bounded, counted queue.  Never blocks on the network: export happens in the background.
    """
    if C.sdk_disabled():
        logger.info("agenttrail: OTEL_SDK_DISABLED=true, tracing stays off")
        return Telemetry(None, None, None)
    if timeout <= 0 or shutdown_timeout < 0:
        raise ValueError("timeout must be > 0 and shutdown_timeout >= 0")
    if max_value_chars < 64:
        raise ValueError("max_value_chars must be at least 64")
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise ValueError("tracer_provider must be an opentelemetry.sdk.trace.TracerProvider")
    project = project or C._env("AGENTTRAIL_PROJECT")
    api_key = api_key or C._env("AGENTTRAIL_API_KEY")
    proto = C.resolve_protocol(protocol)
    settings = C.Settings(
        endpoint=C.resolve_endpoint(endpoint, proto),
        protocol=proto,
        project=project,
        service_name=service_name,
        capture_content=C.resolve_capture(capture_content),
        timeout=float(timeout),
        headers=C.resolve_headers(headers, project, api_key),
        max_value_chars=int(max_value_chars),
    )
    pipeline = C.new_pipeline(
        exporter if exporter is not None else C.build_exporter(settings),
        max_queue_size=max_queue_size, max_export_batch_size=max_export_batch_size,
        schedule_delay_millis=schedule_delay_millis, shutdown_timeout=shutdown_timeout,
    )
    with _lock:
        provider = C.choose_provider(tracer_provider, project, service_name, resource_attributes, set_global)
        hub = C.hub_for(provider)
        replaced = [p for p in {id(p): p for p in (hub.pipeline, _state.pipeline) if p is not None}.values()]
        if _state.hub is not None and _state.hub is not hub and _state.hub.pipeline is _state.pipeline:
            _state.hub.pipeline = None  # the previous configure used another provider
        hub.pipeline = pipeline
        _state.provider, _state.hub, _state.pipeline, _state.settings = provider, hub, pipeline, settings
    for previous in replaced:
        previous.shutdown()
    return Telemetry(provider, settings, pipeline)


def settings() -> C.Settings | None:
    """The settings of the last :func:`configure`, or None."""
    return _state.settings


def capture_content() -> bool:
    """Whether content (arguments, results, messages) is recorded."""
    return bool(_state.settings and _state.settings.capture_content)


def max_value_chars() -> int:
    """The longest attribute value the SDK writes."""
    return _state.settings.max_value_chars if _state.settings else 16_384


def tracer() -> trace.Tracer:
    """The tracer agenttrail's spans come from: a test capture, the configured provider, or the global one."""
    provider = _state.override or _state.provider
    if provider is None:
        return trace.get_tracer("agenttrail.sdk", VERSION)
    # get_tracer builds a new Tracer each call (a third of a span's cost): keep one per provider.
    cached = _tracers.get(provider)
    if cached is None:
        cached = _tracers[provider] = provider.get_tracer("agenttrail.sdk", VERSION)
    return cached


def _snapshot(pipeline: SafeBatchProcessor | None) -> ExportStats:
    base = pipeline.stats.snapshot() if pipeline else ExportStats()
    errors = instrumentation_errors.snapshot()
    return ExportStats(**{**base.__dict__, "instrumentation_errors": errors.instrumentation_errors})


def stats() -> ExportStats:
    """Counters of the current pipeline: exported, failed, dropped, queued spans, and errors
    the SDK swallowed so they would not reach the agent."""
    return _snapshot(_state.pipeline)


def flush(timeout: float = 5.0) -> bool:
    """Export what is queued now; waits at most ``timeout`` seconds, whatever the server does."""
    pipeline = _state.pipeline
    return pipeline.force_flush(int(timeout * 1000)) if pipeline else True


def shutdown() -> None:
    """Flush (bounded by ``shutdown_timeout``) and stop agenttrail's pipeline; the provider stays.

    The stopped pipeline stays attached so spans that end later are counted as dropped;
    :func:`stats` keeps reporting it until the next :func:`configure`.
    """
    pipeline = _state.pipeline
    if pipeline is not None:
        pipeline.shutdown()
