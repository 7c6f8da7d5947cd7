"""Events → step rows: the same rows an OTLP span would give, merged with what is stored.

A ``run.start`` becomes the run's root step (kind ``agent``), ``step.start``/``step.end`` one
child step each (parent: ``parent_step_id`` if given, else the root).  Each event fills in
the fields it knows; a step or root already stored is loaded first, so a later event only
adds to it.  Until ``run.end`` arrives the root's parent is :data:`PENDING_PARENT`: the run
then reads as ``in_progress`` exactly like an OTLP trace whose root span has not arrived.

Out-of-order events are applied anyway and reported in ``warnings``: a ``step.end`` without
its start takes ``start = end − latency_ms``; a ``run.end`` without ``run.start`` makes a
root starting at the earliest step seen.

Each finished row is classified (``failure_category`` …) by :mod:`agenttrail.analysis.classify`,
as an OTLP span is, from its status, error message and ``error_type``.
"""

from __future__ import annotations

import json
import time

from agenttrail.analysis.classify import classify_step
from agenttrail.storage.model import STEP_COLUMNS, StepBatch

from .event_model import Event, ns, root_hex, step_hex

PENDING_PARENT = "pending"
MAX_CONTENT = 16_384
_STARTED, _ENDED = "agenttrail.event.start", "agenttrail.event.end"
_RUN_FIELDS = ("agent_name", "session_id", "user_id", "environment", "service_name")


def new_row(project: str, run: str, step: str) -> dict:
    """A step row with every column at its default."""
    row = {name: (list(d) if isinstance(d, tuple) else dict(d) if isinstance(d, dict) else d)
           for name, d in STEP_COLUMNS}
    row.update(project_id=project, run_id=run, step_id=step, service_name="agenttrail-events",
               attributes={"agenttrail.source": "events"})
    return row


def _content(row: dict, key: str, value) -> None:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > MAX_CONTENT:
        text, row["truncated"] = text[:MAX_CONTENT], 1
    row["attributes"][key] = text


def _common(row: dict, event: Event) -> None:
    """Fields any event may carry."""
    for field, column in (("name", "name"), ("tool", "tool_name"), ("model", "model"),
                          ("provider", "provider"), ("agent", "agent_name"), ("service", "service_name"),
                          ("session_id", "session_id"), ("user_id", "user_id"),
                          ("environment", "environment"), ("error_type", "error_type"),
                          ("kind", "kind")):
        value = getattr(event, field)
        if value is not None:
            row[column] = value
    if event.runbook is not None:
        row["attributes"]["agenttrail.runbook"] = event.runbook
    if event.index is not None:
        row["attributes"]["agenttrail.step.index"] = str(event.index)
    for key, value in (event.attributes or {}).items():
        row["attributes"][str(key)[:256]] = str(value)
    if event.input is not None:
        _content(row, "input.value", event.input)
    if event.output is not None:
        _content(row, "output.value", event.output)


def _end(row: dict, event: Event, end_ns: int) -> None:
    row["end_time"] = end_ns
    row["attributes"][_ENDED] = "1"
    if event.latency_ms is not None:
        row["attributes"]["agenttrail.latency_ms"] = repr(event.latency_ms)
    if event.failed is not None:
        row["status"] = "error" if event.failed else "ok"
    elif row["status"] == "unset":
        row["status"] = "error" if event.error else "ok"
    if event.error:
        row["status_message"] = event.error[:4096]
    for field in ("input_tokens", "output_tokens", "cost_usd"):
        if getattr(event, field) is not None:
            row[field] = getattr(event, field)
    if event.tokens is not None or event.input_tokens is not None or event.output_tokens is not None:
        row["total_tokens"] = event.tokens if event.tokens is not None else row["input_tokens"] + row["output_tokens"]
    if event.cost_usd is not None:
        row["cost_source"] = "event"


class EventMerger:
    """Applies events to step rows (stored ones first) and collects warnings."""

    def __init__(self, stored: dict[tuple, dict]):
        self.rows: dict[tuple, dict] = {}
        self.stored = stored
        self.warnings: list[dict] = []

    def _row(self, key: tuple) -> dict:
        if key not in self.rows:
            self.rows[key] = self.stored.get(key) or new_row(*key)
        return self.rows[key]

    def _warn(self, index: int, message: str) -> None:
        self.warnings.append({"index": index, "warning": message})

    def apply(self, index: int, event: Event, project: str, run: str) -> None:
        """Merge one event into its step (or the run's root step)."""
        now = time.time_ns()
        at = ns(event.ts) if event.ts else now
        if event.type.startswith("run."):
            row = self._row((project, run, root_hex(run)))
            row["kind"] = event.kind or "agent"
            _common(row, event)
            if event.type == "run.start":
                row["start_time"] = at
                row["attributes"][_STARTED] = "1"
                if _ENDED not in row["attributes"]:
                    row["parent_step_id"] = PENDING_PARENT
                    row["end_time"] = at
            else:
                if _STARTED not in row["attributes"]:
                    self._warn(index, f"run.end for run {event.run_id} arrived before its run.start")
                row["parent_step_id"] = ""
                for key, value in (event.totals.model_dump(exclude_none=True) if event.totals else {}).items():
                    row["attributes"][f"agenttrail.totals.{key}"] = str(value)
                _end(row, event, at)
            if not row["name"]:
                row["name"] = row["agent_name"] or row["attributes"].get("agenttrail.runbook") or "run"
            return
        step = step_hex(run, event.step_id)
        row = self._row((project, run, step))
        parent = step_hex(run, event.parent_step_id) if event.parent_step_id else root_hex(run)
        if not row["parent_step_id"] or event.parent_step_id:
            row["parent_step_id"] = parent
        _common(row, event)
        if event.type == "step.start":
            row["start_time"] = at
            row["attributes"][_STARTED] = "1"
        else:
            if _STARTED not in row["attributes"]:
                self._warn(index, f"step.end for step {event.step_id} arrived before its step.start")
            _end(row, event, at)
        if not row["name"]:
            row["name"] = row["tool_name"] or row["model"] or event.step_id[:256]

    def batch(self) -> StepBatch:
        """The touched rows, finished: kinds inferred, times and durations made consistent."""
        roots = {(k[0], k[1]): r for k, r in self.rows.items() if k[2] == root_hex(k[1])}
        for (project, run), root in roots.items():
            if _STARTED not in root["attributes"]:  # run.end only: start at the earliest step seen
                starts = [r["start_time"] for k, r in self.rows.items()
                          if k[:2] == (project, run) and r is not root and r["start_time"]]
                root["start_time"] = min(starts + [root["end_time"]])
                root["attributes"][_STARTED] = "derived"
        for key, row in self.rows.items():
            self._finish(row, roots.get((key[0], key[1])) or self.stored.get((key[0], key[1], root_hex(key[1]))))
        batch = StepBatch()
        for row in self.rows.values():
            batch.append(**row)
        return batch

    def _finish(self, row: dict, root: dict | None) -> None:
        attrs = row["attributes"]
        if row["kind"] == "other":
            row["kind"] = "llm" if row["model"] else "tool" if row["tool_name"] else "other"
        latency = attrs.get("agenttrail.latency_ms")
        latency_ns = int(float(latency) * 1e6) if latency else None
        if _STARTED not in attrs:  # only the end is known
            row["start_time"] = max(row["end_time"] - (latency_ns or 0), 0)
        if _ENDED not in attrs:
            row["end_time"] = row["start_time"]
        row["duration_ns"] = latency_ns if latency_ns is not None else max(row["end_time"] - row["start_time"], 0)
        if root is not None and root is not row:
            for field in _RUN_FIELDS:
                if not row[field] or row[field] == "agenttrail-events":
                    row[field] = root[field]
        # The event's error_type plays the part of a span's error.type attribute.
        evidence = {**attrs, "error.type": row["error_type"]} if row["error_type"] else attrs
        row["failure_category"], row["failure_type"], row["error_fingerprint"] = classify_step(
            row["kind"], 2 if row["status"] == "error" else 1, row["status_message"], evidence,
            row["events.name"], row["events.attributes"], row["finish_reasons"])
