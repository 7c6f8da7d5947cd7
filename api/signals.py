"""Decisions and quality signals (seed 003 phase 2): one run's, and aggregated per project.

In run detail they are read from the events of the run's steps; the project endpoints
aggregate them over a selection of runs (the run list's filters) in ClickHouse.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from fastapi import APIRouter, Depends

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.signals import DECISION_EVENT, QUALITY_EVENT, decision_stats, quality_stats

from .deps import get_store, project_scope, reader
from .errors import ApiError
from .params import bad_parameter, limit_query
from .projects import ProjectId
from .run_list import RunFilters, run_filters
from .serialize import iso

router = APIRouter(tags=["projects"])

DEFAULT_HOURS = 24
_HOUR_NS = 3_600_000_000_000


def readable_project(principal: Principal, project_id: str) -> frozenset[str]:
    """The one-project scope of ``project_id``; 404 when the key may not read it."""
    scope = project_scope(principal, project_id)
    if not scope:
        raise ApiError(404, f"project {project_id} not found")
    return scope


def with_default_window(filters: RunFilters, prefix: str = "") -> RunFilters:
    """``filters`` with a missing bound filled in: until = now, since = DEFAULT_HOURS before until."""
    until_ns = filters.until_ns
    if until_ns is None:
        until_ns = int(datetime.now(timezone.utc).timestamp() * 1e9) + 1
    since_ns = filters.since_ns if filters.since_ns is not None else max(0, until_ns - DEFAULT_HOURS * _HOUR_NS)
    if since_ns >= until_ns:
        raise bad_parameter(prefix + "since", f"must be earlier than {prefix}until (default: now)")
    return RunFilters(since_ns, until_ns, filters.values)


def window_json(filters: RunFilters) -> dict:
    """The window of filters made by :func:`with_default_window`, as ISO-8601 times."""
    return {"since": _iso_ns(filters.since_ns), "until": _iso_ns(filters.until_ns)}


def _iso_ns(value: int) -> str:
    return iso(datetime.fromtimestamp(value / 1e9, tz=timezone.utc))


@router.get("/v1/projects/{project_id}/decisions")
def decisions(project_id: str = ProjectId, filters: RunFilters = Depends(run_filters()),
              limit: int = limit_query(100), store: Store = Depends(get_store),
              principal: Principal = Depends(reader)) -> dict:
    """Decisions the agents recorded (``agenttrail.decision`` events) over the selected runs,
    per decision type and selected option: how often, by how many runs, mean confidence,
    the most frequent reason codes and the success rate of the runs that made the choice.

    Runs are selected by the run list's filters; the window defaults to the last 24 hours.
    """
    selection = with_default_window(filters)
    rows = decision_stats(store, selection.restricted(readable_project(principal, project_id)), limit)
    return {"project_id": project_id, **window_json(selection), "decisions": rows}


@router.get("/v1/projects/{project_id}/quality")
def quality(project_id: str = ProjectId, filters: RunFilters = Depends(run_filters()),
            limit: int = limit_query(100), store: Store = Depends(get_store),
            principal: Principal = Depends(reader)) -> dict:
    """Quality signals (``agenttrail.quality_signal`` events) over the selected runs, per signal
    type, code and value: how often, by how many runs, mean weight, and the success rate of the
    selected runs with the signal against those without it (``difference`` = with − without).

    Runs are selected by the run list's filters; the window defaults to the last 24 hours.
    """
    selection = with_default_window(filters)
    rows = quality_stats(store, selection.restricted(readable_project(principal, project_id)), limit)
    return {"project_id": project_id, **window_json(selection), "quality_signals": rows}


# -- one run -----------------------------------------------------------------------------------

def _list(text: str | None):
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _number(text: str | None):
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value == value and abs(value) != float("inf") else None


def _metadata(attrs: dict) -> dict:
    return {k[len("agenttrail.metadata."):]: v for k, v in attrs.items() if k.startswith("agenttrail.metadata.")}


def _decision(step_id: str, time, attrs: dict) -> dict:
    return {"step_id": step_id, "linked_step_id": attrs.get("agenttrail.step_id") or None, "time": iso(time),
            "decision_type": attrs.get("agenttrail.decision.type", ""),
            "selected": attrs.get("agenttrail.decision.selected", ""),
            "reason_code": attrs.get("agenttrail.decision.reason_code") or None,
            "candidates": _list(attrs.get("agenttrail.decision.candidates")),
            "confidence": _number(attrs.get("agenttrail.decision.confidence")),
            "metadata": _metadata(attrs)}


def _signal(step_id: str, time, attrs: dict) -> dict:
    return {"step_id": step_id, "linked_step_id": attrs.get("agenttrail.step_id") or None, "time": iso(time),
            "signal_type": attrs.get("agenttrail.quality.type", ""),
            "signal_code": attrs.get("agenttrail.quality.code", ""),
            "value": attrs.get("agenttrail.quality.value", "").lower() in ("true", "1"),
            "weight": _number(attrs.get("agenttrail.quality.weight")),
            "metadata": _metadata(attrs)}


def run_signals(steps: list[dict]) -> tuple[list[dict], list[dict]]:
    """The decisions and the quality signals recorded on a run's steps, in time order.

    ``step_id`` is the span that carries the event (the run span, for the SDK);
    ``linked_step_id`` the step the event names (the SDK's ``step=``), when given.
    """
    found: dict[str, list] = {DECISION_EVENT: [], QUALITY_EVENT: []}
    for step in steps:
        for time, name, attrs in zip(step["events.time"], step["events.name"], step["events.attributes"]):
            if name in found:
                found[name].append((time, step["step_id"], attrs))
    decided = [_decision(s, t, a) for t, s, a in sorted(found[DECISION_EVENT], key=lambda e: (e[0], e[1]))]
    signals = [_signal(s, t, a) for t, s, a in sorted(found[QUALITY_EVENT], key=lambda e: (e[0], e[1]))]
    return decided, signals
