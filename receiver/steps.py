"""What a span's attributes say about its step: kind, model, tool, tokens, cost, content.

Rules (names and priorities in :mod:`.conventions`):

* kind by ``gen_ai.operation.name``, then ``openinference.span.kind``, ``traceloop.span.kind``,
  ``llm.request.type``, ``agenttrail.step.type`` (the agenttrail SDK), else ``other``;
  ``operation`` is ``gen_ai.operation.name`` verbatim, else the value that decided the kind;
* ``tool_arguments`` is a JSON text: a JSON string value is kept as is, structured values are
  encoded, plain text becomes a JSON string; OpenLLMetry's ``{"args": [], "kwargs": {...}}``
  is unwrapped to the kwargs object.  Tool arguments are kept even when content is not
  captured (runbooks check them) — including the attribute that carried them;
* tokens: cache read/creation are part of input (OTel); an instrumentation that reports them
  *on top of* input (cache > input, impossible otherwise) has them added to input.
  ``total_tokens`` = explicit total, else input + output.  Counts that are negative,
  non-numeric or above 10^12 are ignored (they stay in ``attributes``);
* unknown ``gen_ai.usage.*`` / ``llm.token_count.*`` / ``llm.usage.*`` keys are copied to
  ``unmapped_usage`` and reported; ``gen_ai.aggregated_usage.*`` (Pydantic AI agent spans:
  the run's cumulative usage) stays an attribute only, so nothing is counted twice;
* cost: an explicit cost attribute (``cost_source='attribute'``), else the price table for
  llm/embedding steps that have a model and reported usage (``'price_table'``), else None;
* error type: ``error.type``, else the first ``exception`` event's ``exception.type``, else
  ``error`` when the status is ERROR, else ''.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

from . import conventions as c
from .attributes import KeyPlan
from .content import to_json

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}
MAX_TOKENS = 10**12
MAX_COST_USD = 1e9
_PRICED_KINDS = frozenset({"llm", "embedding"})


def _count(text: str) -> int | None:
    try:
        n = int(text)
    except ValueError:
        try:
            x = float(text)
        except ValueError:
            return None
        if not math.isfinite(x):
            return None
        n = int(x)
    return n if 0 <= n <= MAX_TOKENS else None


def _cost(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) and 0 <= x <= MAX_COST_USD else None


def _string_list(text: str) -> list[str]:
    if text.startswith('["') and text.endswith('"]') and "\\" not in text:
        parts = text[2:-2].split('","')  # compact JSON array of plain strings: no parse needed
        if not any('"' in part for part in parts):
            return parts
    if text.startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError):
            return [text]
        if isinstance(items, list):
            return [item if isinstance(item, str) else to_json(item) for item in items]
    return [text]


def tool_arguments_json(text: str) -> str:
    """Tool arguments as JSON text (see the module docstring)."""
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        parsed, end = _scan_json(stripped, 0)  # the C scanner, without json.loads' regex passes
    except (StopIteration, ValueError, RecursionError):  # not JSON, or hostile nesting
        return to_json(text)
    if end != len(stripped):
        return to_json(text)  # JSON followed by something else is not JSON
    if (isinstance(parsed, dict) and "kwargs" in parsed and len(parsed) == 2 and "args" in parsed
            and not parsed["args"] and isinstance(parsed["kwargs"], dict)):
        return to_json(parsed["kwargs"])  # OpenLLMetry's @tool wrapper shape
    return stripped


_scan_json = json.JSONDecoder().scan_once


class Fields(NamedTuple):
    """The step columns derived from one span's attributes."""

    kind: str
    operation: str
    model: str
    provider: str
    tool_name: str
    tool_call_id: str
    tool_arguments: str
    agent_name: str
    session_id: str
    user_id: str
    environment: str
    error_type: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_usd: float | None
    cost_source: str
    finish_reasons: list
    unmapped_usage: dict


class StepFields:
    """Extracts :class:`Fields`; holds the price table and collects unmapped usage keys."""

    def __init__(self, prices, unmapped_keys: set[str]):
        self.prices = prices
        self.unmapped_keys = unmapped_keys

    def extract(self, attrs: dict[str, str], plan: KeyPlan, capture: bool,
                exception_type: str, status_code: int, start_ns: int | None = None) -> Fields:
        """:class:`Fields` from ``attrs``, whose keys' meaning is ``plan`` (:mod:`.attributes`).

        Drops content keys from ``attrs`` unless ``capture`` (tool arguments excepted).
        ``start_ns``, the span's start, picks the price of a model whose price changes with
        the time of day.
        """
        values: dict[str, str] = {}  # field -> its best non-empty value
        sources: dict[str, str] = {}  # field -> key, kept for the tool-argument fields only
        for field, keys, is_argument in plan.fields:
            for key in keys:
                value = attrs[key]
                if value:
                    values[field] = value
                    if is_argument:
                        sources[field] = key
                    break
        get = values.get
        kind, operation = _kind(get)
        argument_field = "tool_arguments" if "tool_arguments" in values else (
            "tool_step_arguments" if kind == "tool" and "tool_step_arguments" in values else None)
        unmapped = {key: attrs[key] for key in plan.unmapped}
        choice_reasons = [attrs[key] for key in plan.choices if attrs[key]] if kind == "llm" else []
        if plan.content and not capture:
            keep = sources[argument_field] if argument_field else None
            for key in plan.content:
                if key != keep:
                    del attrs[key]
        if unmapped:
            self.unmapped_keys.update(unmapped)
        reasons = get("finish_reasons")
        entity = get("entity_name", "")
        model = get("model", "")
        tokens, cost, cost_source = self._usage(get, kind, model, start_ns) if plan.usage else _NO_USAGE
        return _new_fields(Fields, (
            kind, operation, model, get("provider", ""),
            get("tool_name") or (entity if kind == "tool" else ""),
            get("tool_call_id", ""),
            tool_arguments_json(values[argument_field]) if argument_field else "",
            get("agent_name") or (entity if kind == "agent" and "traceloop_kind" in values else ""),
            get("session_id", ""), get("user_id", ""), get("environment", ""),
            get("error_type") or exception_type or ("error" if status_code == 2 else ""),
            *tokens, cost, cost_source,
            _string_list(reasons) if reasons else choice_reasons,
            unmapped,
        ))

    def _usage(self, get, kind: str, model: str,
               start_ns: int | None) -> tuple[tuple[int, ...], float | None, str]:
        """(input, output, cache read, cache creation, reasoning, total), cost, cost source."""
        counts = {}
        for field in _TOKEN_FIELDS:
            text = get(field)
            if text:
                n = _count(text)
                if n is not None:
                    counts[field] = n
        inp, out = counts.get("input", 0), counts.get("output", 0)
        read, write = counts.get("cache_read", 0), counts.get("cache_creation", 0)
        if read + write > inp:
            inp += read + write  # reported exclusive of cache: make it inclusive, as OTel defines
        tokens = (inp, out, read, write, counts.get("reasoning", 0), counts.get("total", inp + out))
        explicit = get("cost")
        cost = _cost(explicit) if explicit else None
        if cost is not None:
            return tokens, cost, "attribute"
        if counts and kind in _PRICED_KINDS and model:
            priced = self.prices.cost(model, inp, out, read, write, at_ns=start_ns)  # off-peak prices
            if priced is not None:
                return tokens, priced, "price_table"
        return tokens, None, ""


_TOKEN_FIELDS = tuple(c.TOKEN_FIELDS)
_NO_USAGE = ((0, 0, 0, 0, 0, 0), None, "")
_new_fields = tuple.__new__  # skips NamedTuple's Python-level __new__ on the hot path


def _kind(value) -> tuple[str, str]:
    operation = value("operation", "")
    kind = c.OPERATION_KINDS.get(operation)
    if kind is not None:
        return kind, operation
    for field, table in (("openinference_kind", c.OPENINFERENCE_KINDS),
                         ("traceloop_kind", c.TRACELOOP_KINDS),
                         ("request_type", c.REQUEST_TYPE_KINDS),
                         ("agenttrail_kind", c.AGENTTRAIL_KINDS)):
        found = value(field)
        if found:
            kind = table.get(found.upper() if field == "openinference_kind" else found.lower(), "other")
            return kind, operation or found.lower()
    return "other", operation


__all__ = ["Fields", "SPAN_KINDS", "STATUS_NAMES", "StepFields", "tool_arguments_json"]
