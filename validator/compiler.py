"""Runbook → one parameterised ClickHouse query that judges a whole set of runs.

Shape of the query (see docs/runbooks.md "How evaluation works"):

1. per steps row, cheap vectorised flags (does this step match matcher 3? is its tool
   denied? which required argument keys are missing?) — conditional work stays columnar;
2. ``GROUP BY run_id`` collects each run's steps as one tuple array sorted by
   ``(start_time, step_id)`` — the reference evaluator's step order;
3. per run, array functions evaluate every rule: ``arrayFirstIndex`` chains for the ordered
   ``required_steps``, ``arrayCumSum`` for budget crossings, ``arrayFill`` for repeat streaks;
   each rule yields ``(rule index, observed, strings, step ids)`` and the violated ones form
   ``findings``; ``status`` is decided in SQL so callers can filter and page on it.

The selection (one run, a list of runs, or a project's runs in a started-at window) is a
``WHERE`` clause of the same query.  Every runbook value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from .patterns import compile_glob
from .runbook import Runbook
from .rules_sql import rule_findings
from .sqlbuild import Builder
from .verdict import Finding, build_verdict, is_repairable


@dataclass(frozen=True)
class Selection:
    """Which runs to judge: explicit ``run_ids`` and/or a ``project`` with a window (ns)."""

    project: str | None = None
    run_ids: tuple[str, ...] | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    agent: str | None = None
    service: str | None = None
    bucket: tuple[int, int] | None = None  # (i, n): only runs with cityHash64(run_id) % n == i


@dataclass(frozen=True)
class CompiledRunbook:
    """The SQL text and its parameters (the selection's are added per call)."""

    runbook: Runbook
    sql: str
    parameters: dict
    rule_ids: tuple[str, ...]

    def bind(self, selection: Selection) -> tuple[str, dict]:
        """The full query for ``selection`` and all its parameters."""
        where, params = _selection_where(selection, self.runbook)
        return self.sql.replace("/*SELECTION*/", where), {**self.parameters, **params}

    def verdict(self, row: dict) -> dict:
        """Turn one result row (``has_root``, ``findings``) into the public verdict."""
        findings = []
        for index, observed, strings, ids in row["findings"]:
            rule = self.rule_ids[index - 1]
            findings.append(Finding(rule, list(strings) if _list_observed(rule) else observed, tuple(ids)))
        return build_verdict(self.runbook, findings, bool(row["has_root"]))


def _list_observed(rule: str) -> bool:
    return rule in ("allowed_tools", "denied_tools", "forbid_failure_categories") or rule.endswith(".status") or ".arguments." in rule


def compile_runbook(runbook: Runbook) -> CompiledRunbook:
    """Compile ``runbook`` once; reuse the result for any selection."""
    b = Builder()
    rule_ids = tuple(runbook.rule_ids())
    index = {rule: b.param(i + 1, "UInt16") for i, rule in enumerate(rule_ids)}
    root = b.field("root", "parent_step_id = ''")
    results = rule_findings(runbook, b, index)
    repairable = [i + 1 for i, rule in enumerate(rule_ids) if is_repairable(rule)]
    findings = "arrayFilter(f -> f.1 > 0, [" + ", ".join(results) + "])" if results else \
        "CAST([], 'Array(Tuple(UInt16, Float64, Array(String), Array(String)))')"
    # A chain of CTEs rather than nested subqueries: each level names its columns (so nothing
    # is inlined twice) and the text stays flat (ClickHouse's parser backtracks on deeply
    # nested parentheses, which made parsing alone cost more than judging one run).
    levels = [f"""SELECT project_id, run_id, count() AS step_count,
        toUnixTimestamp64Milli(max(ingested_at)) AS last_span_ms, {b.inner_select()}
    FROM steps FINAL
    WHERE /*SELECTION*/
    GROUP BY project_id, run_id""",
              f"SELECT project_id, run_id, step_count, last_span_ms, {', '.join(b.unpack())}, "
              f"arrayExists(x -> x, {root}) AS has_root FROM l0"]
    for level in sorted(b.derived):
        columns = ", ".join(f"{expr} AS {name}" for name, expr in b.derived[level])
        levels.append(f"SELECT *, {columns} FROM l{len(levels) - 1}")
    levels.append(f"SELECT project_id, run_id, has_root, step_count, last_span_ms, {findings} AS findings "
                  f"FROM l{len(levels) - 1}")
    ctes = ",\n".join(f"l{i} AS ({text})" for i, text in enumerate(levels))
    sql = f"""WITH {ctes}
SELECT *, multiIf(has_root, if(empty(findings), 'passed', 'failed'),
    arrayExists(f -> NOT has({b.param(repairable, 'Array(UInt16)')}, f.1), findings), 'failed',
    'incomplete') AS status
FROM l{len(levels) - 1}"""
    return CompiledRunbook(runbook, sql, b.parameters, rule_ids)


def time_window(sel: Selection) -> tuple[list[str], dict]:
    """The selection's ``started_at`` window as conditions over ``runs`` (parameters ``s_since``, ``s_until``)."""
    conditions, params = [], {}
    if sel.since_ns is not None:
        params["s_since"] = sel.since_ns
        conditions.append("started_at >= fromUnixTimestamp64Nano({s_since:Int64})")
    if sel.until_ns is not None:
        params["s_until"] = sel.until_ns
        conditions.append("started_at < fromUnixTimestamp64Nano({s_until:Int64})")
    return conditions, params


def _selection_where(sel: Selection, runbook: Runbook) -> tuple[str, dict]:
    """The WHERE clause over ``steps`` for a selection; parameters are prefixed ``s_``."""
    window, params = time_window(sel)
    clauses = []
    if sel.project is not None:
        params["s_project"] = sel.project
        clauses.append("project_id = {s_project:String}")
    if sel.run_ids is not None:
        params["s_runs"] = list(sel.run_ids)
        clauses.append("run_id IN {s_runs:Array(String)}")
    if sel.bucket is not None:
        params["s_bucket"], params["s_buckets"] = sel.bucket
        clauses.append("cityHash64(run_id) % {s_buckets:UInt64} = {s_bucket:UInt64}")
    for key, column, glob in (("agent", "agent_name", sel.agent), ("service", "service_name", sel.service)):
        if glob is not None:
            params[f"s_{key}"] = compile_glob(glob).anchored
            window.append(f"match({column}, {{s_{key}:String}})")
    if window:
        if sel.project is None:
            raise ValueError("a time window or agent/service filter needs a project")
        clauses.append("run_id IN (SELECT run_id FROM runs FINAL WHERE project_id = {s_project:String} AND "
                       + " AND ".join(window) + ")")
    if sel.project is None and sel.run_ids is None:
        raise ValueError("select runs by run ids or by project")
    return " AND ".join(clauses), params
