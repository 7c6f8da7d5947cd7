"""Aggregates over a time window: a project's summary and the cross-project overview.

Run figures (counts, rates, run durations, tokens, cost) come from ``runs`` filtered on the
run's start time; step figures (step latency, tools, models) come from ``steps`` filtered on
the step's start time, which prunes ``steps``' daily partitions.  Roots are left out of step
latency: a root span lasts as long as its whole run and would swamp the steps' percentile.
"""

from __future__ import annotations

from .queries import RunFilter
from .runs import validation_pass_rate

_RUN_TOTALS = """
SELECT count() AS runs, countIf(status = 'ok') AS ok_runs, countIf(status = 'error') AS error_runs,
       countIf(status = 'in_progress') AS in_progress_runs,
       quantilesIf(0.5, 0.95)(duration_ms, status != 'in_progress') AS duration_q,
       sum(step_count) AS steps, sum(llm_calls) AS llm_calls, sum(tool_calls) AS tool_calls,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(total_tokens) AS total_tokens, sum(cost_usd) AS cost_usd
FROM runs FINAL WHERE {where}"""

_STEP_WINDOW = ("(NOT {s_scoped:Bool} OR project_id IN {s_projects:Array(String)}) "
                "AND start_time >= fromUnixTimestamp64Nano({s_since:Int64}, 'UTC') "
                "AND start_time < fromUnixTimestamp64Nano({s_until:Int64}, 'UTC')")

_STEP_LATENCY = f"""
SELECT quantileIf(0.95)(duration_ns, parent_step_id != '') / 1e6 AS p95,
       quantileIf(0.5)(duration_ns, parent_step_id != '') / 1e6 AS p50
FROM steps WHERE {_STEP_WINDOW}"""

# Separate scans rather than one GROUPING SETS scan: quantile states per group set cost more
# than re-reading the window's few columns (bench/query_bench.py times the summary).
_TOOLS = f"""
SELECT tool_name AS tool, count() AS calls, countIf(status = 'error') AS errors,
       quantile(0.95)(duration_ns) / 1e6 AS p95_latency_ms
FROM steps WHERE {_STEP_WINDOW} AND tool_name != ''
GROUP BY tool_name ORDER BY calls DESC, tool LIMIT 1000"""

_MODELS = f"""
SELECT toString(model) AS model, toString(any(provider)) AS provider, count() AS calls,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd
FROM steps WHERE {_STEP_WINDOW} AND kind = 'llm' AND model != ''
GROUP BY model ORDER BY calls DESC, model LIMIT 50"""


def _rate(part: int, whole: int):
    return round(part / whole, 6) if whole else None


def run_totals(store, filters: RunFilter) -> dict:
    """Counts, rates, duration percentiles, tokens and cost of the runs ``filters`` selects."""
    where, params = filters.where()
    row = next(iter(store.query(_RUN_TOTALS.format(where=where), parameters=params).named_results()))
    finished = row["ok_runs"] + row["error_runs"]
    row["cost_usd"] = _money(row["cost_usd"])
    quantiles = row.pop("duration_q")
    p50, p95 = (_finite(quantiles[0]), _finite(quantiles[1])) if finished else (None, None)
    row.update(success_rate=_rate(row["ok_runs"], finished), error_rate=_rate(row["error_runs"], finished),
               p50_run_duration_ms=p50, p95_run_duration_ms=p95)
    return row


def step_figures(store, projects: frozenset[str] | None, since_ns: int, until_ns: int) -> dict:
    """Step latency percentiles, per-tool figures and models used by steps in the window
    (of every project when ``projects`` is None)."""
    params = {"s_scoped": projects is not None, "s_projects": sorted(projects or ()),
              "s_since": since_ns, "s_until": until_ns}
    latency = next(iter(store.query(_STEP_LATENCY, parameters=params).named_results()))
    tools = list(store.query(_TOOLS, parameters=params).named_results())
    for tool in tools:
        tool["p95_latency_ms"] = _finite(tool["p95_latency_ms"])
    models = list(store.query(_MODELS, parameters=params).named_results())
    for model in models:
        model["cost_usd"] = _money(model["cost_usd"])
    failing = sorted((t for t in tools if t["errors"]), key=lambda t: (-t["errors"], t["tool"]))
    return {
        "p50_step_latency_ms": _finite(latency["p50"]),
        "p95_step_latency_ms": _finite(latency["p95"]),
        "top_tools": tools[:10],
        "top_failing_tools": [{"tool": t["tool"], "count": t["errors"], "calls": t["calls"]}
                              for t in failing[:10]],
        "models": models,
    }


def project_summary(store, project_id: str, since_ns: int, until_ns: int) -> dict:
    """Everything ``GET /v1/projects/{id}/summary`` reports for one project and window."""
    projects = frozenset([project_id])
    totals = run_totals(store, RunFilter(projects=projects, since_ns=since_ns, until_ns=until_ns))
    figures = step_figures(store, projects, since_ns, until_ns)
    validation = validation_pass_rate(store, project_id, since_ns, until_ns)
    return {**totals, **figures, "validation": validation}


def overview(store, projects: frozenset[str] | None, since_ns: int, until_ns: int) -> dict:
    """Cross-project headline figures for ``GET /v1/metrics/overview``."""
    totals = run_totals(store, RunFilter(projects=projects, since_ns=since_ns, until_ns=until_ns))
    figures = step_figures(store, projects, since_ns, until_ns) if projects is None or projects else {
        "p50_step_latency_ms": None, "p95_step_latency_ms": None, "top_tools": [],
        "top_failing_tools": [], "models": []}
    return {
        "total_runs": totals["runs"], "success_rate": totals["success_rate"],
        "error_rate": totals["error_rate"], "in_progress_runs": totals["in_progress_runs"],
        "top_failing_tools": figures["top_failing_tools"],
        "p95_step_latency_ms": figures["p95_step_latency_ms"],
        "p95_run_duration_ms": totals["p95_run_duration_ms"],
        "total_tokens": totals["total_tokens"], "total_cost_usd": totals["cost_usd"],
    }


def _money(value):
    """Float sums drift in the last digits (0.1 + 0.2); USD to 10 decimals is plenty."""
    return None if value is None or value != value else round(value, 10)


def _finite(value):
    return None if value is None or value != value else round(value, 3)
