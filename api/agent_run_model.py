"""Seed 002's agent run document (``POST /v1/agent-runs``), validated, and the step rows it becomes.

The document is accepted as the seed writes it: a run with ``steps``, ``tool_calls`` (each
under its ``step_id``), ``guardrail_events`` and ``cost``.  It becomes a run like any other:

* the run → the root step (kind ``agent``): agent name, status (``success`` → ok,
  ``failure`` → error), ``error_type``, ``error_message``, model, environment, times;
  ``agent_version``, ``trace_id`` and ``correlation_ids`` as ``agenttrail.*`` attributes;
  ``cost`` as the run's declared totals (``agenttrail.totals.*``);
* each step → a ``workflow`` step under the root; a failed step's ``output_summary`` is its
  error message; summaries and ``retries`` are kept as attributes;
* each tool call → a ``tool`` step under its step (``args_json`` as tool arguments,
  ``error_class`` as error type, ``status_code`` as ``http.response.status_code``), placed
  one after the other from its step's start, since the document gives only latencies;
* each guardrail event → a ``guardrail`` step under its step at ``created_at``, failed (a
  guardrail event records a block) with its message.

Ids are mapped like the event API's (:func:`~.event_model.run_hex`, :func:`~.event_model.step_hex`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agenttrail.analysis.classify import classify_step
from agenttrail.storage import StepBatch

from .event_model import root_hex, run_hex, step_hex

_ID = Field(min_length=1, max_length=256)
_TEXT = Field(default=None, max_length=4096)
_NAME = Field(default=None, max_length=1024)
MAX_ITEMS = 1000
Status = Literal["success", "failure", "ok", "error", "failed", "running"]


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=65_536)


class AgentStep(_Item):
    """One of the run's steps."""

    step_id: str = _ID
    name: str | None = _NAME
    status: Status | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_summary: str | None = _TEXT
    output_summary: str | None = _TEXT
    retries: int | None = Field(default=None, ge=0, le=1_000_000)
    latency_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)


class ToolCall(_Item):
    """One tool call, under the step named by ``step_id``."""

    call_id: str = _ID
    step_id: str | None = Field(default=None, min_length=1, max_length=256)
    tool_name: str = Field(min_length=1, max_length=1024)
    status: Status | None = None
    args_json: Any = None
    args_hash: str | None = _NAME
    result_summary: str | None = _TEXT
    error_class: str | None = _NAME
    error_message: str | None = _TEXT
    status_code: int | None = Field(default=None, ge=0, le=999)
    retries: int | None = Field(default=None, ge=0, le=1_000_000)
    latency_ms: float | None = Field(default=None, ge=0, le=1e10, allow_inf_nan=False)


class GuardrailEvent(_Item):
    """A guardrail that fired, under the step named by ``step_id``."""

    event_id: str = _ID
    type: str | None = _NAME
    message: str | None = _TEXT
    step_id: str | None = Field(default=None, min_length=1, max_length=256)
    call_id: str | None = Field(default=None, min_length=1, max_length=256)
    created_at: datetime | None = None


class Cost(_Item):
    """What the run reported it used and cost."""

    tokens_prompt: int | None = Field(default=None, ge=0, le=2**53)
    tokens_completion: int | None = Field(default=None, ge=0, le=2**53)
    total_cost_usd: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)


class AgentRun(_Item):
    """Seed 002's document; unknown keys are ignored."""

    run_id: str = _ID
    project_id: str | None = Field(default=None, min_length=1, max_length=256)
    agent_name: str | None = _NAME
    agent_version: str | None = _NAME
    model: str | None = _NAME
    environment: str | None = _NAME
    started_at: datetime
    ended_at: datetime | None = None
    status: Status | None = None
    error_type: str | None = _NAME
    error_message: str | None = _TEXT
    trace_id: str | None = _NAME
    correlation_ids: list[str] = Field(default_factory=list, max_length=100)
    steps: list[AgentStep] = Field(default_factory=list, max_length=MAX_ITEMS)
    tool_calls: list[ToolCall] = Field(default_factory=list, max_length=MAX_ITEMS)
    guardrail_events: list[GuardrailEvent] = Field(default_factory=list, max_length=MAX_ITEMS)
    cost: Cost | None = None


def _ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _status(value: str | None) -> str:
    return {"success": "ok", "ok": "ok", "failure": "error", "error": "error", "failed": "error"}.get(value or "",
                                                                                                    "unset")


def to_steps(doc: AgentRun, project: str) -> tuple[str, StepBatch]:
    """The stored run id and the step rows of ``doc``, classified as spans are."""
    run = run_hex(doc.run_id)
    root = root_hex(run)
    start = _ns(doc.started_at)
    end = _ns(doc.ended_at) if doc.ended_at else start
    common = dict(project_id=project, run_id=run, service_name=doc.agent_name or "agent-runs",
                  agent_name=doc.agent_name or "", environment=doc.environment or "")
    rows = []
    attrs = {"agenttrail.source": "agent-runs", "agenttrail.run.source_id": doc.run_id}
    for key, value in (("agenttrail.agent.version", doc.agent_version), ("agenttrail.trace_id", doc.trace_id)):
        if value:
            attrs[key] = value
    if doc.correlation_ids:
        attrs["agenttrail.correlation_ids"] = json.dumps(doc.correlation_ids[:100])
    if doc.cost:
        tokens = (doc.cost.tokens_prompt or 0) + (doc.cost.tokens_completion or 0)
        if tokens:
            attrs["agenttrail.totals.total_tokens"] = str(tokens)
        if doc.cost.total_cost_usd is not None:
            attrs["agenttrail.totals.cost_usd"] = repr(doc.cost.total_cost_usd)
    rows.append(dict(common, step_id=root, name=doc.agent_name or doc.run_id[:256], kind="agent",
                     model=doc.model or "", status=_status(doc.status), status_message=doc.error_message or "",
                     error_type=doc.error_type or "", start_time=start, end_time=end, attributes=attrs))
    step_ids, step_starts = {}, {}
    cursor = start
    for step in doc.steps:
        sid = step_hex(run, "s:" + step.step_id)
        s_start = _ns(step.started_at) if step.started_at else cursor
        s_end = _ns(step.ended_at) if step.ended_at else s_start + int((step.latency_ms or 0) * 1e6)
        cursor = max(cursor, s_end)
        status = _status(step.status)
        s_attrs = {"agenttrail.source": "agent-runs", "agenttrail.step.source_id": step.step_id}
        for key, value in (("agenttrail.input_summary", step.input_summary),
                           ("agenttrail.output_summary", step.output_summary)):
            if value:
                s_attrs[key] = value
        if step.retries is not None:
            s_attrs["agenttrail.retries"] = str(step.retries)
        rows.append(dict(common, step_id=sid, parent_step_id=root, name=step.name or step.step_id, kind="workflow",
                         status=status, status_message=(step.output_summary or "") if status == "error" else "",
                         start_time=s_start, end_time=s_end, attributes=s_attrs))
        step_ids[step.step_id], step_starts[step.step_id] = sid, s_start
    offsets: dict[str, int] = {}
    for call in doc.tool_calls:
        parent = step_ids.get(call.step_id or "", root)
        c_start = step_starts.get(call.step_id or "", start) + offsets.get(parent, 0)
        latency = int((call.latency_ms or 0) * 1e6)
        offsets[parent] = offsets.get(parent, 0) + max(latency, 1)
        c_attrs = {"agenttrail.source": "agent-runs", "agenttrail.tool_call.source_id": call.call_id}
        if call.status_code is not None:
            c_attrs["http.response.status_code"] = str(call.status_code)
        for key, value in (("agenttrail.args_hash", call.args_hash), ("agenttrail.result_summary", call.result_summary)):
            if value:
                c_attrs[key] = value
        if call.retries is not None:
            c_attrs["agenttrail.retries"] = str(call.retries)
        arguments = "" if call.args_json is None else (
            call.args_json if isinstance(call.args_json, str) else json.dumps(call.args_json, sort_keys=True))
        rows.append(dict(common, step_id=step_hex(run, "c:" + call.call_id), parent_step_id=parent,
                         name=f"execute_tool {call.tool_name}", kind="tool", tool_name=call.tool_name,
                         tool_call_id=call.call_id, tool_arguments=arguments[:65_536], status=_status(call.status),
                         status_message=call.error_message or "", error_type=call.error_class or "",
                         start_time=c_start, end_time=c_start + latency, attributes=c_attrs))
    for event in doc.guardrail_events:
        parent = step_ids.get(event.step_id or "", root)
        at = _ns(event.created_at) if event.created_at else step_starts.get(event.step_id or "", start)
        rows.append(dict(common, step_id=step_hex(run, "g:" + event.event_id), parent_step_id=parent,
                         name=f"guardrail {event.type or 'event'}", kind="guardrail", status="error",
                         status_message=event.message or event.type or "guardrail", start_time=at, end_time=at,
                         attributes={"agenttrail.source": "agent-runs", "agenttrail.guardrail.type": event.type or "",
                                     "agenttrail.guardrail.call_id": event.call_id or ""}))
    batch = StepBatch()
    for row in rows:
        row["duration_ns"] = max(row["end_time"] - row["start_time"], 0)
        evidence = {**row["attributes"], "error.type": row["error_type"]} if row.get("error_type") else row["attributes"]
        row["failure_category"], row["failure_type"], row["error_fingerprint"] = classify_step(
            row["kind"], 2 if row["status"] == "error" else 1, row.get("status_message", ""), evidence, (), (), ())
        batch.append(**row)
    return run, batch


__all__ = ["AgentRun", "MAX_ITEMS", "to_steps"]
