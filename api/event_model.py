"""The event API's input: one validated :class:`Event` per item of ``{"events": [...]}``.

Items are validated one by one so that a bad event fails alone (``errors[i]``) and the rest
of the batch is still ingested.  Identifiers may be any string: :func:`run_hex` and
:func:`step_hex` map them deterministically onto the 32-hex trace / 16-hex span ids OTLP uses,
so the same event id always lands on the same stored run or step.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ID = Field(min_length=1, max_length=256)
_NAME = Field(default=None, max_length=1024)
_MIN, _MAX = datetime(1970, 1, 2, tzinfo=timezone.utc), datetime(2262, 1, 1, tzinfo=timezone.utc)

EVENT_TYPES = ("run.start", "step.start", "step.end", "run.end")


def run_hex(run_id: str) -> str:
    """32 lowercase hex: a trace id or UUID as is (dashes dropped), else sha256("run:"+id)[:32]."""
    if _HEX32.match(run_id) or _UUID.match(run_id):
        return run_id.replace("-", "").lower()
    return hashlib.sha256(b"run:" + run_id.encode()).hexdigest()[:32]


def step_hex(run: str, step_id: str) -> str:
    """16 lowercase hex: a span id as is, else sha256("step:"+run hex+":"+id)[:16]."""
    if _HEX16.match(step_id):
        return step_id.lower()
    return hashlib.sha256(f"step:{run}:{step_id}".encode()).hexdigest()[:16]


def root_hex(run: str) -> str:
    """The step id of the root step a run.start becomes."""
    return hashlib.sha256(f"root:{run}".encode()).hexdigest()[:16]


class Totals(BaseModel):
    """``run.end`` totals as reported by the agent (kept as root attributes, not summed)."""

    model_config = ConfigDict(extra="allow")
    tokens: int | None = Field(default=None, ge=0, le=2**53)
    cost_usd: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)


class Event(BaseModel):
    """One event of seed 000's API; unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", str_max_length=65_536)
    type: Literal["run.start", "step.start", "step.end", "run.end"]
    run_id: str = _ID
    project_id: str | None = Field(default=None, min_length=1, max_length=256)
    step_id: str | None = Field(default=None, min_length=1, max_length=256)
    parent_step_id: str | None = Field(default=None, min_length=1, max_length=256)
    ts: datetime | None = None
    index: int | None = Field(default=None, ge=0, le=10_000_000)
    name: str | None = _NAME
    kind: Literal["llm", "tool", "agent", "retrieval", "embedding", "workflow", "guardrail", "other"] | None = None
    tool: str | None = _NAME
    model: str | None = _NAME
    provider: str | None = _NAME
    agent: str | None = _NAME
    service: str | None = _NAME
    session_id: str | None = _NAME
    user_id: str | None = _NAME
    environment: str | None = _NAME
    runbook: str | None = _NAME
    status: Literal["ok", "error", "success", "failure", "failed"] | None = None
    error: str | None = None
    error_type: str | None = _NAME
    input: Any = None
    output: Any = None
    latency_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)
    tokens: int | None = Field(default=None, ge=0, le=2**53)
    input_tokens: int | None = Field(default=None, ge=0, le=2**53)
    output_tokens: int | None = Field(default=None, ge=0, le=2**53)
    cost_usd: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    totals: Totals | None = None
    attributes: dict[str, str | int | float | bool] | None = Field(default=None, max_length=128)

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        if not _MIN <= value < _MAX:
            raise ValueError("ts must lie between 1970 and 2262")
        return value

    @property
    def failed(self) -> bool | None:
        """True for error statuses, False for ok ones, None when not given."""
        return None if self.status is None else self.status in ("error", "failure", "failed")


def parse_event(item: Any) -> Event:
    """Validate one item; raises ValueError with a readable reason."""
    if not isinstance(item, dict):
        raise ValueError("an event must be a JSON object")
    try:
        event = Event.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "event"
        raise ValueError(f"{where}: {first.get('msg')}") from None
    if event.type.startswith("step.") and event.step_id is None:
        raise ValueError(f"step_id: required for {event.type}")
    return event


def ns(value: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact to the microsecond)."""
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
