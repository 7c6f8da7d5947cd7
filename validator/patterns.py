"""Name globs and argument regexes that mean the same thing in Python and in ClickHouse.

A runbook's names are fnmatch-style globs (``*``, ``?``, ``[abc]``, ``[!abc]``).  Each is
translated once into a regular expression written in the subset of syntax that Python's
``re`` and RE2 (ClickHouse's ``match()``) read alike, so the reference evaluator and the
compiled SQL agree on every name.  User regexes (``arguments.matches``) are checked against
the same subset: constructs RE2 lacks (look-around, back-references, atomic groups,
possessive quantifiers) are rejected up front instead of failing inside a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_PATTERN_LENGTH = 1000

# Characters that mean something in a regex outside a bracket class.
_REGEX_META = set(".^$*+?()[]{}|\\")
# RE2 lacks these; Python accepts them, so they would make the two evaluators disagree.
_UNSUPPORTED_REGEX = [
    (re.compile(r"\(\?<?[=!]"), "look-around assertions"),
    (re.compile(r"\(\?>"), "atomic groups"),
    (re.compile(r"\(\?P="), "named back-references"),
    (re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]"), "back-references"),
    (re.compile(r"(?<!\\)(?:\\\\)*\\[AZ]"), r"\A / \Z anchors (use ^ and $)"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers"),
    (re.compile(r"\(\?[aLu]"), "the a/L/u flags"),
]


class PatternError(ValueError):
    """A glob or regex that cannot be used."""


@dataclass(frozen=True)
class Glob:
    """An fnmatch-style glob plus its regex (unanchored body; see :attr:`anchored`)."""

    text: str
    regex: str
    _compiled: re.Pattern = field(repr=False, compare=False, default=None)

    @property
    def anchored(self) -> str:
        """The RE2 pattern for ClickHouse ``match()``: the whole value, newlines included."""
        return f"(?s)^(?:{self.regex})$"

    def matches(self, value: str) -> bool:
        """True when ``value`` matches the whole glob."""
        return self._compiled.fullmatch(value) is not None


def compile_glob(text: str) -> Glob:
    """Translate a glob; raise :class:`PatternError` for an empty, too long or malformed one."""
    if not isinstance(text, str) or not text:
        raise PatternError("a name pattern must be a non-empty string")
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"a name pattern is limited to {MAX_PATTERN_LENGTH} characters")
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            i, cls = _bracket(text, i)
            out.append(cls)
            continue
        elif ch == "]":
            raise PatternError(f"unmatched ']' in glob {text!r}")
        else:
            out.append("\\" + ch if ch in _REGEX_META else ch)
        i += 1
    regex = "".join(out)
    return Glob(text, regex, re.compile(regex, re.DOTALL))


def _bracket(text: str, start: int) -> tuple[int, str]:
    """Translate the class starting at ``text[start] == '['``; return (next index, regex)."""
    end = text.find("]", start + 2 if text[start + 1:start + 2] in ("!", "]") else start + 1)
    if end < 0:
        raise PatternError(f"unclosed '[' in glob {text!r}")
    body = text[start + 1:end]
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise PatternError(f"empty character class in glob {text!r}")
    chars = []
    for j, ch in enumerate(body):
        if ch == "-" and 0 < j < len(body) - 1:
            if body[j - 1] > body[j + 1]:
                raise PatternError(f"reversed range {body[j - 1]}-{body[j + 1]} in glob {text!r}")
            chars.append("-")
        elif ch in "\\[]^-":
            chars.append("\\" + ch)
        else:
            chars.append(ch)
    return end + 1, "[" + ("^" if negate else "") + "".join(chars) + "]"


@dataclass(frozen=True)
class Regex:
    """A user regex searched anywhere in a value (RE2 syntax, ``.`` matches newlines)."""

    text: str
    _compiled: re.Pattern = field(repr=False, compare=False, default=None)

    @property
    def sql(self) -> str:
        """The pattern as handed to ClickHouse ``match()`` (which already sets dot-matches-newline)."""
        return self.text

    def search(self, value: str) -> bool:
        """True when the regex matches somewhere in ``value``."""
        return self._compiled.search(value) is not None


def compile_regex(text: str) -> Regex:
    """Check a user regex against the Python/RE2 common subset."""
    if not isinstance(text, str) or not text:
        raise PatternError("a regex must be a non-empty string")
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"a regex is limited to {MAX_PATTERN_LENGTH} characters")
    for pattern, what in _UNSUPPORTED_REGEX:
        if pattern.search(text):
            raise PatternError(f"regex {text!r} uses {what}, which RE2 (ClickHouse) does not support")
    try:
        compiled = re.compile(text, re.DOTALL | re.ASCII)
    except re.error as exc:
        raise PatternError(f"invalid regex {text!r}: {exc}") from None
    return Regex(text, compiled)
