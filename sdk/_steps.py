"""Step and LLM-call spans: ``execute_tool`` and ``chat`` in GenAI semantic-convention terms.

The span of a step is named after the step (what a runbook's ``required_steps`` matches and
what a trace viewer shows); ``gen_ai.operation.name`` and ``gen_ai.tool.name`` say what it is,
so backends that classify by attributes (as the conventions intend) read it as a tool call.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from . import _attributes as A
from . import _setup
from ._scope import SpanScope, guarded

_NON_TOOL_OPERATIONS = {"retrieval": "retrieval", "embeddings": "embeddings"}


def parent_context(run) -> Any:
    """Where a child of ``run`` starts: the current span if it lies inside the run's trace (so
    nesting follows the code), else the run's own span (threads and callbacks that lost the
    context still land in the right run).  None when there is no run: the current context."""
    if run is None or not run.span.get_span_context().is_valid:
        return None
    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == run.span.get_span_context().trace_id:
        return None
    return trace.set_span_in_context(run.span)


class Step(SpanScope):
    """A step of a run: a tool call by default (``execute_tool``).

    ``tool`` names the tool (default: the step name).  ``step_type`` other than ``"tool"``
    (seed 003's ``plan``, ``respond``, ``retrieval``, …) records a step that is not a tool
    call: ``agenttrail.step.type`` is set and ``retrieval`` becomes a retrieval operation.
    ``attempt`` (1, 2, …) marks retries; each attempt is its own step span.  ``input`` is
    recorded as ``gen_ai.tool.call.arguments`` only when content capture is on.
    """

    def __init__(self, name: str, tool: str | None = None, input: Any = None, *,
                 step_type: str | None = None, attempt: int | None = None,
                 tool_call_id: str | None = None, attributes: dict | None = None, run=None):
        super().__init__()
        self.name = A.text(name, 256) if name else A.text(tool or "step", 256)
        self.tool = tool
        self.input = input
        self.step_type = step_type
        self.attempt = attempt
        self.tool_call_id = tool_call_id
        self.extra = attributes
        self.run = run

    def _clone(self) -> "Step":
        return Step(self.name, self.tool, self.input, step_type=self.step_type, attempt=self.attempt,
                    tool_call_id=self.tool_call_id, attributes=self.extra, run=self.run)

    @property
    def is_tool_call(self) -> bool:
        """True when this step records a tool call."""
        return self.tool is not None or self.step_type in (None, "tool")

    def _span_name(self) -> str:
        return A.truncate(self.name, 256)

    def _parent(self):
        return parent_context(self.run)

    def _attributes(self) -> dict:
        limit = _setup.max_value_chars()
        attrs = A.clean_attributes(self.extra, limit)
        attrs[A.STEP_NAME] = A.truncate(self.name, 256)
        if self.is_tool_call:
            attrs[A.OPERATION] = "execute_tool"
            attrs[A.TOOL_NAME] = A.truncate(self.tool or self.name, 256)
        else:
            attrs[A.STEP_TYPE] = A.text(self.step_type, 64)
            if self.step_type in _NON_TOOL_OPERATIONS:
                attrs[A.OPERATION] = _NON_TOOL_OPERATIONS[self.step_type]
        if self.tool_call_id:
            attrs[A.TOOL_CALL_ID] = A.text(self.tool_call_id, 256)
        attempt = A.non_negative_int(self.attempt)
        if attempt:
            attrs[A.ATTEMPT] = attempt
        if self.input is not None and _setup.capture_content():
            attrs[A.TOOL_ARGUMENTS] = A.to_json(self.input, limit)
        return attrs

    @property
    def step_id(self) -> str:
        """This step's span id as 16 hex digits (the REST API's ``step_id``)."""
        return format(self.span.get_span_context().span_id, "016x")

    @guarded
    def set_output(self, output: Any) -> None:
        """Record the tool's result (``gen_ai.tool.call.result``) — only when content capture is on."""
        if output is not None and _setup.capture_content():
            self.span.set_attribute(A.TOOL_RESULT, A.to_json(output, _setup.max_value_chars()))


class LLMCall(SpanScope):
    """A model call: ``chat {model}`` with provider, model, token usage and finish reasons."""

    def __init__(self, model: str | None = None, provider: str | None = None, *,
                 operation: str = "chat", input: Any = None, attributes: dict | None = None, run=None):
        super().__init__()
        self.model = model
        self.provider = provider
        self.operation = operation or "chat"
        self.input = input
        self.extra = attributes
        self.run = run

    def _clone(self) -> "LLMCall":
        return LLMCall(self.model, self.provider, operation=self.operation, input=self.input,
                       attributes=self.extra, run=self.run)

    def _span_name(self) -> str:
        op = A.text(self.operation, 64)
        return f"{op} {A.text(self.model, 190)}" if self.model else op

    def _parent(self):
        return parent_context(self.run)

    def _attributes(self) -> dict:
        limit = _setup.max_value_chars()
        attrs = A.clean_attributes(self.extra, limit)
        attrs[A.OPERATION] = A.text(self.operation, 64)
        if self.model:
            attrs[A.REQUEST_MODEL] = A.text(self.model, 256)
        if self.provider:
            attrs[A.PROVIDER] = A.text(self.provider, 128)
        if self.input is not None and _setup.capture_content():
            attrs[A.INPUT_MESSAGES] = A.to_json(self.input, limit)
        return attrs

    @guarded
    def set_usage(self, input_tokens: int | None = None, output_tokens: int | None = None, *,
                  cache_read_tokens: int | None = None, cache_creation_tokens: int | None = None,
                  reasoning_tokens: int | None = None, cost_usd: float | None = None) -> None:
        """Token usage in semconv names; cached tokens are part of ``input_tokens``, as there.

        Values that are not non-negative integers are ignored.  ``cost_usd`` is optional (the
        server prices tokens itself) and goes to ``gen_ai.usage.cost``.
        """
        for key, value in ((A.INPUT_TOKENS, input_tokens), (A.OUTPUT_TOKENS, output_tokens),
                           (A.CACHE_READ_TOKENS, cache_read_tokens),
                           (A.CACHE_CREATION_TOKENS, cache_creation_tokens),
                           (A.REASONING_TOKENS, reasoning_tokens)):
            count = A.non_negative_int(value)
            if count is not None:
                self.span.set_attribute(key, count)
        cost = A.finite_float(cost_usd)
        if cost is not None and cost >= 0:
            self.span.set_attribute(A.COST_USD, cost)

    @guarded
    def set_response(self, model: str | None = None, finish_reasons: list[str] | None = None,
                     response_id: str | None = None) -> None:
        """What the provider answered with: the actual model, finish reasons, response id."""
        if model:
            self.span.set_attribute(A.RESPONSE_MODEL, A.text(model, 256))
        if finish_reasons:
            self.span.set_attribute(A.FINISH_REASONS, [A.text(r, 64) for r in list(finish_reasons)[:32]])
        if response_id:
            self.span.set_attribute(A.RESPONSE_ID, A.text(response_id, 256))

    @guarded
    def set_output(self, messages: Any) -> None:
        """The model's output messages (``gen_ai.output.messages``) — only when content capture is on."""
        if messages is not None and _setup.capture_content():
            self.span.set_attribute(A.OUTPUT_MESSAGES, A.to_json(messages, _setup.max_value_chars()))
