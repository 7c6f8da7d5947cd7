"""Totals an agent declares for its own run, read the same way in SQL and in Python.

Seed 000's clients report a run's totals themselves: the SDK's ``run.set_totals()`` puts
``agenttrail.totals.total_tokens`` / ``agenttrail.totals.cost_usd`` on the run span, the event
API's ``run.end`` puts ``agenttrail.totals.tokens`` / ``agenttrail.totals.cost_usd`` on the
root step.  Only the root step's declaration counts.  A run's total is then the greater of
what its llm steps add up to and what it declared — never the sum, so nothing counts twice —
both in the runs table and in runbook budgets.

Values arrive as attribute text from any client, so both readings accept exactly the same
strings: plain decimal digits for tokens (at most 15), digits with an optional fraction for
cost (at most 24 characters); anything else reads as nothing declared (0).
"""

from __future__ import annotations

import re

TOKENS_KEYS = ("agenttrail.totals.total_tokens", "agenttrail.totals.tokens")
COST_KEY = "agenttrail.totals.cost_usd"

_TOKENS = re.compile(r"[0-9]+")
_COST = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TOKENS_MAX_CHARS, _COST_MAX_CHARS = 15, 24


def declared_tokens(step: dict) -> int:
    """The tokens ``step`` declares for its run (0 unless it is a root with a valid value)."""
    if step["parent_step_id"] != "":
        return 0
    attributes = step.get("attributes") or {}
    values = [attributes.get(key, "") for key in TOKENS_KEYS]
    return max((int(v) for v in values if len(v) <= _TOKENS_MAX_CHARS and _TOKENS.fullmatch(v)), default=0)


def declared_cost(step: dict) -> float:
    """The cost in USD ``step`` declares for its run (0.0 unless a root with a valid value)."""
    if step["parent_step_id"] != "":
        return 0.0
    value = (step.get("attributes") or {}).get(COST_KEY, "")
    return float(value) if len(value) <= _COST_MAX_CHARS and _COST.fullmatch(value) else 0.0


def _tokens_sql(key: str) -> str:
    value = f"attributes['{key}']"
    return (f"if(length({value}) <= {_TOKENS_MAX_CHARS} AND match({value}, '^[0-9]+$'), "
            f"toUInt64OrZero({value}), 0)")


DECLARED_TOKENS_SQL = (f"if(parent_step_id = '', greatest({_tokens_sql(TOKENS_KEYS[0])}, "
                       f"{_tokens_sql(TOKENS_KEYS[1])}), 0)")
"""Per steps row: what :func:`declared_tokens` returns, as a UInt64 expression."""

DECLARED_COST_SQL = (f"if(parent_step_id = '' AND length(attributes['{COST_KEY}']) <= {_COST_MAX_CHARS} "
                     f"AND match(attributes['{COST_KEY}'], '^[0-9]+([.][0-9]+)?$'), "
                     f"toFloat64OrZero(attributes['{COST_KEY}']), 0.)")
"""Per steps row: what :func:`declared_cost` returns, as a Float64 expression."""

# Only the attributes these readings need, for queries that fetch steps for the Python side.
DECLARED_ATTRIBUTES_SQL = "mapFilter((k, v) -> startsWith(k, 'agenttrail.totals.'), attributes)"
