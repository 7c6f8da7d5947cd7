"""``run()``: one agent run as an ``invoke_agent`` span, and what a run records.

Failures, decisions and quality signals (seed 003's taxonomy) are span events on the run span
— ``agenttrail.failure``, ``agenttrail.decision``, ``agenttrail.quality_signal`` — whose
attributes are plain strings, numbers and booleans, so any OpenTelemetry backend keeps them.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from opentelemetry.trace import Status, StatusCode

from . import _attributes as A
from . import _setup
from ._scope import SpanScope, guarded
from ._steps import LLMCall, Step

logger = logging.getLogger("agenttrail.sdk")

_current: contextvars.ContextVar["Run | None"] = contextvars.ContextVar("agenttrail_run", default=None)


def current_run() -> "Run | None":
    """The run whose block (or decorated function) is executing, or None."""
    return _current.get()


def _step_id(step) -> str | None:
    if isinstance(step, Step):
        return step.step_id
    return A.text(step, 64) if step else None


class Run(SpanScope):
    """An agent run.  ``run_id`` is the trace id in 32 hex digits — the REST API's run id."""

    def __init__(self, agent: str | None = None, session: str | None = None, runbook: str | None = None, *,
                 agent_id: str | None = None, agent_version: str | None = None,
                 environment: str | None = None, user: str | None = None, name: str | None = None,
                 attributes: dict | None = None):
        super().__init__()
        self.agent, self.session, self.runbook = agent, session, runbook
        self.agent_id, self.agent_version, self.environment = agent_id, agent_version, environment
        self.user, self.name, self.extra = user, name, attributes
        self.failures = 0
        self._run_token = None

    def _clone(self) -> "Run":
        return Run(self.agent, self.session, self.runbook, agent_id=self.agent_id,
                   agent_version=self.agent_version, environment=self.environment, user=self.user,
                   name=self.name, attributes=self.extra)

    def _span_name(self) -> str:
        if self.name:
            return A.text(self.name, 256)
        return f"invoke_agent {A.text(self.agent, 200)}" if self.agent else "invoke_agent"

    def _attributes(self) -> dict:
        attrs = A.clean_attributes(self.extra, _setup.max_value_chars())
        attrs[A.OPERATION] = "invoke_agent"
        for key, value in ((A.AGENT_NAME, self.agent), (A.AGENT_ID, self.agent_id),
                           (A.AGENT_VERSION, self.agent_version), (A.CONVERSATION_ID, self.session),
                           (A.RUNBOOK, self.runbook), (A.ENVIRONMENT, self.environment),
                           (A.USER_ID, self.user)):
            if value:
                attrs[key] = A.text(value, 256)
        return attrs

    def _on_enter(self) -> None:
        self._run_token = _current.set(self)

    def _on_exit(self) -> None:
        token, self._run_token = self._run_token, None
        if token is not None:
            try:
                _current.reset(token)
            except ValueError:  # exited in another context (e.g. a different task): leave it be
                pass

    @property
    def run_id(self) -> str:
        """The trace id as 32 lowercase hex digits (all zeros when tracing is not configured)."""
        return format(self.span.get_span_context().trace_id, "032x")

    # -- children -------------------------------------------------------------------------
    def step(self, name: str, tool: str | None = None, input: Any = None, **options) -> Step:
        """A step of this run (see :class:`Step`); use with ``with`` / ``async with``."""
        return Step(name, tool, input, run=self, **options)

    def llm(self, model: str | None = None, provider: str | None = None, **options) -> LLMCall:
        """A model call inside this run (see :class:`LLMCall`)."""
        return LLMCall(model, provider, run=self, **options)

    # -- what a run records ---------------------------------------------------------------
    @guarded
    def set_totals(self, tokens: int | None = None, cost_usd: float | None = None, *,
                   input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Totals the agent computed itself, as ``agenttrail.totals.*`` attributes.

        Not ``gen_ai.usage.*``: backends sum those over model calls, and usage on the agent
        span as well would count twice.
        """
        for key, value in (("total_tokens", tokens), ("input_tokens", input_tokens),
                           ("output_tokens", output_tokens)):
            count = A.non_negative_int(value)
            if count is not None:
                self.span.set_attribute(A.TOTALS_PREFIX + key, count)
        cost = A.finite_float(cost_usd)
        if cost is not None and cost >= 0:
            self.span.set_attribute(A.TOTALS_PREFIX + "cost_usd", cost)

    @guarded
    def record_failure(self, failure_type: str, failure_code: str, message: str | None = None, *,
                       step: Step | str | None = None) -> None:
        """Why the run failed: ``failure_type`` is tool, model, retrieval or orchestration.

        Marks the run ERROR with ``error.type`` = ``failure_code`` and adds an
        ``agenttrail.failure`` event; ``step`` links the failure to the step that caused it.
        """
        if failure_type not in A.FAILURE_TYPES:
            logger.warning("agenttrail: failure_type %r is not one of %s", failure_type, A.FAILURE_TYPES)
        attrs = {"agenttrail.failure.type": A.text(failure_type, 64),
                 "agenttrail.failure.code": A.text(failure_code, 128)}
        if message:
            attrs["agenttrail.failure.message"] = A.text(message, 2048)
        step_id = _step_id(step)
        if step_id:
            attrs["agenttrail.failure.step_id"] = step_id
        self.failures += 1
        self.span.add_event(A.FAILURE_EVENT, attrs)
        self.span.set_attribute("agenttrail.failure.type", attrs["agenttrail.failure.type"])
        self.span.set_attribute(A.ERROR_TYPE, attrs["agenttrail.failure.code"])
        self.span.set_status(Status(StatusCode.ERROR, A.text(message or failure_code, 1024)))

    @guarded
    def record_decision(self, decision_type: str, selected: str, reason_code: str | None = None, *,
                        candidates: list[str] | None = None, confidence: float | None = None,
                        step: Step | str | None = None, metadata: dict | None = None) -> None:
        """A decision point: which option was selected among ``candidates`` and why (a code)."""
        attrs = {"agenttrail.decision.type": A.text(decision_type, 128),
                 "agenttrail.decision.selected": A.text(selected, 256)}
        if reason_code:
            attrs["agenttrail.decision.reason_code"] = A.text(reason_code, 128)
        if candidates:
            attrs["agenttrail.decision.candidates"] = [A.text(c, 256) for c in list(candidates)[:64]]
        score = A.finite_float(confidence)
        if score is not None:
            if 0.0 <= score <= 1.0:
                attrs["agenttrail.decision.confidence"] = score
            else:
                logger.warning("agenttrail: decision confidence %r outside 0..1 ignored", confidence)
        self._event(A.DECISION_EVENT, attrs, step, metadata)

    @guarded
    def record_quality_signal(self, signal_type: str, signal_code: str, value: bool = True, *,
                              weight: float | None = None, step: Step | str | None = None,
                              metadata: dict | None = None) -> None:
        """An observable quality fact, e.g. ``("schema_valid", "full_match", True)``."""
        attrs = {"agenttrail.quality.type": A.text(signal_type, 128),
                 "agenttrail.quality.code": A.text(signal_code, 128),
                 "agenttrail.quality.value": bool(value)}
        w = A.finite_float(weight)
        if w is not None:
            attrs["agenttrail.quality.weight"] = w
        self._event(A.QUALITY_EVENT, attrs, step, metadata)

    def _event(self, name: str, attrs: dict, step, metadata: dict | None) -> None:
        step_id = _step_id(step)
        if step_id:
            attrs["agenttrail.step_id"] = step_id
        for key, value in A.clean_attributes(metadata, 1024).items():
            attrs.setdefault(f"agenttrail.metadata.{key}", value)
        self.span.add_event(name, attrs)


def run(agent: str | None = None, session: str | None = None, runbook: str | None = None, **options) -> Run:
    """Start an agent run: ``with run(agent="support-agent") as r:`` or ``@run(agent=...)``."""
    return Run(agent, session, runbook, **options)


def step(name: str, tool: str | None = None, input: Any = None, **options) -> Step:
    """A step under whatever span is current (the active run, usually); also a decorator."""
    return Step(name, tool, input, run=options.pop("run", None) or current_run(), **options)


def llm(model: str | None = None, provider: str | None = None, **options) -> LLMCall:
    """A model call under whatever span is current; also a decorator."""
    return LLMCall(model, provider, run=options.pop("run", None) or current_run(), **options)
