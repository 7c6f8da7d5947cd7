"""Say where a protobuf body is broken, after the fast parser has refused it.

upb (the protobuf runtime) reports only a category ("Wire format was corrupt", "String field
had bad UTF-8").  A client debugging its exporter needs the place: this module walks the
wire format against the message descriptor and names the first problem with an OTLP/JSON
style path, e.g. ``invalid UTF-8 in resourceSpans[0].scopeSpans[1].spans[3].name``.

It runs only on bodies that already failed to parse, yet must stay cheap (a hostile client
can send many bad 20 MiB bodies): a first pass asks the C parser about each submessage and
walks in Python only into those it refuses; a full walk, for the defects that only show in
context (nesting depth), runs only if the first pass found nothing, and gives up after
_MAX_FIELDS fields.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

__all__ = ["describe_problem"]

#: Same nesting limit as upb's default, so we flag what it refused.
MAX_DEPTH = 100

_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5


_MAX_FIELDS = 200_000


class _Problem(Exception):
    """The first defect found; its text is the whole diagnosis."""


class _OutOfBudget(Exception):
    """The full walk visited _MAX_FIELDS fields without finding the defect."""


class _Walk:
    """State of one pass: whether to trust the C parser for submessages, fields left to visit."""

    def __init__(self, trust_c_parser: bool):
        self.trust_c_parser = trust_c_parser
        self.fields_left = _MAX_FIELDS


def describe_problem(data: bytes, descriptor: Descriptor) -> str | None:
    """Return a sentence naming the first defect in ``data`` and its path, or None if none is found."""
    view = memoryview(data)
    for walk in (_Walk(trust_c_parser=True), _Walk(trust_c_parser=False)):
        try:
            _walk(walk, view, 0, len(data), descriptor, "", 1)
        except _Problem as problem:
            return str(problem)
        except _OutOfBudget:
            return None
    return None


def _walk(walk: _Walk, data: memoryview, pos: int, end: int, descriptor: Descriptor | None, path: str, depth: int) -> None:
    """Check the fields in ``data[pos:end]``; ``descriptor`` is None for an unknown message."""
    if depth > MAX_DEPTH:
        raise _Problem(f"messages nested deeper than {MAX_DEPTH} levels at {path or 'the top level'}")
    seen: dict[int, int] = {}
    while pos < end:
        tag_at = pos
        tag, pos = _varint(data, pos, end, path, "field tag")
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise _Problem(f"field number 0 at byte {tag_at}{_inside(path)}")
        field = descriptor.fields_by_number.get(number) if descriptor is not None else None
        index = seen.get(number, 0)
        seen[number] = index + 1
        where = _field_path(path, field, number, index)
        walk.fields_left -= 1
        if walk.fields_left < 0:
            raise _OutOfBudget
        pos = _skip_value(walk, data, pos, end, wire_type, field, where, depth)


def _skip_value(walk, data, pos, end, wire_type, field, where, depth) -> int:
    """Check one field value starting at ``pos``; return where the next field starts."""
    if wire_type == _VARINT:
        return _varint(data, pos, end, where, "varint")[1]
    if wire_type in (_FIXED64, _FIXED32):
        size = 8 if wire_type == _FIXED64 else 4
        if pos + size > end:
            raise _Problem(f"truncated {size}-byte value of {where}")
        return pos + size
    if wire_type == _LENGTH:
        length, pos = _varint(data, pos, end, where, "length")
        if pos + length > end:
            raise _Problem(f"{where} declares {length} bytes but only {end - pos} remain (truncated body?)")
        _check_payload(walk, data, pos, pos + length, field, where, depth)
        return pos + length
    if wire_type == _START_GROUP:
        return _skip_group(walk, data, pos, end, where, depth)
    raise _Problem(f"invalid wire type {wire_type} for {where}")


def _check_payload(walk, data, pos, end, field: FieldDescriptor | None, where, depth) -> None:
    """Validate a length-delimited payload the way the parser would for this field."""
    if field is None:
        return  # unknown field: kept as opaque bytes
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if walk.trust_c_parser and _parses(field.message_type, data[pos:end]):
            return
        _walk(walk, data, pos, end, field.message_type, where, depth + 1)
    elif field.type == FieldDescriptor.TYPE_STRING:
        try:
            bytes(data[pos:end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Problem(f"invalid UTF-8 in {where} (byte {exc.start} of the string)") from None


def _parses(descriptor: Descriptor, payload: memoryview) -> bool:
    """Whether the C parser accepts ``payload`` on its own (out of context: depth starts anew)."""
    try:
        GetMessageClass(descriptor).FromString(bytes(payload))
    except DecodeError:
        return False
    return True


def _skip_group(walk, data, pos, end, where, depth) -> int:
    """Skip a (deprecated) group up to its matching end-group tag."""
    if depth > MAX_DEPTH:
        raise _Problem(f"groups nested deeper than {MAX_DEPTH} levels at {where}")
    while pos < end:
        tag, pos = _varint(data, pos, end, where, "field tag")
        if tag & 7 == _END_GROUP:
            return pos
        pos = _skip_value(walk, data, pos, end, tag & 7, None, where, depth + 1)
    raise _Problem(f"group {where} has no end tag")


def _varint(data: memoryview, pos: int, end: int, where: str, what: str) -> tuple[int, int]:
    """Read a base-128 varint of at most 10 bytes."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise _Problem(f"truncated {what}{_inside(where)}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise _Problem(f"{what} longer than 10 bytes{_inside(where)}")


def _field_path(path: str, field: FieldDescriptor | None, number: int, index: int) -> str:
    name = field.json_name if field is not None else f"<unknown field {number}>"
    repeated = field is not None and _is_repeated(field)
    step = f"{name}[{index}]" if repeated else name
    return f"{path}.{step}" if path else step


def _is_repeated(field: FieldDescriptor) -> bool:
    # protobuf >= 6 has is_repeated (label is gone in 7); older releases only have label.
    try:
        return field.is_repeated
    except AttributeError:
        return field.label == FieldDescriptor.LABEL_REPEATED


def _inside(path: str) -> str:
    return f" in {path}" if path else " at the top level"
