"""Record spans with the real OpenTelemetry SDK and map them, for the mapping tests."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agenttrail.receiver.mapping import map_export_request


class Recorder:
    """A tracer whose finished spans become an ``ExportTraceServiceRequest``."""

    def __init__(self, resource: dict | None = None, max_attributes: int = 128):
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "svc", **(resource or {})}),
            span_limits=SpanLimits(max_span_attributes=max_attributes, max_event_attributes=max_attributes),
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("tests.scope", "1.2.3")

    def span(self, name: str, attributes: dict | None = None, **kwargs):
        """``start_as_current_span`` on the recording tracer."""
        return self.tracer.start_as_current_span(name, attributes=attributes, **kwargs)

    def request(self):
        """Everything finished so far, encoded as the OTLP exporters do."""
        return encode_spans(self.memory.get_finished_spans())


def rows(result) -> list[dict]:
    """The mapped steps as one dict per step."""
    columns = result.batch.columns
    return [{name: values[i] for name, values in columns.items()} for i in range(len(result.batch))]


def map_one(attributes: dict, name: str = "span", options=None, resource: dict | None = None,
            **kwargs) -> dict:
    """Record one span with ``attributes`` and return its mapped row."""
    recorder = Recorder(resource)
    with recorder.span(name, attributes, **kwargs):
        pass
    result = map_export_request(recorder.request(), options=options)
    assert result.rejected == 0, result.errors
    (row,) = rows(result)
    return row
