"""Two cohorts of runs side by side, each figure with its difference and a significance test.

A cohort is any :class:`~.queries.RunFilter` (agent version, model, window, …).  Rates are
compared with a two-proportion z-test (pooled, two-sided); distributions per run — duration,
tokens, cost — with ClickHouse's Mann–Whitney U test (``mannWhitneyUTest``: normal
approximation, tie-corrected, two-sided), which ranks both cohorts inside the engine instead
of shipping every run here.  ``difference`` is always B − A: A is the baseline.

Figures per run are over finished runs (ok or error); runs still in progress are counted
in ``runs`` only.  ``significant`` is p < ``alpha`` for each test on its own; a failure
category that *rose* with p below ``alpha`` divided by the number of categories compared
(Bonferroni) is a ``prompt_regression``: something in B fails that did not fail in A.
"""

from __future__ import annotations

import math

from .queries import RunFilter

_FINISHED = "status != 'in_progress'"

_FIGURES = f"""
SELECT {{cohort:UInt8}} AS cohort, count() AS runs, countIf(status = 'ok') AS ok_runs,
       countIf(status = 'error') AS error_runs, countIf(status = 'in_progress') AS in_progress_runs,
       quantilesIf(0.5, 0.95)(duration_ms, {_FINISHED}) AS duration_q,
       avgIf(total_tokens, {_FINISHED}) AS tokens_per_run,
       countIf({_FINISHED} AND cost_usd IS NOT NULL) AS priced_runs,
       avgIf(assumeNotNull(cost_usd), {_FINISHED} AND cost_usd IS NOT NULL) AS cost_per_run,
       avgIf(tool_calls, {_FINISHED}) AS tool_calls_per_run, avgIf(llm_calls, {_FINISHED}) AS llm_calls_per_run
FROM runs FINAL WHERE {{where}}"""

# One sample per finished run; cohort 0 is A.  Tested only where both sides have a value.
_RANK_TESTS = {"duration_ms": ("duration_ms", "1"), "tokens_per_run": ("toFloat64(total_tokens)", "1"),
               "cost_per_run": ("ifNull(cost_usd, 0)", "cost_usd IS NOT NULL")}

# The 200 most called tools of each cohort.
_TOOLS = """
SELECT {cohort:UInt8} AS cohort, tool_name AS tool, count() AS calls, countIf(status = 'error') AS errors,
       uniqExact(run_id) AS runs
FROM steps WHERE project_id IN {projects:Array(String)} AND start_time >= fromUnixTimestamp64Nano({since:Int64}, 'UTC')
  AND tool_name != '' AND run_id IN (SELECT run_id FROM runs FINAL WHERE {where} AND status != 'in_progress')
GROUP BY tool_name ORDER BY calls DESC, tool LIMIT 200"""

_CATEGORIES = """
SELECT {cohort:UInt8} AS cohort, failure_category AS category, uniqExact(run_id) AS runs, count() AS steps
FROM steps WHERE project_id IN {projects:Array(String)} AND start_time >= fromUnixTimestamp64Nano({since:Int64}, 'UTC')
  AND failure_category != '' AND run_id IN (SELECT run_id FROM runs FINAL WHERE {where} AND status != 'in_progress')
GROUP BY failure_category"""


def two_proportion_test(x_a: int, n_a: int, x_b: int, n_b: int) -> dict:
    """Pooled two-proportion z-test of x_b/n_b against x_a/n_a: ``z`` and two-sided ``p_value``
    (both None when a side has no trials; z = 0, p = 1 when the pooled rate is 0 or 1)."""
    if not n_a or not n_b:
        return {"z": None, "p_value": None}
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return {"z": 0.0, "p_value": 1.0}
    z = (x_b / n_b - x_a / n_a) / se
    return {"z": round(z, 4), "p_value": _p(math.erfc(abs(z) / math.sqrt(2)))}


def _p(value: float) -> float:
    return float(f"{min(1.0, max(0.0, value)):.6g}")


def _union(template: str, a: RunFilter, b: RunFilter) -> tuple[str, dict]:
    """``template`` once per cohort (its ``{where}``, ``{since}``, ``{projects}``, ``{cohort}``
    bound to that cohort's own parameters), as one UNION ALL query."""
    parts, params = [], {}
    for index, (tag, cohort) in enumerate((("a", a), ("b", b))):
        where, bound = cohort.tagged_where(tag)
        sql = (template.replace("{where}", where).replace("{cohort:", f"{{{tag}_cohort:")
               .replace("{since:", f"{{{tag}_since_steps:").replace("{projects:", f"{{{tag}_step_projects:"))
        parts.append(sql)
        params.update(bound)
        params.update({f"{tag}_cohort": index, f"{tag}_since_steps": cohort.since_ns or 0,
                       f"{tag}_step_projects": sorted(cohort.projects or ())})
    return "\nUNION ALL\n".join(parts), params


def _by_cohort(store, template: str, a: RunFilter, b: RunFilter) -> tuple[list[dict], list[dict]]:
    sql, params = _union(template, a, b)
    rows = list(store.query(sql, parameters=params).named_results())
    return [r for r in rows if r["cohort"] == 0], [r for r in rows if r["cohort"] == 1]


def _rank_tests(store, a: RunFilter, b: RunFilter, sizes: dict[str, tuple[int, int]]) -> dict:
    wanted = [name for name, (n_a, n_b) in sizes.items() if n_a and n_b]
    if not wanted:
        return {}
    select = ", ".join(f"mannWhitneyUTestIf('two-sided')({value}, cohort, {cond}) AS {name}"
                       for name, (value, cond) in _RANK_TESTS.items() if name in wanted)
    inner, params = _union("SELECT {cohort:UInt8} AS cohort, duration_ms, total_tokens, cost_usd "
                           "FROM runs FINAL WHERE {where} AND status != 'in_progress'", a, b)
    row = next(iter(store.query(f"SELECT {select} FROM ({inner})", parameters=params).named_results()))
    # (U, p): a named tuple, which the client may hand over as a dict.
    pairs = {name: tuple(row[name].values()) if isinstance(row[name], dict) else row[name] for name in wanted}
    return {name: {"u": round(u, 4), "p_value": _p(p)} for name, (u, p) in pairs.items()}


def _round(value, digits=6):
    return None if value is None or value != value else round(value, digits)


def _side(row: dict | None) -> dict:
    row = row or {"runs": 0, "ok_runs": 0, "error_runs": 0, "in_progress_runs": 0, "duration_q": [math.nan] * 2,
                  "tokens_per_run": math.nan, "priced_runs": 0, "cost_per_run": math.nan,
                  "tool_calls_per_run": math.nan, "llm_calls_per_run": math.nan}
    finished = row["ok_runs"] + row["error_runs"]
    q50, q95 = row["duration_q"] if finished else (None, None)
    return {"runs": row["runs"], "ok_runs": row["ok_runs"], "error_runs": row["error_runs"],
            "in_progress_runs": row["in_progress_runs"], "finished_runs": finished,
            "success_rate": _round(row["ok_runs"] / finished) if finished else None,
            "p50_duration_ms": _round(q50, 3), "p95_duration_ms": _round(q95, 3),
            "tokens_per_run": _round(row["tokens_per_run"], 3) if finished else None,
            "priced_runs": row["priced_runs"],
            "cost_per_run": _round(row["cost_per_run"], 10) if row["priced_runs"] else None,
            "tool_calls_per_run": _round(row["tool_calls_per_run"], 3) if finished else None,
            "llm_calls_per_run": _round(row["llm_calls_per_run"], 3) if finished else None}


def _diff(a, b, digits=6):
    return None if a is None or b is None else round(b - a, digits)


def _verdict(test: dict, alpha: float) -> dict:
    return {**test, "significant": test["p_value"] is not None and test["p_value"] < alpha}


def _metric(a: dict, b: dict, name: str, test: dict | None, alpha: float, digits=6) -> dict:
    return {"a": a[name], "b": b[name], "difference": _diff(a[name], b[name], digits),
            **_verdict(test or {"p_value": None}, alpha)}


def _rates(rows_a, rows_b, key: str, n_a: int, n_b: int, alpha: float, fields=("runs",)) -> list[dict]:
    a, b = {r[key]: r for r in rows_a}, {r[key]: r for r in rows_b}
    out = []
    for name in sorted(a.keys() | b.keys()):
        x_a, x_b = a.get(name, {}).get("runs", 0), b.get(name, {}).get("runs", 0)
        sides = {}
        for label, rows, x, n in (("a", a, x_a, n_a), ("b", b, x_b, n_b)):
            sides[label] = {f: rows.get(name, {}).get(f, 0) for f in fields}
            sides[label]["share_of_runs"] = round(x / n, 6) if n else None
        test = _verdict(two_proportion_test(x_a, n_a, x_b, n_b), alpha)
        out.append({key: name, **sides, "difference": _diff(sides["a"]["share_of_runs"], sides["b"]["share_of_runs"]),
                    **test})
    return sorted(out, key=lambda r: (-(r["a"]["runs"] + r["b"]["runs"]), r[key]))


def compare_cohorts(store, a: RunFilter, b: RunFilter, alpha: float = 0.05) -> dict:
    """Everything ``GET /v1/projects/{p}/compare`` reports for cohorts ``a`` and ``b``
    (both limited to the caller's projects, with ``since_ns`` set)."""
    rows_a, rows_b = _by_cohort(store, _FIGURES, a, b)
    side_a, side_b = _side(rows_a[0] if rows_a else None), _side(rows_b[0] if rows_b else None)
    sizes = {"duration_ms": (side_a["finished_runs"], side_b["finished_runs"]),
             "tokens_per_run": (side_a["finished_runs"], side_b["finished_runs"]),
             "cost_per_run": (side_a["priced_runs"], side_b["priced_runs"])}
    ranks = _rank_tests(store, a, b, sizes)
    success = two_proportion_test(side_a["ok_runs"], side_a["finished_runs"], side_b["ok_runs"], side_b["finished_runs"])
    metrics = {
        "success_rate": {**_metric(side_a, side_b, "success_rate", success, alpha), "test": "two_proportion_z"},
        "duration_ms": {"a": {"p50": side_a["p50_duration_ms"], "p95": side_a["p95_duration_ms"]},
                        "b": {"p50": side_b["p50_duration_ms"], "p95": side_b["p95_duration_ms"]},
                        "difference": {"p50": _diff(side_a["p50_duration_ms"], side_b["p50_duration_ms"], 3),
                                       "p95": _diff(side_a["p95_duration_ms"], side_b["p95_duration_ms"], 3)},
                        **_verdict(ranks.get("duration_ms", {"u": None, "p_value": None}), alpha),
                        "test": "mann_whitney_u"},
    }
    for name, digits in (("tokens_per_run", 3), ("cost_per_run", 10)):
        test = ranks.get(name, {"u": None, "p_value": None})
        metrics[name] = {**_metric(side_a, side_b, name, test, alpha, digits), "test": "mann_whitney_u"}
    for name in ("tool_calls_per_run", "llm_calls_per_run"):
        metrics[name] = {"a": side_a[name], "b": side_b[name], "difference": _diff(side_a[name], side_b[name], 3)}
    tools_a, tools_b = _by_cohort(store, _TOOLS, a, b)
    tools = _rates(tools_a, tools_b, "tool", side_a["finished_runs"], side_b["finished_runs"], alpha,
                   fields=("runs", "calls", "errors"))
    cat_a, cat_b = _by_cohort(store, _CATEGORIES, a, b)
    categories = _rates(cat_a, cat_b, "category", side_a["finished_runs"], side_b["finished_runs"], alpha,
                        fields=("runs", "steps"))
    cutoff = alpha / max(1, len(categories))
    for c in categories:
        c["rose_significantly"] = ((c["difference"] or 0) > 0 and c["p_value"] is not None
                                   and c["p_value"] < cutoff)
    risen = [c["category"] for c in categories if c["rose_significantly"]]
    return {"a": side_a, "b": side_b, "metrics": metrics, "tools": tools, "failure_categories": categories,
            "prompt_regression": {"detected": bool(risen), "categories": risen}}
