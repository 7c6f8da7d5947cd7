"""Grafana's and the ClickHouse plugin's query expansion, reproduced for tests.

Grafana does two rounds of substitution before SQL reaches ClickHouse; dashboards tests run
panel SQL through both, the same way, so a broken panel fails CI rather than a user's screen:

1. the plugin's frontend: ``$__conditionalAll(cond, $var)`` becomes ``1=1`` when ``var`` is
   "All", then Grafana's template service replaces ``${var:format}`` / ``$var``;
2. the plugin's backend macros (grafana/clickhouse-datasource ``pkg/macros/macros.go``):
   ``$__timeFilter(col)``, ``$__fromTime``, ``$__timeInterval(col)``, ``$__interval_s``…

Only the ``percentencode`` variable format is accepted (see :func:`_format`).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

ALL = "$__all"
MULTI = frozenset({"project", "agent"})  # checked against the dashboards' variable definitions


class ExpansionError(ValueError):
    """A dashboard uses a macro, format or variable Grafana/the plugin would not expand."""


# -- step 1: frontend (plugin applyConditionalAll + Grafana template service) ----------------

def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Split the arguments of the call whose ``(`` is at ``open_paren``; return (args, end)."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise ExpansionError(f"unbalanced parentheses after {sql[open_paren - 20:open_paren]!r}")


def _is_all(values: list[str]) -> bool:
    return not values or values == [""] or ALL in values


def apply_conditional_all(sql: str, variables: dict[str, list[str]]) -> str:
    """``$__conditionalAll(condition, $var)``: ``1=1`` when var is All, else the condition."""
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = _macro_args(sql, at + len(macro) - 1)
        if len(args) != 2:
            raise ExpansionError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        name = re.search(r"\$\{?(\w+)", args[1])
        if not name or name[1] not in variables:
            raise ExpansionError(f"$__conditionalAll names no known variable: {args[1]!r}")
        sql = sql[:at] + ("1=1" if _is_all(variables[name[1]]) else args[0]) + sql[end:]
    return sql


def _percentencode(value: str) -> str:
    # encodeURIComponentStrict: everything but A-Z a-z 0-9 - _ . ~ is %XX-encoded (UTF-8)
    return quote(value, safe="")


def _format(values: list[str], fmt: str | None, multi: bool) -> str:
    """Grafana's ``percentencode`` format — the only one the dashboards may use in SQL.

    ``singlequote`` and ``sqlstring`` escape quotes but not backslashes, so a value ending in
    a backslash ends ClickHouse's string literal early; the plugin's default format does no
    escaping at all.  Refusing them here makes such a dashboard fail CI.
    """
    if fmt != "percentencode":
        raise ExpansionError(f"variable format {fmt or 'default'!r} is not injection-safe in "
                             "ClickHouse SQL: use ${var:percentencode} + decodeURLComponent")
    if multi:  # Grafana: encodeURIComponentStrict('{' + values.join(',') + '}')
        return _percentencode("{" + ",".join(values) + "}")
    return _percentencode(values[0])


def interpolate(sql: str, variables: dict[str, list[str]], options: dict[str, list[str]],
                multi: frozenset[str] = frozenset()) -> str:
    """Grafana's template service: ``${var:fmt}``, ``${var}`` and ``$var``; All → every option."""

    def replace(m: re.Match) -> str:
        name, fmt = m["braced"] or m["bare"], m["fmt"]
        if name not in variables:
            raise ExpansionError(f"unknown variable ${name}")
        values = variables[name]
        if _is_all(values):
            values = options.get(name) or [""]
        return _format(values, fmt, name in multi)

    return re.sub(r"\$\{(?P<braced>\w+)(?::(?P<fmt>\w+))?\}|\$(?!__)(?P<bare>\w+)", replace, sql)


# -- step 2: backend macros (pkg/macros/macros.go) --------------------------------------------

def expand_macros(sql: str, start: datetime, end: datetime, interval_s: float) -> str:
    """The plugin's server-side macros, with the same expansions and argument checks."""
    t0, t1 = int(start.timestamp()), int(end.timestamp())
    ms0, ms1 = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    secs = int(max(interval_s, 1))
    d0, d1 = start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    no_args = {
        "fromTime": f"toDateTime({t0})", "toTime": f"toDateTime({t1})",
        "fromTime_ms": f"fromUnixTimestamp64Milli({ms0})", "toTime_ms": f"fromUnixTimestamp64Milli({ms1})",
        "interval_s": str(secs),
    }
    one_arg = {
        "timeFilter": lambda c: f"{c} >= toDateTime({t0}) AND {c} <= toDateTime({t1})",
        "timeFilter_ms": lambda c: (f"{c} >= fromUnixTimestamp64Milli({ms0}) AND "
                                    f"{c} <= fromUnixTimestamp64Milli({ms1})"),
        "dateFilter": lambda c: f"{c} >= toDate('{d0}') AND {c} <= toDate('{d1}')",
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {secs} second)",
        "timeInterval_ms": lambda c: (f"toStartOfInterval(toDateTime64({c}, 3), "
                                      f"INTERVAL {int(max(interval_s * 1000, 1))} millisecond)"),
    }
    out, pos = [], 0
    for m in re.finditer(r"\$__(\w+)", sql):
        if m.start() < pos:
            continue
        name = m[1]
        out.append(sql[pos:m.start()])
        has_args = m.end() < len(sql) and sql[m.end()] == "("
        if name in no_args:
            out.append(no_args[name])
            pos = m.end()
            if has_args:  # sqlds passes arguments to every macro; these ignore them
                pos = _macro_args(sql, m.end())[1]
        elif name in one_arg or name in ("dateTimeFilter", "dt"):
            args, pos = _macro_args(sql, m.end()) if has_args else ([], m.end())
            args = [a.strip() for a in args]
            if not all(args):  # the plugin would emit " >= toDateTime(..)": invalid SQL anyway
                raise ExpansionError(f"$__{name} has an empty argument")
            if name in one_arg:
                if len(args) != 1:
                    raise ExpansionError(f"$__{name} expects 1 argument, received {len(args)}")
                out.append(one_arg[name](args[0]))
            else:
                if len(args) != 2:
                    raise ExpansionError(f"$__{name} expects 2 arguments, received {len(args)}")
                out.append(f"({args[0]} >= toDate('{d0}') AND {args[0]} <= toDate('{d1}')) AND "
                           f"({args[1]} >= toDateTime({t0}) AND {args[1]} <= toDateTime({t1}))")
        else:
            raise ExpansionError(f"unknown macro $__{name}")
    out.append(sql[pos:])
    return "".join(out)


def expand(sql: str, variables, options, start, end, interval_s=60.0, multi=MULTI) -> str:
    """A panel's rawSql as ClickHouse receives it."""
    sql = apply_conditional_all(sql, variables)
    sql = interpolate(sql, variables, options, multi)
    return expand_macros(sql, start, end, interval_s)


# -- the expander itself -------------------------------------------------------------------------

def test_macros_expand_like_the_plugin():
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    end = datetime(2026, 1, 3, 3, 4, 5, 250000, tzinfo=timezone.utc)
    sql = expand_macros("$__timeFilter(t) $__fromTime_ms $__interval_s $__timeInterval(t)", start, end, 0.2)
    assert sql == (f"t >= toDateTime({int(start.timestamp())}) AND t <= toDateTime({int(end.timestamp())}) "
                   f"fromUnixTimestamp64Milli({int(start.timestamp() * 1000)}) 1 "
                   "toStartOfInterval(toDateTime(t), INTERVAL 1 second)")
    assert math.isclose(int(end.timestamp() * 1000) % 1000, 250)


@pytest.mark.parametrize("bad", ["$__timeFilter()", "$__timeFilter(a, b)", "$__nosuch(x)",
                                 "$__timeFilter(a", "$__dt(a)"])
def test_bad_macros_are_rejected(bad):
    now = datetime.now(timezone.utc)
    with pytest.raises(ExpansionError):
        expand_macros(bad, now, now, 60)


def test_unknown_variables_and_formats_are_rejected():
    with pytest.raises(ExpansionError):
        interpolate("${nope}", {}, {})
    for unsafe in ("${project:lucene}", "${project:singlequote}", "${project:sqlstring}", "$project"):
        with pytest.raises(ExpansionError):
            interpolate(unsafe, {"project": ["a"]}, {})
    with pytest.raises(ExpansionError):
        apply_conditional_all("$__conditionalAll(a = 1)", {})
    assert apply_conditional_all("$__conditionalAll(x IN (${p:percentencode}), $p)", {"p": [ALL]}) == "1=1"
    assert interpolate("'${p:percentencode}'", {"p": ["a'b\\", "c,d"]}, {}, frozenset({"p"})) == \
        "'%7Ba%27b%5C%2Cc%2Cd%7D'"


def test_multi_value_variables_match_the_dashboards():
    from test_dashboards import _dashboards

    for name, dash in _dashboards():
        for var in dash["templating"]["list"]:
            assert bool(var.get("multi")) == (var["name"] in MULTI), f"{name}: ${var['name']}"

