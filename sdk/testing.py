"""Capture spans in memory for your own unit tests — no server, no network.

    from agenttrail.sdk import run
    from agenttrail.sdk.testing import capture_spans

    def test_agent_looks_up_the_order():
        with capture_spans() as spans:
            my_agent("where is order 42?")
        assert spans.tool_names() == ["order_lookup", "shipping_status"]

With pytest, add ``pytest_plugins = ["agenttrail.sdk.testing"]`` to your ``conftest.py`` and
use the ``agenttrail_spans`` fixture.  ``capture_content=True`` records tool arguments and
results while capturing, so tests can assert on them.

When the process has an SDK TracerProvider (yours, or one ``configure()`` made), capturing
taps it, so spans of other instrumentations (frameworks) are captured too and exporting goes
on.  Otherwise a private provider is used for agenttrail's own spans while capturing.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import _attributes as A
from . import _config, _setup


class CapturedSpans:
    """The spans finished while capturing, in the order they ended, with lookup helpers."""

    def __init__(self, exporter: InMemorySpanExporter):
        self._exporter = exporter

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every finished span."""
        return list(self._exporter.get_finished_spans())

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def clear(self) -> None:
        """Forget what was captured so far."""
        self._exporter.clear()

    def by_operation(self, operation: str) -> list[ReadableSpan]:
        """Spans whose ``gen_ai.operation.name`` is ``operation`` (invoke_agent, execute_tool, chat…), by start time."""
        found = [s for s in self.spans if (s.attributes or {}).get(A.OPERATION) == operation]
        return sorted(found, key=lambda s: s.start_time or 0)

    def runs(self) -> list[ReadableSpan]:
        """The ``invoke_agent`` spans."""
        return self.by_operation("invoke_agent")

    def tool_calls(self) -> list[ReadableSpan]:
        """The ``execute_tool`` spans, by start time."""
        return self.by_operation("execute_tool")

    def tool_names(self) -> list[str]:
        """``gen_ai.tool.name`` of each tool call, in the order the calls started."""
        return [s.attributes[A.TOOL_NAME] for s in self.tool_calls()]

    def named(self, name: str) -> list[ReadableSpan]:
        """Spans with this span name."""
        return [s for s in self.spans if s.name == name]

    def in_run(self, run_id: str) -> list[ReadableSpan]:
        """Spans of the run (trace) ``run_id``."""
        return [s for s in self.spans if format(s.context.trace_id, "032x") == run_id]

    def events(self, name: str) -> list[dict]:
        """Attributes of every span event called ``name`` (e.g. ``agenttrail.failure``)."""
        return [dict(e.attributes or {}) for s in self.spans for e in s.events if e.name == name]

    def as_dicts(self) -> list[dict]:
        """Plain dicts (name, ids, status, attributes, events) — handy for snapshot-style asserts."""
        return [json.loads(s.to_json()) for s in self.spans]


@contextlib.contextmanager
def capture_spans(capture_content: bool | None = None) -> Iterator[CapturedSpans]:
    """Record every span finished inside the block; see the module docstring."""
    exporter = InMemorySpanExporter()
    tap = SimpleSpanProcessor(exporter)
    provider = _setup._state.provider or trace.get_tracer_provider()
    private = not isinstance(provider, TracerProvider)
    if private:
        provider = TracerProvider()
        previous_override, _setup._state.override = _setup._state.override, provider
        provider.add_span_processor(tap)
    else:
        hub = _config.hub_for(provider)
        hub.taps.append(tap)
    saved_settings = _setup._state.settings
    if capture_content is not None:
        _setup._state.settings = _capture_settings(saved_settings, capture_content)
    try:
        yield CapturedSpans(exporter)
    finally:
        _setup._state.settings = saved_settings
        if private:
            _setup._state.override = previous_override
            provider.shutdown()
        else:
            hub.taps.remove(tap)


def _capture_settings(settings: _config.Settings | None, capture: bool) -> _config.Settings:
    if settings is not None:
        return replace(settings, capture_content=capture)
    return _config.Settings(endpoint="", protocol="memory", project=None, service_name=None,
                            capture_content=capture, timeout=0.0, headers={})


try:  # the fixture is offered only where pytest is installed
    import pytest
except ImportError:  # pragma: no cover - pytest missing
    pytest = None

if pytest is not None:

    @pytest.fixture
    def agenttrail_spans():
        """The spans finished during the test (a :class:`CapturedSpans`)."""
        with capture_spans() as spans:
            yield spans


__all__ = ["CapturedSpans", "capture_spans", "agenttrail_spans"]
