"""Strict runbook YAML parsing with line and column in every error.

The YAML is composed into a node tree (not ``safe_load``-ed) so each value keeps its source
mark.  Before composing, the event stream is screened: aliases and anchors (the billion-laughs
vector), explicit tags and multi-document streams are refused, and the text size is capped.
Then the tree is walked against the format: unknown keys, wrong types, out-of-range numbers
and malformed globs/regexes all become :class:`RunbookError` entries ``line:col path: why``.
"""

from __future__ import annotations

import math

import yaml

from agenttrail.analysis import FAILURE_CATEGORIES

from .patterns import PatternError, compile_glob, compile_regex
from .runbook import (BUDGET_KEYS, FLOAT_BUDGETS, STEP_KINDS, STEP_STATUSES, AppliesTo,
                      ArgumentRules, Loops, Matcher, Runbook, StepRule)

MAX_RUNBOOK_BYTES = 256 * 1024
MAX_LIST_ITEMS = 200
MAX_INT = 2**63 - 1
MAX_DEPTH = 16
MAX_EVENTS = 20_000
# libyaml when present: the pure-Python scanner takes seconds on a hostile 256 KiB flow list.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))


class RunbookError(ValueError):
    """The runbook is not valid; ``errors`` lists ``(line, column, path, message)`` (1-based)."""

    def __init__(self, errors: list[tuple[int, int, str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"line {l}, column {c}: {p + ': ' if p else ''}{m}"
                                   for l, c, p, m in errors))


class _Fail(Exception):
    def __init__(self, node, path: str, message: str):
        mark = getattr(node, "start_mark", None) or node
        self.entry = (mark.line + 1, mark.column + 1, path, message) if mark else (1, 1, path, message)


def parse_runbook(text: str | bytes) -> Runbook:
    """Parse and check a runbook; raise :class:`RunbookError` on anything off-format."""
    if isinstance(text, bytes):
        if len(text) > MAX_RUNBOOK_BYTES:
            raise RunbookError([(1, 1, "", f"runbook is larger than {MAX_RUNBOOK_BYTES} bytes")])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RunbookError([(1, 1, "", f"runbook is not UTF-8: {exc}")]) from None
    if not isinstance(text, str):
        raise RunbookError([(1, 1, "", "runbook must be YAML text")])
    if len(text.encode("utf-8", "surrogatepass")) > MAX_RUNBOOK_BYTES:
        raise RunbookError([(1, 1, "", f"runbook is larger than {MAX_RUNBOOK_BYTES} bytes")])
    root = _compose(text)
    try:
        return _build(root, text)
    except _Fail as fail:
        raise RunbookError([fail.entry]) from None


def _compose(text: str):
    try:
        documents = depth = 0
        for count, event in enumerate(yaml.parse(text, Loader=_LOADER)):
            if count > MAX_EVENTS:
                raise _Fail(event.start_mark, "", f"runbook has more than {MAX_EVENTS} YAML nodes")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Fail(event.start_mark, "", f"nesting deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.AliasEvent):
                raise _Fail(event.start_mark, "", "YAML aliases are not allowed in runbooks")
            if getattr(event, "anchor", None):
                raise _Fail(event.start_mark, "", "YAML anchors are not allowed in runbooks")
            if getattr(event, "tag", None) not in (None, "!"):
                raise _Fail(event.start_mark, "", f"YAML tags ({event.tag}) are not allowed in runbooks")
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _Fail(event.start_mark, "", "a runbook is a single YAML document")
        node = yaml.compose(text, Loader=_LOADER)
    except _Fail as fail:
        raise RunbookError([fail.entry]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RunbookError([(line, col, "", f"invalid YAML: {exc.problem or exc.context}")]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise RunbookError([(1, 1, "", f"invalid YAML: {type(exc).__name__}")]) from None
    if node is None:
        raise RunbookError([(1, 1, "", "runbook is empty")])
    return node


# -- typed accessors: each raises _Fail with the node's position --------------------------

def _mapping(node, path: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise _Fail(node, path, "expected a mapping")
    out = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
            raise _Fail(key_node, path, "keys must be strings")
        key = key_node.value
        where = f"{path}.{key}" if path else key
        if key not in keys:
            raise _Fail(key_node, where, f"unknown key (expected one of: {', '.join(keys)})")
        if key in out:
            raise _Fail(key_node, where, "duplicate key")
        out[key] = value_node
    return out


def _str(node, path: str, max_len: int = 1000) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        raise _Fail(node, path, "expected a string")
    if len(node.value) > max_len:
        raise _Fail(node, path, f"string longer than {max_len} characters")
    return node.value


def _number(node, path: str, *, integer: bool) -> float | int:
    allowed = (_INT,) if integer else (_INT, _FLOAT)
    if not isinstance(node, yaml.ScalarNode) or node.tag not in allowed:
        raise _Fail(node, path, "expected an integer" if integer else "expected a number")
    try:
        value = yaml.SafeLoader("").construct_object(node)
    except (ValueError, yaml.YAMLError):
        raise _Fail(node, path, "not a valid number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _Fail(node, path, "must be finite")
    if value < 0 or value > MAX_INT:
        raise _Fail(node, path, f"must be between 0 and {MAX_INT}")
    return value


def _list(node, path: str, max_items: int = MAX_LIST_ITEMS) -> list:
    if not isinstance(node, yaml.SequenceNode):
        raise _Fail(node, path, "expected a list")
    if len(node.value) > max_items:
        raise _Fail(node, path, f"at most {max_items} items")
    return node.value


def _glob(node, path: str):
    text = _str(node, path)
    try:
        return compile_glob(text)
    except PatternError as exc:
        raise _Fail(node, path, str(exc)) from None


def _globs(node, path: str) -> tuple:
    return tuple(_glob(item, f"{path}[{i}]") for i, item in enumerate(_list(node, path)))


# -- the format ----------------------------------------------------------------------------

_TOP = ("version", "name", "description", "applies_to", "allowed_tools", "denied_tools",
        "required_steps", "budgets", "steps", "loops", "forbid_failure_categories", "max_retries")


def _build(root, text: str) -> Runbook:
    top = _mapping(root, "", _TOP)
    fields = {"source": text}
    if "version" in top:
        fields["version"] = _number(top["version"], "version", integer=True)
        if fields["version"] != 1:
            raise _Fail(top["version"], "version", "only runbook format version 1 exists")
    for key in ("name", "description"):
        if key in top:
            fields[key] = _str(top[key], key, 200 if key == "name" else 5000)
    if "applies_to" in top:
        m = _mapping(top["applies_to"], "applies_to", ("agent", "service", "project"))
        fields["applies_to"] = AppliesTo(**{k: _glob(v, f"applies_to.{k}") for k, v in m.items()})
    if "allowed_tools" in top:
        fields["allowed_tools"] = _globs(top["allowed_tools"], "allowed_tools")
    if "denied_tools" in top:
        fields["denied_tools"] = _globs(top["denied_tools"], "denied_tools")
    if "required_steps" in top:
        items = _list(top["required_steps"], "required_steps", 64)
        fields["required_steps"] = tuple(_matcher(n, f"required_steps[{i}]") for i, n in enumerate(items))
    if "budgets" in top:
        m = _mapping(top["budgets"], "budgets", BUDGET_KEYS)
        fields["budgets"] = tuple(
            (k, _number(m[k], f"budgets.{k}", integer=k not in FLOAT_BUDGETS))
            for k in BUDGET_KEYS if k in m)
    if "steps" in top:
        items = _list(top["steps"], "steps", 64)
        fields["steps"] = tuple(_step_rule(n, f"steps[{i}]") for i, n in enumerate(items))
    if "loops" in top:
        m = _mapping(top["loops"], "loops", ("max_repeats", "max_retries_per_tool"))
        fields["loops"] = Loops(**{k: _number(v, f"loops.{k}", integer=True) for k, v in m.items()})
    if "forbid_failure_categories" in top:
        fields["forbid_failure_categories"] = _categories(top["forbid_failure_categories"], "forbid_failure_categories")
    if "max_retries" in top:
        fields["max_retries"] = _number(top["max_retries"], "max_retries", integer=True)
    return Runbook(**fields)


def _categories(node, path: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(node, path, len(FAILURE_CATEGORIES))):
        category = _str(item, f"{path}[{i}]", 64)
        if category not in FAILURE_CATEGORIES:
            raise _Fail(item, f"{path}[{i}]", f"unknown failure category (expected one of: {', '.join(FAILURE_CATEGORIES)})")
        if category in out:
            raise _Fail(item, f"{path}[{i}]", "listed twice")
        out.append(category)
    return tuple(out)


def _matcher(node, path: str) -> Matcher:
    m = _mapping(node, path, ("name", "tool", "kind"))
    if not m:
        raise _Fail(node, path, "a step matcher needs at least one of name, tool, kind")
    fields = {k: _glob(m[k], f"{path}.{k}") for k in ("name", "tool") if k in m}
    if "kind" in m:
        kind = _str(m["kind"], f"{path}.kind")
        if kind not in STEP_KINDS:
            raise _Fail(m["kind"], f"{path}.kind", f"unknown kind (expected one of: {', '.join(STEP_KINDS)})")
        fields["kind"] = kind
    return Matcher(**fields)


def _step_rule(node, path: str) -> StepRule:
    m = _mapping(node, path, ("match", "max_latency_ms", "status", "max_count", "min_count", "arguments"))
    if "match" not in m:
        raise _Fail(node, path, "missing required key 'match'")
    fields = {"match": _matcher(m["match"], f"{path}.match")}
    if "max_latency_ms" in m:
        fields["max_latency_ms"] = _number(m["max_latency_ms"], f"{path}.max_latency_ms", integer=False)
    for key in ("max_count", "min_count"):
        if key in m:
            fields[key] = _number(m[key], f"{path}.{key}", integer=True)
    if "status" in m:
        status = _str(m["status"], f"{path}.status")
        if status not in STEP_STATUSES:
            raise _Fail(m["status"], f"{path}.status", f"expected one of: {', '.join(STEP_STATUSES)}")
        fields["status"] = status
    if "arguments" in m:
        fields["arguments"] = _arguments(m["arguments"], f"{path}.arguments")
    if len(fields) == 1:
        raise _Fail(node, path, "a step rule needs at least one constraint besides 'match'")
    return StepRule(**fields)


def _arguments(node, path: str) -> ArgumentRules:
    m = _mapping(node, path, ("required", "url_allowlist", "matches"))
    fields = {}
    if "required" in m:
        fields["required"] = tuple(_str(n, f"{path}.required[{i}]", 200)
                                   for i, n in enumerate(_list(m["required"], f"{path}.required")))
    if "url_allowlist" in m:
        fields["url_allowlist"] = _globs(m["url_allowlist"], f"{path}.url_allowlist")
    if "matches" in m:
        mm = m["matches"]
        if not isinstance(mm, yaml.MappingNode) or len(mm.value) > MAX_LIST_ITEMS:
            raise _Fail(mm, f"{path}.matches", f"expected a mapping of argument name to regex (at most {MAX_LIST_ITEMS})")
        pairs = []
        for key_node, value_node in mm.value:
            key = _str(key_node, f"{path}.matches", 200)
            if key in dict(pairs):
                raise _Fail(key_node, f"{path}.matches.{key}", "duplicate key")
            try:
                pairs.append((key, compile_regex(_str(value_node, f"{path}.matches.{key}"))))
            except PatternError as exc:
                raise _Fail(value_node, f"{path}.matches.{key}", str(exc)) from None
        fields["matches"] = tuple(pairs)
    if not any(fields.values()):
        raise _Fail(node, path, "arguments needs at least one non-empty check")
    return ArgumentRules(**fields)
