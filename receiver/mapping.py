"""OTLP spans → step rows: one pure function on the ingest hot path.

:func:`map_export_request` turns a decoded ``ExportTraceServiceRequest`` into a
:class:`~agenttrail.storage.StepBatch`.  One bad span never fails the request: it is counted
in ``rejected`` with a reason (OTLP partial success) and the other spans are mapped.

Identity: ``run_id`` = trace id (32 hex), ``step_id`` = span id (16 hex), ``parent_step_id``
= parent id or ''.  Rejected: trace id not 16 non-zero bytes, span id not 8 non-zero bytes,
parent id neither empty nor 8 bytes (8 zero bytes count as "no parent").

Project: the caller's ``project`` (API key / header) when given, else per resource
``agenttrail.project``, ``openinference.project.name``, ``service.name``, ``unknown_service``;
sanitised to ``[A-Za-z0-9._:@-]`` (others → ``_``) and at most 128 characters.

Time: a span without start time takes its end time; a span with neither is rejected, as is a
start before 2000-01-01 or more than a day ahead of this server's clock (a broken clock would
otherwise land in a far partition).  A missing or out-of-range end becomes the start; an end
before the start (clock skew) is kept but ``duration_ns`` is clamped to 0.

Bounds (``truncated = 1`` whenever one applies, or the SDK reports dropped attributes,
events or links): every attribute value, span name, status message and trace state is cut
to ``max_value_bytes`` UTF-8 bytes (keys, event and scope names to 1 KiB); at most
``max_attributes`` attributes are stored per span, event and link (all are read — up to 4x
that many — so usage beyond the cap still counts);
at most ``max_events`` events and ``max_links`` links (links with malformed ids are dropped).
Dropping message content by policy is not truncation.

Failure columns (``failure_category``, ``failure_type``, ``error_fingerprint``) come from
:func:`agenttrail.analysis.classify.classify_step` over the stored (bounded) values.

``span_kind`` is the OTel enum name without prefix (``INTERNAL``, ``CLIENT`` …; an unknown
value is ``UNSPECIFIED``).  Kind, model, tokens, cost and content rules are documented in
:mod:`.steps`, :mod:`.conventions` and :mod:`.content`.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from agenttrail.analysis.classify import NOT_FAILED, classify_step
from agenttrail.storage import STEP_COLUMN_NAMES, StepBatch

from .attributes import read_attributes, read_span_attributes, trim
from .content import CONTENT_EVENTS, EVENT_METADATA_KEYS, bound, content_keys
from .conventions import ENVIRONMENT_KEYS, PROJECT_KEYS
from .pricing import PriceTable
from .steps import SPAN_KINDS, STATUS_NAMES, StepFields

MAX_ERRORS = 5
PROJECT_MAX_CHARS = 128
_MIN_TIME_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
_MAX_AHEAD_NS = 86_400 * 10**9
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)
_PROJECT_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]+")
_NO_EVENTS, _NO_LINKS = ((), (), ()), ((), (), (), ())


def sanitize_project(raw: str) -> str:
    """A project id safe to store and show: unsafe characters → ``_``, bounded length."""
    cleaned = _PROJECT_UNSAFE.sub("_", raw.strip())[:PROJECT_MAX_CHARS]
    return cleaned or "unknown_service"


@dataclass(frozen=True)
class MappingOptions:
    """How spans are mapped: content capture, bounds, prices."""

    capture_content: bool = False
    capture_content_projects: frozenset[str] = frozenset()
    max_value_bytes: int = 16_384
    max_attributes: int = 256
    max_events: int = 128
    max_links: int = 128
    prices: PriceTable = field(default_factory=PriceTable.default)

    def __post_init__(self) -> None:
        for name in ("max_value_bytes", "max_attributes", "max_events", "max_links"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MappingOptions.{name} must be a positive integer, not {value!r}")
        if not isinstance(self.prices, PriceTable):
            raise ValueError(f"MappingOptions.prices must be a PriceTable, not {type(self.prices).__name__}")
        # Compared with sanitised project ids, so sanitised the same way.
        projects = frozenset(sanitize_project(p) for p in self.capture_content_projects)
        object.__setattr__(self, "capture_content_projects", projects)

    def captures(self, project: str) -> bool:
        """Whether message content is kept for ``project``."""
        return self.capture_content or project in self.capture_content_projects


@functools.cache
def default_options() -> MappingOptions:
    """The options of a server with no settings, built on first use: building the price table
    loads genai-prices' data (~14 MiB), which a mapping worker, handed its options, never needs."""
    return MappingOptions()


@dataclass
class MappingResult:
    """The mapped steps and what could not be mapped."""

    batch: StepBatch
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    unmapped_usage_keys: set[str] = field(default_factory=set)

    def keep_projects(self, allows: Callable[[str], bool]) -> None:
        """Refuse (as partial success) the spans of projects ``allows`` says no to."""
        projects = self.batch.columns["project_id"]
        keep = [i for i, p in enumerate(projects) if allows(p)]
        if len(keep) < len(self.batch):
            refused = len(self.batch) - len(keep)
            self.errors.append(f"{refused} spans belong to projects this API key may not write to")
            self.rejected += refused
            self.batch = self.batch.select(keep)

    def reject(self, reason: str) -> None:
        """Count one span as not stored; keep the first few reasons for the response."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(reason)


class _Resource:
    """What every span of one ResourceSpans shares, computed once."""

    __slots__ = ("project", "service", "attributes", "environment", "capture", "truncated")

    def __init__(self, resource, project: str | None, options: MappingOptions):
        attrs, cut = read_attributes(resource.attributes, options.max_value_bytes, options.max_attributes)
        if len(attrs) > options.max_attributes:
            attrs, cut = trim(attrs, options.max_attributes), True
        self.service = attrs.get("service.name") or "unknown_service"
        if project is None:
            named = next((attrs[k] for k in PROJECT_KEYS if attrs.get(k)), self.service)
            project = sanitize_project(named)
        self.project = project
        self.attributes = attrs
        self.environment = next((attrs[k] for k in ENVIRONMENT_KEYS if attrs.get(k)), "")
        self.capture = options.captures(project)
        self.truncated = cut


def map_export_request(request, *, project: str | None = None,
                       options: MappingOptions | None = None) -> MappingResult:
    """Map every span of ``request``; bad spans are counted in ``rejected``, never raised.

    ``options`` default to :func:`default_options`.
    """
    if options is None:
        options = default_options()
    result = MappingResult(StepBatch())
    fixed_project = sanitize_project(project) if project else None
    mapper = _SpanMapper(options, result)
    rows = []
    for resource_spans in request.resource_spans:
        resource = _Resource(resource_spans.resource, fixed_project, options)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = bound(scope.name, 1024)[0]
            scope_version = bound(scope.version, 1024)[0]
            for span in scope_spans.spans:
                row = mapper.map(span, resource, scope_name, scope_version)
                if row is not None:
                    rows.append(row)
    if rows:
        columns = result.batch.columns
        for name, values in zip(STEP_COLUMN_NAMES, zip(*rows)):
            columns[name].extend(values)
    return result


class _SpanMapper:
    """Maps one span at a time into a row tuple in ``STEP_COLUMN_NAMES`` order."""

    def __init__(self, options: MappingOptions, result: MappingResult):
        self.options = options
        self.result = result
        self.now = time.time_ns()
        self.fields = StepFields(options.prices, result.unmapped_usage_keys)

    def _reject(self, span, why: str) -> None:
        # ids are cut to their valid length: a hostile megabyte id must not become the message
        self.result.reject(f"span {span.span_id[:8].hex() or '<none>'} of trace "
                           f"{span.trace_id[:16].hex() or '<none>'}: {why}")

    def _times(self, span) -> tuple[int, int] | None:
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        latest = self.now + _MAX_AHEAD_NS
        if start == 0:
            start = end
        if start == 0:
            self._reject(span, "span has neither start nor end time")
            return None
        if not _MIN_TIME_NS <= start <= latest:
            self._reject(span, f"start time {start} ns is before 2000 or more than a day ahead")
            return None
        if not _MIN_TIME_NS <= end <= latest:
            end = start
        return start, end

    def map(self, span, resource: _Resource, scope_name: str, scope_version: str):
        """The row of ``span``, or None when it is rejected (the reason goes to the result)."""
        trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
        if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
            return self._reject(span, f"trace_id must be 16 non-zero bytes (got {len(trace_id)})")
        if len(span_id) != 8 or span_id == _ZERO_SPAN:
            return self._reject(span, f"span_id must be 8 non-zero bytes (got {len(span_id)})")
        if parent_id and len(parent_id) != 8:
            return self._reject(span, f"parent_span_id must be empty or 8 bytes (got {len(parent_id)})")
        times = self._times(span)
        if times is None:
            return None
        start, end = times
        opts = self.options
        max_bytes = opts.max_value_bytes
        capture = resource.capture
        attrs, truncated, plan = read_span_attributes(span.attributes, max_bytes, opts.max_attributes)
        events = span.events
        if events:
            events, exception_type, events_cut = self._events(events, capture, start)
        else:
            events, exception_type, events_cut = _NO_EVENTS, "", False
        status = span.status
        status_code = status.code
        (kind, operation, model, provider, tool_name, tool_call_id, tool_arguments, agent_name, session_id,
         user_id, environment, error_type, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
         reasoning_tokens, total_tokens, cost_usd, cost_source, finish_reasons, unmapped_usage,
         ) = self.fields.extract(attrs, plan, capture, exception_type, status_code, start)
        if len(attrs) > opts.max_attributes:
            attrs, truncated = trim(attrs, opts.max_attributes), True
        links = span.links
        links, links_cut = self._links(links) if links else (_NO_LINKS, False)
        name, status_message, trace_state = span.name, status.message, span.trace_state
        # A text of n characters has at most 4n UTF-8 bytes: nearly every one skips bound().
        if max(len(name), len(status_message), len(trace_state)) * 4 > max_bytes:
            name, name_cut = bound(name, max_bytes)
            status_message, message_cut = bound(status_message, max_bytes)
            trace_state, state_cut = bound(trace_state, max_bytes)
            truncated = truncated or name_cut or message_cut or state_cut
        if status_code != 2 and not events[1] and kind != "retrieval" and "content_filter" not in finish_reasons:
            failure = NOT_FAILED  # classify_step's own first test, without the call: most spans
        else:
            failure = classify_step(kind, status_code, status_message, attrs, events[1], events[2], finish_reasons)
        truncated = (truncated or events_cut or links_cut or resource.truncated or span.dropped_attributes_count
                     or span.dropped_events_count or span.dropped_links_count)  # the SDK cut some
        return (
            resource.project, trace_id.hex(), span_id.hex(),
            "" if not parent_id or parent_id == _ZERO_SPAN else parent_id.hex(),
            trace_state, name, kind, SPAN_KINDS.get(span.kind, "UNSPECIFIED"), operation,
            resource.service, scope_name, scope_version, agent_name, session_id, user_id,
            environment or resource.environment, tool_name, tool_call_id, tool_arguments,
            model, provider, STATUS_NAMES.get(status_code, "unset"), status_message,
            error_type, start, end, end - start if end > start else 0,
            input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
            reasoning_tokens, total_tokens, cost_usd, cost_source, finish_reasons,
            unmapped_usage, attrs, resource.attributes,
            events[0], events[1], events[2], links[0], links[1], links[2], links[3],
            1 if truncated else 0, *failure,
        )

    def _events(self, events, capture: bool, start: int):
        """(times, names, attribute maps), the first ``exception`` event's type, and whether cut."""
        opts = self.options
        cut = len(events) > opts.max_events
        times, names, maps, exception_type = [], [], [], ""
        for event in events[:opts.max_events] if cut else events:
            name, name_cut = bound(event.name, 1024)
            attrs, attrs_cut = read_attributes(event.attributes, opts.max_value_bytes, opts.max_attributes)
            if name == "exception" and not exception_type:
                exception_type = attrs.get("exception.type", "")
            if not capture:
                if name in CONTENT_EVENTS:
                    attrs = {k: v for k, v in attrs.items() if k in EVENT_METADATA_KEYS}
                else:
                    for key in content_keys(attrs):
                        del attrs[key]
            if len(attrs) > opts.max_attributes:
                attrs, attrs_cut = trim(attrs, opts.max_attributes), True
            when = event.time_unix_nano
            times.append(when if _MIN_TIME_NS <= when <= self.now + _MAX_AHEAD_NS else start)
            names.append(name)
            maps.append(attrs)
            cut = cut or name_cut or attrs_cut
        return (times, names, maps), exception_type, cut

    def _links(self, links):
        """(trace ids, span ids, trace states, attribute maps) of valid links, and whether any were cut."""
        opts = self.options
        cut = len(links) > opts.max_links
        trace_ids, span_ids, states, maps = [], [], [], []
        for link in links[:opts.max_links] if cut else links:
            if len(link.trace_id) != 16 or len(link.span_id) != 8:
                cut = True  # a link we cannot name is dropped, and the step says so
                continue
            attrs, attrs_cut = read_attributes(link.attributes, opts.max_value_bytes, opts.max_attributes)
            if len(attrs) > opts.max_attributes:
                attrs, attrs_cut = trim(attrs, opts.max_attributes), True
            state, state_cut = bound(link.trace_state, opts.max_value_bytes)
            trace_ids.append(link.trace_id.hex())
            span_ids.append(link.span_id.hex())
            states.append(state)
            maps.append(attrs)
            cut = cut or attrs_cut or state_cut
        return (trace_ids, span_ids, states, maps), cut


__all__ = ["MappingOptions", "MappingResult", "default_options", "map_export_request", "sanitize_project"]
