"""A tiny SQL builder for the compiler: bound parameters and the per-step tuple layout.

Every value that comes from a runbook goes through :meth:`Builder.param`, which returns a
``{pN:Type}`` placeholder and records the value; nothing from YAML is ever formatted into SQL
text.  :meth:`Builder.field` registers a per-step expression carried, in step order, into the
run-level query as array ``a_<name>``; :meth:`Builder.derive` names a per-run intermediate.
"""

from __future__ import annotations


class Builder:
    """Collects parameters and per-step fields while rule SQL is generated."""

    def __init__(self) -> None:
        self.parameters: dict[str, object] = {}
        self.fields: list[tuple[str, str]] = []  # (name, per-step expression)
        self.derived: dict[int, list[tuple[str, str]]] = {}  # level -> (name, per-run expression)

    def param(self, value, sql_type: str) -> str:
        """Bind ``value``; return its placeholder."""
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{sql_type}}}"

    def field(self, name: str, expression: str) -> str:
        """Carry ``expression`` per step; return the array name that holds it in step order."""
        if not any(existing == name for existing, _ in self.fields):
            self.fields.append((name, expression))
        return f"a_{name}"

    def derive(self, name: str, expression: str, level: int = 1) -> str:
        """A per-run column ``d_<name>`` computed in its own subquery level.

        Naming an intermediate result in a *separate* SELECT keeps ClickHouse from inlining it
        into every place that uses it: a same-SELECT alias is substituted textually, and
        nested rule expressions then grow until query analysis costs more than the work."""
        columns = self.derived.setdefault(level, [])
        if all(existing != f"d_{name}" for existing, _ in columns):
            columns.append((f"d_{name}", expression))
        return f"d_{name}"

    def glob_any(self, column: str, globs) -> str:
        """``column`` matches any of the globs (one RE2 alternation, bound as a parameter)."""
        regex = "(?s)^(?:" + "|".join(f"(?:{g.regex})" for g in globs) + ")$"
        return f"match({column}, {self.param(regex, 'String')})"

    def matcher(self, m) -> str:
        """A step matcher as a boolean expression over one steps row."""
        parts = []
        if m.name is not None:
            parts.append(f"match(name, {self.param(m.name.anchored, 'String')})")
        if m.tool is not None:
            parts.append(f"match(tool_name, {self.param(m.tool.anchored, 'String')})")
        if m.kind is not None:
            parts.append(f"kind = {self.param(m.kind, 'String')}")
        return "(" + " AND ".join(parts) + ")"

    def inner_select(self) -> str:
        """The per-run sorted tuple array: ``(start_time, step_id, field1, field2, …)``."""
        exprs = ", ".join(expr for _, expr in self.fields)
        return f"arraySort(groupArray(tuple(start_time, step_id{', ' + exprs if exprs else ''}))) AS s"

    def unpack(self) -> list[str]:
        """The run-level array columns extracted from ``s``."""
        cols = ["tupleElement(s, 2) AS a_id"]
        cols += [f"tupleElement(s, {i + 3}) AS a_{name}" for i, (name, _) in enumerate(self.fields)]
        return cols


def finding(index_param: str, violated: str, observed: str = "0", strings: str = "emptyArrayString()",
            ids: str = "emptyArrayString()") -> str:
    """One rule's result as ``(rule index, observed, strings, step ids)``; index 0 means no finding.

    Kept short on purpose: ClickHouse spends more time parsing and analysing this query for one
    run than executing it, and that time grows with the text."""
    return f"({index_param} * ({violated}), toFloat64({observed}), {strings}, {ids})"


def ids_where(mask: str) -> str:
    """Step ids (in step order) where the per-step boolean array ``mask`` is true."""
    return f"arrayFilter((i, m) -> m, a_id, {mask})"


def distinct_sorted(values: str, mask: str) -> str:
    """The sorted distinct strings of ``values`` where ``mask`` is true."""
    return f"arraySort(arrayDistinct(arrayFilter((v, m) -> m, {values}, {mask})))"
