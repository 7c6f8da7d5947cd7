"""Attribute names the SDK writes, and how values become span attributes safely.

Names follow the OpenTelemetry GenAI semantic conventions where one exists; everything
agenttrail adds on top lives under ``agenttrail.*`` so any backend can still read the spans.
"""

from __future__ import annotations

import json
import math
from typing import Any

# OpenTelemetry GenAI semantic conventions.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_VERSION = "gen_ai.agent.version"
CONVERSATION_ID = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
DATA_SOURCE_ID = "gen_ai.data_source.id"
ERROR_TYPE = "error.type"
USER_ID = "user.id"
ENVIRONMENT = "deployment.environment.name"

# agenttrail additions (not in semconv).
PROJECT = "agenttrail.project"
RUNBOOK = "agenttrail.runbook"
STEP_NAME = "agenttrail.step.name"
STEP_TYPE = "agenttrail.step.type"
ATTEMPT = "agenttrail.step.attempt"
COST_USD = "gen_ai.usage.cost"  # not semconv; the explicit-cost key agenttrail and others read
TOTALS_PREFIX = "agenttrail.totals."
FAILURE_EVENT = "agenttrail.failure"
DECISION_EVENT = "agenttrail.decision"
QUALITY_EVENT = "agenttrail.quality_signal"

FAILURE_TYPES = ("tool", "model", "retrieval", "orchestration")

DEFAULT_MAX_VALUE_CHARS = 16_384
TRUNCATED_MARK = "…[truncated]"


def to_json(value: Any, max_chars: int = DEFAULT_MAX_VALUE_CHARS) -> str:
    """``value`` as compact JSON, never raising, cut to ``max_chars``.

    Objects JSON cannot encode fall back to ``str()``; a string is used as it is, so a caller
    that already holds JSON text does not get it quoted twice.
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=_fallback, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            text = _fallback(value)
    return truncate(text, max_chars)


def truncate(text: str, max_chars: int = DEFAULT_MAX_VALUE_CHARS) -> str:
    """Cut ``text`` to ``max_chars`` characters, marking the cut so it is visible downstream."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    keep = max(0, max_chars - len(TRUNCATED_MARK))
    return text[:keep] + TRUNCATED_MARK


def text(value: Any, max_chars: int = DEFAULT_MAX_VALUE_CHARS) -> str:
    """``str(value)`` cut to ``max_chars``; never raises, even for objects whose ``__str__`` does."""
    return truncate(value if isinstance(value, str) else _fallback(value), max_chars)


def _fallback(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a __str__ that raises must not reach the agent
        return f"<unprintable {type(value).__name__}>"


def scalar(value: Any, max_chars: int = DEFAULT_MAX_VALUE_CHARS):
    """A value OpenTelemetry accepts as an attribute: bool, int, float, str or a list of str.

    Anything else (dicts, objects, None) becomes JSON text, so nothing is silently dropped.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # OTLP ints are signed 64-bit: a larger Python int would fail to encode the whole batch.
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return truncate(value, max_chars)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [truncate(v, max_chars) for v in list(value)[:1000]]
    return to_json(value, max_chars)


def clean_attributes(attributes: Any, max_chars: int = DEFAULT_MAX_VALUE_CHARS) -> dict:
    """A user-supplied mapping made safe to set on a span; non-mappings give an empty dict."""
    if not isinstance(attributes, dict):
        return {}
    out = {}
    for key, value in list(attributes.items())[:128]:
        if value is None:
            continue
        out[text(key, 256)] = scalar(value, max_chars)
    return out


def non_negative_int(value: Any) -> int | None:
    """``value`` as an int ≥ 0, or None when it is not a usable count (negative, NaN, text)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number < 2**63 else None


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
