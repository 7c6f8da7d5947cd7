"""The export pipeline that can never hurt the agent: a bounded queue, counted losses.

``SafeBatchProcessor`` wraps the standard ``BatchSpanProcessor``.  It keeps its own count of
spans waiting to be exported and refuses (and counts) a span when that count reaches
``max_queue_size`` — the standard processor would drop silently, with only a log line.
``GuardedExporter`` wraps the OTLP exporter: whatever it raises or returns is turned into
counts, never an exception.  ``Hub`` is the single processor agenttrail adds to a
TracerProvider; calling :func:`configure` again swaps the pipeline behind it instead of
stacking a second exporter, and :mod:`agenttrail.sdk.testing` taps it to capture spans.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

logger = logging.getLogger("agenttrail.sdk")


@dataclass(frozen=True)
class ExportStats:
    """What happened to the spans handed to agenttrail's export pipeline.

    ``spans_ended == spans_exported + spans_failed + spans_dropped + spans_queued`` once no
    export is in progress.  ``spans_dropped`` are spans refused because the queue was full
    (or the pipeline was shut down); ``spans_failed`` reached the exporter but the server did
    not accept them (unreachable, too slow, refused).
    """

    spans_ended: int = 0
    spans_queued: int = 0
    spans_exported: int = 0
    spans_failed: int = 0
    spans_dropped: int = 0
    export_calls: int = 0
    failed_exports: int = 0
    instrumentation_errors: int = 0
    last_error: str = ""

    @property
    def spans_lost(self) -> int:
        """Spans that will never reach the server: failed plus dropped."""
        return self.spans_failed + self.spans_dropped


class StatsCounter:
    """Thread-safe counters behind :class:`ExportStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {name: 0 for name in ExportStats.__dataclass_fields__ if name != "last_error"}
        self._last_error = ""
        self._warned_drop = False

    def add(self, **deltas: int) -> None:
        """Add to named counters."""
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def try_enqueue(self, limit: int) -> bool:
        """Count one ended span; reserve a queue slot for it if fewer than ``limit`` are waiting."""
        with self._lock:
            self._values["spans_ended"] += 1
            if self._values["spans_queued"] >= limit:
                self._values["spans_dropped"] += 1
                first = not self._warned_drop
                self._warned_drop = True
            else:
                self._values["spans_queued"] += 1
                return True
        if first:
            logger.warning("agenttrail: export queue full (%d spans), dropping spans; see agenttrail.sdk.stats()", limit)
        return False

    def error(self, message: str) -> None:
        """Remember the most recent export or instrumentation error."""
        with self._lock:
            self._last_error = message[:500]

    def snapshot(self) -> ExportStats:
        """The counters as an immutable value."""
        with self._lock:
            return ExportStats(last_error=self._last_error, **self._values)


class GuardedExporter(SpanExporter):
    """Delegates to ``inner`` and turns every outcome into counts; never raises."""

    def __init__(self, inner: SpanExporter, stats: StatsCounter):
        self.inner = inner
        self.stats = stats

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        count = len(spans)
        # The batch left the queue: its memory is now the exporter's, bounded by the batch size.
        self.stats.add(spans_queued=-count, export_calls=1)
        try:
            result = self.inner.export(spans)
            problem = f"export of {count} spans failed (the OTLP exporter logged why)"
        except Exception as exc:  # an exporter bug must not kill the worker thread's counting
            result, problem = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        if result is SpanExportResult.SUCCESS:
            self.stats.add(spans_exported=count)
        else:
            self.stats.add(spans_failed=count, failed_exports=1)
            self.stats.error(problem)
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception as exc:
            self.stats.error(f"shutdown: {type(exc).__name__}: {exc}")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            return False


class SafeBatchProcessor(SpanProcessor):
    """A BatchSpanProcessor whose queue bound is enforced and whose losses are counted."""

    def __init__(self, exporter: SpanExporter, *, max_queue_size: int = 2048,
                 max_export_batch_size: int = 512, schedule_delay_millis: float = 1000,
                 shutdown_timeout_millis: float = 5000, stats: StatsCounter | None = None):
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be at least 1")
        self.stats = stats or StatsCounter()
        self.max_queue_size = max_queue_size
        self.shutdown_timeout_millis = shutdown_timeout_millis
        self._closed = False
        self._flush: _BackgroundCall | None = None
        self._flush_lock = threading.Lock()
        self._exporter = GuardedExporter(exporter, self.stats)
        self._batch = BatchSpanProcessor(
            self._exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=min(max_export_batch_size, max_queue_size),
            schedule_delay_millis=schedule_delay_millis,
        )
        if hasattr(os, "register_at_fork"):
            # A forked child starts with an empty BatchSpanProcessor queue; its count must match.
            reset = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (reset() or (lambda: None))())

    def _after_fork(self) -> None:
        self.stats = StatsCounter()
        self._exporter.stats = self.stats

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        if self._closed:
            self.stats.add(spans_ended=1, spans_dropped=1)
            return
        if self.stats.try_enqueue(self.max_queue_size):
            self._batch.on_end(span)

    def shutdown(self) -> None:
        """Export what is queued, waiting at most ``shutdown_timeout_millis``; count the rest as dropped."""
        if self._closed:
            return
        self._closed = True
        # BatchSpanProcessor.shutdown waits up to 30 s per call; bound it, then stop the
        # exporter so an export still retrying against a dead server gives up.
        if not run_bounded(self._batch.shutdown, self.shutdown_timeout_millis / 1000, "agenttrail-shutdown"):
            self._exporter.shutdown()
        left = self.stats.snapshot().spans_queued
        if left > 0:
            self.stats.add(spans_queued=-left, spans_dropped=left)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued, giving up (without blocking the caller further) after the timeout.

        A flush still stuck on a slow server is joined rather than started again, so repeated
        calls never pile up threads.
        """
        with self._flush_lock:
            flush = self._flush
            if flush is None or flush.done.is_set():
                flush = self._flush = _BackgroundCall(self._batch.force_flush)
        return flush.wait(timeout_millis / 1000)


class Hub(SpanProcessor):
    """The one processor agenttrail adds to a provider: the export pipeline plus test taps.

    Every call into a delegate is guarded, so a failing delegate never reaches the code that
    ended the span.
    """

    def __init__(self) -> None:
        self.pipeline: SpanProcessor | None = None
        self.taps: list[SpanProcessor] = []

    def _delegates(self) -> list[SpanProcessor]:
        pipeline = self.pipeline
        return ([pipeline] if pipeline is not None else []) + list(self.taps)

    def on_start(self, span, parent_context=None) -> None:
        for delegate in self._delegates():
            try:
                delegate.on_start(span, parent_context=parent_context)
            except Exception as exc:
                logger.debug("agenttrail: span processor failed on_start: %r", exc)

    def on_end(self, span: ReadableSpan) -> None:
        for delegate in self._delegates():
            try:
                delegate.on_end(span)
            except Exception as exc:
                logger.debug("agenttrail: span processor failed on_end: %r", exc)

    def shutdown(self) -> None:
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        pipeline = self.pipeline
        return pipeline.force_flush(timeout_millis) if pipeline is not None else True


class _BackgroundCall:
    """``func()`` running in a daemon thread; ``wait`` says whether it finished well in time."""

    def __init__(self, func, name: str = "agenttrail-flush") -> None:
        self.done = threading.Event()
        self.ok = False
        self._func = func
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.ok = self._func() is not False
        except Exception as exc:
            logger.debug("agenttrail: background call failed: %r", exc)
        finally:
            self.done.set()

    def wait(self, timeout_seconds: float) -> bool:
        return self.done.wait(max(0.0, timeout_seconds)) and self.ok


def run_bounded(func, timeout_seconds: float, name: str = "agenttrail-call") -> bool:
    """Run ``func()`` in a daemon thread and wait at most ``timeout_seconds`` for it.

    The standard BatchSpanProcessor's ``force_flush`` and ``shutdown`` ignore or exceed their
    timeouts; against a dead or slow server they would block the agent for (queued batches ×
    export timeout).  Returns True when ``func`` finished in time without raising or
    returning False.
    """
    return _BackgroundCall(func, name).wait(timeout_seconds)
