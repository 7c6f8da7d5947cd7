"""Reading OTLP ``KeyValue`` lists into bounded str→str dicts, and planning what their keys mean.

Every span attribute is read exactly once.  What the keys mean to the mapping (a step field and
its rank, message content, unmapped usage) depends only on which keys a span has, in which order
— its *shape* — and one instrumentation emits the same few shapes again and again.  So a span's
shape is looked up in a cache of key plans (:class:`KeyPlan`), and the mapping reads just the
keys its plan names, in rank order, instead of weighing every key of every span.  A shape is
cached from its second sighting; until then (and for shapes that never repeat, with ids in their
keys) the span's tagged keys find a plan shared by every span whose keys mean the same.
"""

from __future__ import annotations

from typing import NamedTuple

from . import conventions as c
from .content import bound, is_content_key, value_text

KEY_MAX_BYTES = 1024

# What an attribute key means to the mapping: (field or None, rank within the field, flags).
# Keys repeat across spans, so tags are cached per key.
CONTENT, UNMAPPED_USAGE, USAGE, CHOICE_FINISH_REASON = 1, 2, 8, 16
BORING = (None, 0, 0)
_FIELD_RANKS = {key: (field, rank) for field, keys in c.FIELD_KEYS.items() for rank, key in enumerate(keys)}
_USAGE_FIELDS = frozenset([*c.TOKEN_FIELDS, "cost"])
_ARGUMENT_FIELDS = frozenset({"tool_arguments", "tool_step_arguments"})
_TAG_CACHE: dict[str, tuple] = {}
_TAG_CACHE_LIMIT = 100_000
_PLAN_CACHE_LIMIT = 10_000  # shapes: client-chosen keys must not grow memory forever


class KeyPlan(NamedTuple):
    """What one shape of span attributes means to the mapping.

    ``fields``: (field, its keys present in this shape best first, whether the field holds tool
    arguments); ``content``, ``unmapped`` and ``choices``: the keys holding message content,
    unknown usage counts and OpenLLMetry per-choice finish reasons, in attribute order;
    ``usage``: whether any key carries token counts or a cost.
    """

    fields: tuple[tuple[str, tuple[str, ...], bool], ...]
    content: tuple[str, ...]
    unmapped: tuple[str, ...]
    choices: tuple[str, ...]
    usage: bool


def plan_keys(tagged) -> KeyPlan:
    """The :class:`KeyPlan` of the (key, tag) pairs of a span's keys that are not boring."""
    by_field: dict[str, list[tuple[int, str]]] = {}
    content, unmapped, choices, usage = [], [], [], False
    for key, (field, rank, flags) in tagged:
        if field is not None:
            by_field.setdefault(field, []).append((rank, key))
        if flags:
            if flags & CONTENT:
                content.append(key)
            if flags & UNMAPPED_USAGE:
                unmapped.append(key)
            if flags & CHOICE_FINISH_REASON:
                choices.append(key)
            usage = usage or bool(flags & USAGE)
    fields = tuple((field, (ranked[0][1],) if len(ranked) == 1 else _unique(key for _, key in sorted(ranked)),
                    field in _ARGUMENT_FIELDS) for field, ranked in by_field.items())
    return KeyPlan(fields, _unique(content), _unique(unmapped), _unique(choices), usage)


def _unique(keys) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


# Plans by shape, and by the (key, tag) pairs that matter.  A shape enters the first cache on
# its second sighting: keys that carry ids (a request id, a message index) make shapes that never
# repeat, and caching each cost more than it saved.  Such spans still share a plan by what
# their keys mean.  A client chooses
# the keys, so the caches are bounded by what they hold, not only by their entries: a span may
# carry a thousand keys of 256 characters, and 10,000 such shapes would hold gigabytes.
_PLANS: dict[tuple[str, ...], KeyPlan] = {}
_SEEN: dict[tuple[str, ...], None] = {}
_PLANS_BY_MEANING: dict[tuple, KeyPlan] = {}
_PLAN_CACHE_UNITS = 16_000_000  # key characters, plus 64 per key for the objects: ~16 MB at most
_held_units = 0


def _units(keys: tuple[str, ...]) -> int:
    return sum(map(len, keys)) + 64 * len(keys)


def _remember(cache: dict, key: tuple, keys: tuple[str, ...], plan: KeyPlan | None) -> None:
    global _held_units
    units = _units(keys)
    if _held_units + units > _PLAN_CACHE_UNITS or len(cache) >= _PLAN_CACHE_LIMIT:
        _PLANS.clear()  # rare: start over rather than account for what each cache held
        _SEEN.clear()
        _PLANS_BY_MEANING.clear()
        _held_units = 0
    cache[key] = plan
    _held_units += units


def _plan_of(shape: tuple[str, ...]) -> KeyPlan:
    global _held_units
    plan = _PLANS.get(shape)
    if plan is not None:
        return plan
    tagged = tuple((key, tag) for key in shape if (tag := tag_of(key)) is not BORING)
    plan = _PLANS_BY_MEANING.get(tagged)
    if plan is None:
        plan = plan_keys(tagged)
        _remember(_PLANS_BY_MEANING, tagged, tuple(key for key, _ in tagged), plan)
    if shape in _SEEN:  # the second sighting: from the first cache on, this shape costs one lookup
        if _SEEN.pop(shape, _SEEN) is not _SEEN:  # another thread may have just cleared it
            _held_units -= _units(shape)
        _remember(_PLANS, shape, shape, plan)
    else:
        _remember(_SEEN, shape, shape, None)
    return plan


def _compute_tag(key: str) -> tuple:
    field, rank = _FIELD_RANKS.get(key, (None, 0))
    flags = 0
    if is_content_key(key):
        flags |= CONTENT
    if key.startswith(c.UNMAPPED_PREFIXES) and key not in c.KNOWN_USAGE_KEYS:
        flags |= UNMAPPED_USAGE
    if field in _USAGE_FIELDS:
        flags |= USAGE
    if field is None and key.startswith("gen_ai.completion.") and key.endswith(".finish_reason"):
        flags |= CHOICE_FINISH_REASON  # OpenLLMetry: one per choice
    if field is None and not flags:
        return BORING
    return (field, rank, flags)


def tag_of(key: str) -> tuple:
    """The cached tag of ``key`` (bounded: client-chosen keys must not grow memory forever)."""
    tag = _TAG_CACHE.get(key)
    if tag is None:
        tag = _compute_tag(key)
        if len(_TAG_CACHE) >= _TAG_CACHE_LIMIT:
            _TAG_CACHE.clear()
        _TAG_CACHE[key] = tag
    return tag


def read_attributes(kvs, max_bytes: int, max_count: int) -> tuple[dict[str, str], bool]:
    """OTLP ``KeyValue``s as a str→str dict, each key/value bounded; and whether anything was cut.

    All attributes are read (up to a hard cap that bounds CPU on hostile input) so mapped
    fields never depend on the order; the caller trims the stored map to ``max_count``.
    A key given twice keeps its first place and its last value.
    """
    out, cut = _read_values(kvs, max_bytes, max_count)
    if out and max(map(len, out)) > KEY_MAX_BYTES // 4:
        out, _, keys_cut = _bound_keys(out)
        cut = cut or keys_cut
    return out, cut


def read_span_attributes(kvs, max_bytes: int, max_count: int) -> tuple[dict[str, str], bool, KeyPlan]:
    """:func:`read_attributes`, plus the :class:`KeyPlan` of the keys read (the module docstring)."""
    out, cut = _read_values(kvs, max_bytes, max_count)
    if out and max(map(len, out)) > KEY_MAX_BYTES // 4:  # long keys: hostile or odd, never cached
        out, plan, keys_cut = _bound_keys(out)
        return out, cut or keys_cut, plan
    return out, cut, _plan_of(tuple(out))


def _read_values(kvs, max_bytes: int, max_count: int) -> tuple[dict[str, str], bool]:
    out: dict[str, str] = {}
    cut = False
    hard_cap = 4 * max_count + 64
    if len(kvs) > hard_cap:
        kvs, cut = kvs[:hard_cap], True
    for kv in kvs:
        value = kv.value
        out[kv.key] = value.string_value or value_text(value)
    # A value of n characters has at most 4n UTF-8 bytes: only long ones need a real check.
    if out and max(map(len, out.values())) * 4 > max_bytes:
        for key, text in out.items():
            if len(text) * 4 > max_bytes:
                text, was_cut = bound(text, max_bytes)
                if was_cut:
                    out[key], cut = text, True
    return out, cut


def _bound_keys(out: dict[str, str]) -> tuple[dict[str, str], KeyPlan, bool]:
    """Keys cut to :data:`KEY_MAX_BYTES`, whether any was, and the plan of the cut keys, which
    keeps what each uncut key meant."""
    renamed = {}
    for key in out:
        short, was_cut = bound(key, KEY_MAX_BYTES)
        if was_cut:
            renamed[key] = short
    tagged = [(renamed.get(key, key), tag) for key in out if (tag := tag_of(key)) is not BORING]
    if renamed:
        out = {renamed.get(key, key): text for key, text in out.items()}
    return out, plan_keys(tagged), bool(renamed)


def trim(attrs: dict[str, str], max_count: int) -> dict[str, str]:
    """The first ``max_count`` entries of ``attrs``."""
    return dict(list(attrs.items())[:max_count])


__all__ = ["BORING", "CHOICE_FINISH_REASON", "CONTENT", "UNMAPPED_USAGE", "USAGE", "KeyPlan",
           "plan_keys", "read_attributes", "read_span_attributes", "tag_of", "trim"]
