"""The base of every agenttrail span helper: a context manager (sync and async) and decorator.

A scope starts its span on enter, makes it current, ends it on exit and records an exception
that passes through (status ERROR, ``error.type``, an ``exception`` event) before letting it
propagate — the agent's own exceptions are its business.  Failures of the SDK itself are
swallowed and counted in ``stats().instrumentation_errors``: they never reach the agent.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Status, StatusCode

from . import _attributes as A
from . import _setup

logger = logging.getLogger("agenttrail.sdk")


def guarded(method: Callable) -> Callable:
    """Run ``method``; if the SDK fails inside it, count and log instead of raising."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            _setup.instrumentation_errors.add(instrumentation_errors=1)
            _setup.instrumentation_errors.error(f"{method.__qualname__}: {type(exc).__name__}: {exc}")
            logger.debug("agenttrail: %s failed", method.__qualname__, exc_info=True)
            return None

    return wrapper


def exception_type(exc: BaseException) -> str:
    """The exception's fully qualified class name, as semconv ``error.type`` asks."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


class SpanScope:
    """One span's lifetime.  Subclasses define ``_span_name``, ``_attributes`` and ``_parent``."""

    def __init__(self) -> None:
        self.span: trace.Span = INVALID_SPAN
        self._token = None

    # -- what subclasses describe -------------------------------------------------------
    def _span_name(self) -> str:
        raise NotImplementedError

    def _attributes(self) -> dict:
        return {}

    def _parent(self):
        """The context to start under (None = the current one)."""
        return None

    def _clone(self) -> "SpanScope":
        """A fresh, unstarted scope with the same arguments (decorators start one per call)."""
        raise NotImplementedError

    def _on_enter(self) -> None:
        pass

    def _on_exit(self) -> None:
        pass

    # -- lifetime -------------------------------------------------------------------------
    def __enter__(self):
        self._start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._finish(exc)
        return False  # never swallow the agent's exception

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)

    @guarded
    def _start(self) -> None:
        span = _setup.tracer().start_span(
            self._span_name(), context=self._parent(), attributes=self._attributes()
        )
        self.span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._on_enter()

    def _finish(self, exc: BaseException | None) -> None:
        try:
            if exc is not None:
                self.record_exception(exc)
            self._on_exit()
        finally:
            self._end()

    @guarded
    def _end(self) -> None:
        token, self._token = self._token, None
        try:
            self.span.end()
        finally:
            if token is not None:
                otel_context.detach(token)

    # -- shared recording helpers ---------------------------------------------------------
    @property
    def is_recording(self) -> bool:
        """False when tracing is not configured (spans are no-ops)."""
        return self.span.is_recording()

    @guarded
    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (non-scalar values are stored as JSON)."""
        if value is not None:
            self.span.set_attribute(A.text(key, 256), A.scalar(value, _setup.max_value_chars()))

    @guarded
    def set_attributes(self, attributes: dict) -> None:
        """Set several attributes at once."""
        self.span.set_attributes(A.clean_attributes(attributes, _setup.max_value_chars()))

    @guarded
    def record_exception(self, exc: BaseException) -> None:
        """Mark this span failed by ``exc`` without raising it."""
        self.span.record_exception(exc)
        self.span.set_attribute(A.ERROR_TYPE, exception_type(exc))
        self.span.set_status(Status(StatusCode.ERROR, A.text(f"{type(exc).__name__}: {A.text(exc, 1000)}", 1024)))

    @guarded
    def set_error(self, error_type: str, message: str | None = None) -> None:
        """Mark this span failed without an exception (e.g. a tool answered HTTP 500)."""
        self.span.set_attribute(A.ERROR_TYPE, A.text(error_type, 256))
        self.span.set_status(Status(StatusCode.ERROR, A.text(message or error_type, 1024)))

    # -- decorator ------------------------------------------------------------------------
    def __call__(self, func: Callable) -> Callable:
        """Use as a decorator: each call of ``func`` runs inside a new span like this one."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                async with self._clone():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self._clone():
                return func(*args, **kwargs)

        return wrapper
