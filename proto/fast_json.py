"""Fast path from a parsed OTLP/JSON document to a message (3-5x quicker than json_format).

``json_format.ParseDict`` sets fields one by one from Python (``bench/decode_bench.py`` times both).
Here a plan built once per message type turns the document into nested constructor keyword
arguments (snake_case names, ints, bytes, enum numbers), and the protobuf runtime builds the
whole message in one C call.  Ids (``trace_id``, ``span_id``, ``parent_span_id``) are read
as hex here directly.

The fast path only ever *accepts* documents json_format would accept the same way: at the
first thing it is not sure of (a type it does not expect, a string number with spaces, NaN,
a oneof set twice, a field given twice, deep nesting, a value the runtime refuses) it gives
up and returns None, and the caller runs the slow path, which either accepts the document or
explains precisely what is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["parse_document"]

#: Below json_format's own limit (100), so anything near it goes to the slow path.
MAX_DEPTH = 90
_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
_SKIP = object()  # an unknown enum name: json_format (ignoring unknown fields) drops the field

Converter = Callable[[object, int], object]


class _GiveUp(Exception):
    """Leave this document to json_format."""


def parse_document(document: dict, message_class: type[Message]) -> Message | None:
    """Build ``message_class`` from an OTLP/JSON object, or None if the slow path must decide."""
    try:
        return message_class(**_convert_message(document, _plan(message_class.DESCRIPTOR), 1))
    except (_GiveUp, ValueError, TypeError, OverflowError, RecursionError):
        return None


class _Plan:
    """For one message type: JSON key (camelCase or snake_case) -> (field, converter, oneof)."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, tuple[str, Converter, str | None]] = {}


_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Descriptor) -> _Plan:
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _Plan()
        for field in descriptor.fields:
            oneof = field.containing_oneof.name if field.containing_oneof is not None else None
            entry = (field.name, _converter(field), oneof)
            plan.fields[field.name] = plan.fields[field.json_name] = entry
        # Published only once complete, so a thread never sees a half-filled plan (which would
        # silently drop fields as unknown); two threads may build it twice, which is harmless.
        # Nested types are planned lazily, on first use, so recursion (AnyValue) needs nothing.
        _PLANS[descriptor.full_name] = plan
    return plan


def _convert_message(value: object, plan: _Plan, depth: int) -> dict:
    if type(value) is not dict or depth > MAX_DEPTH:
        raise _GiveUp
    kwargs: dict = {}
    oneofs: set[str] = set()
    for key, item in value.items():
        entry = plan.fields.get(key)
        if entry is None or item is None:
            continue  # unknown fields are ignored; null means "not set"
        name, convert, oneof = entry
        if name in kwargs or oneof in oneofs:
            raise _GiveUp  # the same field twice (camel and snake) or two members of a oneof
        converted = convert(item, depth)
        if converted is _SKIP:
            continue
        kwargs[name] = converted
        if oneof is not None:
            oneofs.add(oneof)
    return kwargs


def _converter(field: FieldDescriptor) -> Converter:
    single = _single_converter(field)
    if not _is_repeated(field):
        return single

    def repeated(value: object, depth: int) -> list:
        if type(value) is not list:
            raise _GiveUp
        items = [single(item, depth) for item in value]
        if _SKIP in items:
            raise _GiveUp
        return items

    return repeated


def _single_converter(field: FieldDescriptor) -> Converter:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message_type = field.message_type
        if message_type.GetOptions().map_entry or message_type.full_name.startswith("google.protobuf."):
            return _give_up  # maps and well-known types have JSON forms of their own
        return lambda value, depth: _convert_message(value, _plan(message_type), depth + 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        by_name = {v.name: v.number for v in field.enum_type.values}
        return lambda value, depth: _enum(value, by_name)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _hex if field.name in _ID_FIELDS else _base64
    return _SCALARS.get(field.cpp_type, _give_up)


def _give_up(value: object, depth: int) -> object:
    raise _GiveUp


def _integer(value: object, depth: int) -> int:
    kind = type(value)
    if kind is int:
        return value
    if kind is str and " " not in value:
        return int(value)  # ValueError for "soon": the slow path explains
    if kind is float and value.is_integer():
        return int(value)
    raise _GiveUp


def _double(value: object, depth: int) -> float:
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return float(value)
    raise _GiveUp  # "NaN", "Infinity", strings: rare, left to json_format


def _boolean(value: object, depth: int) -> bool:
    if type(value) is bool:
        return value
    raise _GiveUp


def _string(value: object, depth: int) -> str:
    if type(value) is str:
        return value  # lone surrogates make the constructor raise: slow path then explains
    raise _GiveUp


def _hex(value: object, depth: int) -> bytes:
    if type(value) is not str:
        raise _GiveUp
    try:
        return binascii.a2b_hex(value)
    except (binascii.Error, ValueError):
        raise _GiveUp from None


def _base64(value: object, depth: int) -> bytes:
    if type(value) is not str:
        raise _GiveUp
    encoded = value.encode("utf-8")
    # Exactly json_format's decoding, lenient padding included, so both paths agree.
    return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))


def _enum(value: object, by_name: dict[str, int]) -> object:
    kind = type(value)
    if kind is int:
        return value
    if kind is str:
        return by_name.get(value, _SKIP)
    raise _GiveUp


_SCALARS: dict[int, Converter] = {
    FieldDescriptor.CPPTYPE_INT32: _integer,
    FieldDescriptor.CPPTYPE_INT64: _integer,
    FieldDescriptor.CPPTYPE_UINT32: _integer,
    FieldDescriptor.CPPTYPE_UINT64: _integer,
    FieldDescriptor.CPPTYPE_DOUBLE: _double,
    FieldDescriptor.CPPTYPE_BOOL: _boolean,
    FieldDescriptor.CPPTYPE_STRING: _string,
}


def _is_repeated(field: FieldDescriptor) -> bool:
    # protobuf >= 6 has is_repeated (label is gone in 7); older releases only have label.
    try:
        return field.is_repeated
    except AttributeError:
        return field.label == FieldDescriptor.LABEL_REPEATED
