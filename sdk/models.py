"""Typed results of :class:`agenttrail.sdk.Client`.

Each is a frozen dataclass built with ``from_dict``: known fields are typed (timestamps
become timezone-aware ``datetime``), fields the server adds later stay readable in ``extra``,
and a missing field takes its default instead of failing — a newer server must not break an
older client.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T", bound="_Model")


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string (``Z`` allowed) as a datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Model:
    _times: tuple[str, ...] = ()
    _nested_keys: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        """Build from a JSON object; unknown keys go to ``extra``."""
        data = data if isinstance(data, dict) else {}
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        values = {k: data[k] for k in fields if k in data and k not in cls._nested_keys}
        for key, f in fields.items():
            # a list or mapping field holding something else keeps its default
            if key in values and f.default_factory in (list, dict) and not isinstance(values[key], f.default_factory):
                del values[key]
        for key in cls._times:
            if key in values:
                values[key] = parse_time(values[key])
        values.update(cls._nested(data))
        names = set(fields)
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**values, extra=extra)

    @classmethod
    def _nested(cls, data: dict) -> dict:
        return {}


@dataclass(frozen=True)
class Project(_Model):
    """A project and how much it has seen."""

    project_id: str = ""
    run_count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    extra: dict = field(default_factory=dict, repr=False)
    _times = ("first_seen", "last_seen")


@dataclass(frozen=True)
class Step(_Model):
    """One step of a run (one span)."""

    step_id: str = ""
    parent_step_id: str | None = None
    index: int = 0
    depth: int = 0
    name: str = ""
    kind: str = ""
    operation: str | None = None
    tool: str | None = None
    tool_call_id: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str = ""
    error_type: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    cost_source: str | None = None
    finish_reasons: list = field(default_factory=list)
    tool_arguments: Any = None
    attributes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    truncated: bool = False
    extra: dict = field(default_factory=dict, repr=False)
    _times = ("started_at", "ended_at")

    @property
    def ok(self) -> bool:
        """True unless the step failed."""
        return self.status != "error"


@dataclass(frozen=True)
class Validation(_Model):
    """A runbook verdict on one run: ``passed``, ``failed`` or ``incomplete``, and why.

    ``reasons`` are ``{"rule", "message", "observed", "limit", "step_ids"}``; ``existing`` is
    True when the server returned a stored verdict for the same runbook and run state.
    """

    validation_id: str = ""
    project_id: str = ""
    run_id: str = ""
    status: str = ""
    reasons: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    runbook_name: str | None = None
    runbook_version: int | None = None
    runbook_hash: str | None = None
    input_hash: str | None = None
    source: str | None = None
    existing: bool = False
    created_at: datetime | None = None
    extra: dict = field(default_factory=dict, repr=False)
    _times = ("created_at",)

    @property
    def passed(self) -> bool:
        """True when the run satisfied the runbook."""
        return self.status == "passed"

    @property
    def failed_rules(self) -> list[str]:
        """The rule ids that failed (``allowed_tools``, ``budgets.max_total_tokens``, …)."""
        return [r.get("rule", "") for r in self.reasons if isinstance(r, dict)]


@dataclass(frozen=True)
class Run(_Model):
    """A run (one trace): totals, and — from ``Client.run`` — its steps in order."""

    run_id: str = ""
    project_id: str = ""
    service_name: str = ""
    agent_name: str = ""
    session_id: str | None = None
    user_id: str | None = None
    environment: str | None = None
    status: str = ""
    status_message: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: float = 0.0
    step_count: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    error_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    unpriced_llm_calls: int = 0
    root_missing: bool = False
    orphan_count: int = 0
    tools: list = field(default_factory=list)
    models: list = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    validation: Validation | None = None
    extra: dict = field(default_factory=dict, repr=False)
    _times = ("started_at", "ended_at")
    _nested_keys = ("steps", "validation")

    @classmethod
    def _nested(cls, data: dict) -> dict:
        nested: dict = {}
        if isinstance(data.get("steps"), list):
            nested["steps"] = [Step.from_dict(s) for s in data["steps"]]
        if isinstance(data.get("validation"), dict):
            nested["validation"] = Validation.from_dict(data["validation"])
        return nested

    @property
    def ok(self) -> bool:
        """True when the run finished without error."""
        return self.status == "ok"


@dataclass(frozen=True)
class Summary(_Model):
    """A project's health over a window (``since``..``until``)."""

    project_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    runs: int = 0
    ok_runs: int = 0
    error_runs: int = 0
    in_progress_runs: int = 0
    steps: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    success_rate: float | None = None
    error_rate: float | None = None
    p50_run_duration_ms: float | None = None
    p95_run_duration_ms: float | None = None
    p95_step_latency_ms: float | None = None
    top_tools: list = field(default_factory=list)
    top_failing_tools: list = field(default_factory=list)
    models: list = field(default_factory=list)
    validation: Any = None
    extra: dict = field(default_factory=dict, repr=False)
    _times = ("since", "until")


@dataclass(frozen=True)
class BatchValidation(_Model):
    """A runbook judged over a project window: counts by status and one page of runs.

    ``runs`` holds the verdicts with the requested statuses (failed by default);
    ``next_offset`` is None on the last page.
    """

    counts: dict = field(default_factory=dict)
    runs: list[Validation] = field(default_factory=list)
    next_offset: int | None = None
    runbook: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict, repr=False)
    _nested_keys = ("runs",)

    @classmethod
    def _nested(cls, data: dict) -> dict:
        runs = data.get("runs")
        return {"runs": [Validation.from_dict(r) for r in runs]} if isinstance(runs, list) else {}

    @property
    def passed(self) -> int:
        """Runs that passed."""
        return int(self.counts.get("passed", 0))

    @property
    def failed(self) -> int:
        """Runs that failed."""
        return int(self.counts.get("failed", 0))

    @property
    def total(self) -> int:
        """Runs judged."""
        return sum(int(v) for v in self.counts.values() if isinstance(v, (int, float)))


@dataclass(frozen=True)
class IngestResult(_Model):
    """The event API's answer (seed 000 shape)."""

    ingested: int = 0
    failed: int = 0
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    extra: dict = field(default_factory=dict, repr=False)
