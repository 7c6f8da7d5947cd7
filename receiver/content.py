"""Attribute values as stored text, bounded, and which attributes are message content.

Value rendering (``Map(String, String)`` columns):

* strings as they are; ints in decimal; bools ``true``/``false``; doubles in their shortest
  round-trip form (``0.7``, ``1e+16``, ``nan``);
* arrays → JSON arrays, kvlists → JSON objects (nested values rendered the same way, bytes
  inside them as base64 strings, non-finite doubles as strings);
* bytes → base64; an unset value → the empty string.

Bounding: every value (and key) is cut to at most ``max_bytes`` UTF-8 bytes on a character
boundary; the caller sets ``truncated = 1`` when :func:`bound` reports a cut.

Content — dropped unless content capture is on for the span's project, because it carries
prompts, completions, documents and tool results (personal data, secrets, megabytes):

* OTel GenAI: ``gen_ai.input.messages``, ``gen_ai.output.messages``,
  ``gen_ai.system_instructions``, ``gen_ai.tool.definitions`` (opt-in in the semconv: large and
  may embed prompt text), ``gen_ai.tool.call.result``, ``gen_ai.retrieval.query.text``,
  ``gen_ai.retrieval.documents``, deprecated ``gen_ai.prompt`` / ``gen_ai.completion`` and
  OpenLLMetry's indexed ``gen_ai.prompt.<n>.*`` / ``gen_ai.completion.<n>.*`` (except
  ``….finish_reason``, which is metadata; ``gen_ai.prompt.name`` is not content either);
* OpenInference: ``input.value``, ``output.value``, ``llm.input_messages.*``,
  ``llm.output_messages.*``, ``llm.prompts.*``, ``llm.choices.*``, ``llm.tools.*``,
  ``llm.prompt_template.template`` / ``.variables``, ``llm.function_call``,
  ``retrieval.documents.*``, ``reranker.query``, ``reranker.input_documents.*``,
  ``reranker.output_documents.*``, ``embedding.embeddings.*``;
* OpenLLMetry: ``traceloop.entity.input`` / ``traceloop.entity.output``,
  ``traceloop.prompt.template`` / ``.template_variables``, ``mcp.request.argument``,
  ``mcp.response.value``;
* Pydantic AI: ``pydantic_ai.all_messages``, ``all_messages_events``, ``final_result``,
  ``tool_response``, ``events`` (its v1 JSON list of message events).

Exception: on tool steps the attribute that carries the tool's arguments (``input.value``,
``traceloop.entity.input``, …) is kept — runbooks check tool arguments — the mapping decides
that (see :data:`TOOL_ARGUMENT_KEYS` there), not this module.

Span events named like message events (``gen_ai.content.prompt``, ``gen_ai.user.message``,
``gen_ai.choice``, …) keep their name and time but lose every attribute except
:data:`EVENT_METADATA_KEYS`; other events (``exception`` …) keep their attributes.
"""

from __future__ import annotations

import base64
import json
import math
from json.encoder import encode_basestring as json_string  # C-accelerated, keeps non-ASCII

CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.definitions", "gen_ai.tool.call.result", "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents", "gen_ai.prompt", "gen_ai.completion",
    "input.value", "output.value", "llm.prompt_template.template",
    "llm.prompt_template.variables", "llm.function_call", "reranker.query",
    "traceloop.entity.input", "traceloop.entity.output", "traceloop.prompt.template",
    "traceloop.prompt.template_variables", "mcp.request.argument", "mcp.response.value",
    "pydantic_ai.all_messages", "all_messages_events", "final_result", "tool_response", "events",
})

CONTENT_PREFIXES = (
    "llm.input_messages.", "llm.output_messages.", "llm.prompts.", "llm.choices.", "llm.tools.",
    "retrieval.documents.", "reranker.input_documents.", "reranker.output_documents.",
    "embedding.embeddings.",
)

# OpenLLMetry's indexed message attributes: content only when followed by a digit.
_INDEXED_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.")

CONTENT_EVENTS = frozenset({
    "gen_ai.content.prompt", "gen_ai.content.completion", "gen_ai.system.message",
    "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
})

EVENT_METADATA_KEYS = frozenset({
    "gen_ai.system", "gen_ai.provider.name", "role", "index", "finish_reason", "id",
    "gen_ai.response.finish_reasons",
})


def is_content_key(key: str) -> bool:
    """Whether attribute ``key`` holds message content (see the module docstring)."""
    if key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES):
        return True
    if key.startswith(_INDEXED_PREFIXES):
        rest = key.split(".", 3)[2:]
        return bool(rest) and rest[0].isdigit() and not key.endswith(".finish_reason")
    return False


def content_keys(keys) -> list[str]:
    """The content keys among ``keys``, with a C-speed pre-filter (this runs for every span)."""
    return [k for k in keys
            if (k in CONTENT_KEYS or k.startswith(CONTENT_PREFIXES) or k.startswith(_INDEXED_PREFIXES))
            and is_content_key(k)]


def bound(text: str, max_bytes: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes on a character boundary, and whether it was cut."""
    if len(text) * 4 <= max_bytes:  # cannot exceed: skip the encode on the hot path
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text, False
    # 'ignore' drops the partial character a byte cut may leave at the end.
    return raw[:max_bytes].decode("utf-8", "ignore"), True


def native(value):
    """An ``AnyValue`` as a JSON-ready Python value (bytes → base64, non-finite doubles → text)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "bool_value":
        return value.bool_value
    if which == "double_value":
        x = value.double_value
        return x if math.isfinite(x) else repr(x)
    if which == "array_value":
        return [native(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: native(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: hot path


def to_json(obj) -> str:
    """Compact JSON that keeps non-ASCII text readable."""
    return _ENCODER.encode(obj)


def value_text(value) -> str:
    """A non-empty-string ``AnyValue`` rendered as stored text (the caller handles plain strings)."""
    number = value.int_value  # the commonest non-string: skip WhichOneof when it is non-zero
    if number:
        return str(number)
    which = value.WhichOneof("value")
    if which == "double_value":
        return repr(value.double_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return "0"
    if which == "array_value":
        items = value.array_value.values
        strings = [item.string_value for item in items]
        if all(strings):  # the usual shape (finish reasons, stop sequences): no recursion
            return "[" + ",".join(map(json_string, strings)) + "]"
        return _ENCODER.encode([native(item) for item in items])
    if which == "kvlist_value":
        return _ENCODER.encode(native(value))
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return ""  # empty string_value or no value at all


__all__ = ["CONTENT_EVENTS", "CONTENT_KEYS", "CONTENT_PREFIXES", "EVENT_METADATA_KEYS", "bound",
           "content_keys", "is_content_key", "native", "to_json", "value_text"]
