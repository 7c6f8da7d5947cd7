"""Reading OTLP ``KeyValue`` lists into bounded str→str dicts, and tagging the keys that matter.

Every span attribute is read exactly once; in the same loop its key is looked up in a cache
of *tags* — what the key means to the mapping (a step field and its rank, message content,
unmapped usage) — so the rest of the mapping only looks at the handful of keys that matter.
"""

from __future__ import annotations

from . import conventions as c
from .content import bound, is_content_key, value_text

KEY_MAX_BYTES = 1024

# What an attribute key means to the mapping: (field or None, rank within the field, flags).
# Keys repeat across spans, so tags are cached per key.
CONTENT, UNMAPPED_USAGE, ARGUMENT, USAGE, CHOICE_FINISH_REASON = 1, 2, 4, 8, 16
BORING = (None, 0, 0)
_FIELD_RANKS = {key: (field, rank) for field, keys in c.FIELD_KEYS.items() for rank, key in enumerate(keys)}
_USAGE_FIELDS = frozenset([*c.TOKEN_FIELDS, "cost"])
_ARGUMENT_FIELDS = frozenset({"tool_arguments", "tool_step_arguments"})
_TAG_CACHE: dict[str, tuple] = {}
_TAG_CACHE_LIMIT = 100_000


def _compute_tag(key: str) -> tuple:
    field, rank = _FIELD_RANKS.get(key, (None, 0))
    flags = 0
    if is_content_key(key):
        flags |= CONTENT
    if key.startswith(c.UNMAPPED_PREFIXES) and key not in c.KNOWN_USAGE_KEYS:
        flags |= UNMAPPED_USAGE
    if field in _ARGUMENT_FIELDS:
        flags |= ARGUMENT
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
    """
    out, cut, _ = read_span_attributes(kvs, max_bytes, max_count, tag=False)
    return out, cut


def read_span_attributes(kvs, max_bytes: int, max_count: int, tag: bool = True):
    """:func:`read_attributes`, plus the (key, tag) pairs of the keys that matter (when ``tag``).

    Tagging in the same loop saves the mapping a second pass over every key; bounds are
    checked once per span afterwards, because nearly every value is short.
    """
    out: dict[str, str] = {}
    tagged: list[tuple[str, tuple]] = []
    cut = False
    hard_cap = 4 * max_count + 64
    if len(kvs) > hard_cap:
        kvs, cut = kvs[:hard_cap], True
    if tag:
        tags = _TAG_CACHE
        for kv in kvs:
            value = kv.value
            key = kv.key
            out[key] = value.string_value or value_text(value)
            found = tags.get(key) or tag_of(key)
            if found is not BORING:
                tagged.append((key, found))
    else:
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
    if out and max(map(len, out)) > KEY_MAX_BYTES // 4:
        out, tagged, keys_cut = _bound_keys(out, tagged)
        cut = cut or keys_cut
    return out, cut, tagged


def _bound_keys(out: dict[str, str], tagged: list) -> tuple[dict[str, str], list, bool]:
    renamed, cut = {}, False
    for key in out:
        short, was_cut = bound(key, KEY_MAX_BYTES)
        if was_cut:
            renamed[key], cut = short, True
    if not cut:
        return out, tagged, False
    out = {renamed.get(key, key): text for key, text in out.items()}
    return out, [(renamed.get(key, key), t) for key, t in tagged], True


def trim(attrs: dict[str, str], max_count: int) -> dict[str, str]:
    """The first ``max_count`` entries of ``attrs``."""
    return dict(list(attrs.items())[:max_count])


__all__ = ["ARGUMENT", "BORING", "CHOICE_FINISH_REASON", "CONTENT", "UNMAPPED_USAGE", "USAGE",
           "read_attributes", "read_span_attributes", "tag_of", "trim"]
