"""OTLP/JSON <-> protobuf messages.

OTLP/JSON is proto3 JSON with one twist that breaks ``json_format`` used naively: trace and
span ids (``traceId``, ``spanId``, ``parentSpanId``, the ids of links, log records and
exemplars) are **hex** strings, case-insensitive, where proto3 JSON would use base64.

Two paths: :mod:`.fast_json` builds the message in one constructor call and reads ids as hex;
when it is unsure, the slow path rewrites exactly the id fields from hex to base64 (naming
the path of any that is not hex) and hands the document to ``json_format.ParseDict``, which
accepts what OTLP allows (lowerCamelCase or snake_case keys, enums as integers or names,
64-bit integers as strings or numbers, unknown fields ignored) and explains what it refuses.

Ids of valid hex but the wrong length pass through as bytes: the mapping layer rejects such
spans one by one (a partial success) rather than failing the whole request here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable

from google.protobuf import json_format
from google.protobuf.message import Message

from .errors import MalformedPayload
from .fast_json import parse_document

__all__ = ["message_to_json", "parse_json", "request_to_json"]

# Where the hex ids live, per top-level request field.  A node maps a JSON key to its child
# node; "@ids" lists the id keys of the objects at that level.  Singular messages (a metric's
# gauge, sum, ...) and repeated ones are walked alike.
_SPAN = {"@ids": ("traceId", "spanId", "parentSpanId"), "links": {"@ids": ("traceId", "spanId")}}
_EXEMPLARS = {"dataPoints": {"exemplars": {"@ids": ("traceId", "spanId")}}}
_ID_TREE = {
    "resourceSpans": {"scopeSpans": {"spans": _SPAN}},
    "resourceLogs": {"scopeLogs": {"logRecords": {"@ids": ("traceId", "spanId")}}},
    "resourceMetrics": {
        "scopeMetrics": {
            "metrics": {kind: _EXEMPLARS for kind in ("gauge", "sum", "histogram", "exponentialHistogram")}
        }
    },
}


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


class _Node:
    """One level of the id tree with every key spelled both ways (camelCase and snake_case)."""

    def __init__(self, spec: dict):
        self.ids = _spellings(spec.get("@ids", ()))
        self.children = [
            (name, _Node(child)) for key, child in spec.items() if key != "@ids" for name in _spellings([key])
        ]


def _spellings(keys) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for key in keys for name in (key, _snake(key))))


_ID_NODE = _Node(_ID_TREE)


# json_format's own limit on message nesting (AnyValue kvlists and arrays nest); the binary
# parser (upb) stops at the same depth, so both encodings accept the same documents.
_MAX_MESSAGE_DEPTH = 100
_UTF8_BOM = "\ufeff"
_NESTED_PREFIX = re.compile(r"(?:Failed to parse \w+ field: )+")
_NESTED_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_MAX_MESSAGE = 500


def parse_json(body: bytes, message_class: type[Message]) -> Message:
    """Decode an OTLP/JSON body into a new ``message_class`` (an Export*ServiceRequest).

    An empty body or ``{}`` is a valid empty request.  Anything that is not UTF-8, not JSON,
    not a JSON object, nested too deeply, or not the request's shape raises
    :class:`MalformedPayload` with a message naming the problem and, where known, its path.
    """
    document = _load_object(body)
    if document is None:
        return message_class()
    message = parse_document(document, message_class)
    if message is not None:
        return message
    # The fast path was unsure: json_format decides, and explains any refusal.
    return _parse_with_json_format(document, message_class)


def _parse_with_json_format(document: dict, message_class: type[Message]) -> Message:
    """The reference path: hex ids to base64 in place, then ``json_format.ParseDict``."""
    message = message_class()
    _rewrite_ids(document, _ID_NODE, "", _hex_to_base64)
    try:
        json_format.ParseDict(
            document, message, ignore_unknown_fields=True, max_recursion_depth=_MAX_MESSAGE_DEPTH
        )
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPayload(f"invalid OTLP/JSON {message.DESCRIPTOR.name}: {_innermost(exc)}") from None
    return message


def request_to_json(message: Message) -> bytes:
    """Encode a request message as OTLP/JSON: hex ids, lowerCamelCase keys, integer enums."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    _rewrite_ids(document, _ID_NODE, "", _base64_to_hex)
    return json.dumps(document, separators=(",", ":")).encode()


def message_to_json(message: Message) -> bytes:
    """Encode a message without ids (responses, ``google.rpc.Status``) as compact JSON."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(document, separators=(",", ":")).encode()


def _load_object(body: bytes) -> dict | None:
    """Decode ``body`` to a JSON object; None for an empty body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"invalid UTF-8 in JSON body at byte {exc.start}: {exc.reason}") from None
    text = text.removeprefix(_UTF8_BOM)
    if not text.strip():
        return None
    try:
        document = json.loads(text)
    except RecursionError:
        raise MalformedPayload("JSON body is nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError says where; other ValueErrors (e.g. a 5,000-digit integer) say what.
        raise MalformedPayload(f"invalid JSON body: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedPayload(f"OTLP/JSON body must be a JSON object, got {_json_type(document)}")
    return document


def _rewrite_ids(node: dict, tree: _Node, path: str, convert: Callable[[object, str], str]) -> None:
    """Apply ``convert`` to every id field of ``node`` that ``tree`` describes, in place."""
    for name in tree.ids:
        value = node.get(name)
        if value is not None:
            node[name] = convert(value, path + name)
    for name, subtree in tree.children:
        child = node.get(name)
        if isinstance(child, list):
            for index, item in enumerate(child):
                if isinstance(item, dict):
                    _rewrite_ids(item, subtree, f"{path}{name}[{index}].", convert)
        elif isinstance(child, dict):
            _rewrite_ids(child, subtree, f"{path}{name}.", convert)
        # Any other type is left to ParseDict, which reports it with its path.


def _hex_to_base64(value: object, path: str) -> str:
    """Hex id (either case) to the base64 json_format expects for a bytes field."""
    if not isinstance(value, str):
        raise MalformedPayload(f"{path} must be a hex string, got {_json_type(value)}")
    try:
        raw = binascii.a2b_hex(value)
    except (binascii.Error, ValueError):
        raise MalformedPayload(f"invalid hex in {path}: {_preview(value)}") from None
    return base64.b64encode(raw).decode("ascii")


def _base64_to_hex(value: object, path: str) -> str:
    return base64.b64decode(value).hex()


def _innermost(exc: Exception) -> str:
    """The cause of a json_format error, with the path of the field it was in.

    json_format wraps each level as "Failed to parse X field: ..." and only sometimes ends
    with "at Request.a[0].b"; keep the cause first, then the best path available.
    """
    text = str(exc).strip().rstrip(".")
    fields = _NESTED_FIELD.findall(text)
    cause = _NESTED_PREFIX.sub("", text)
    if fields and " at " not in cause:
        cause = f"{cause} at {'.'.join(fields)}"
    return cause if len(cause) <= _MAX_MESSAGE else cause[:_MAX_MESSAGE] + "..."


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _preview(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
