"""A project's run figures per time bucket: what the overview's charts draw.

One scan of ``runs`` grouped by bucket, where a bucket is ``[since + i·width, since +
(i+1)·width)`` by run start time, instead of one summary query per bucket.  Buckets without
runs are returned too (zeros), so a chart's x axis is the whole window.
"""

from __future__ import annotations

from .queries import RunFilter
from .summary import _finite, _money

_SERIES = """
SELECT intDiv(toUnixTimestamp64Nano(started_at) - {b_since:Int64}, {b_width:Int64}) AS bucket,
       count() AS runs, countIf(status = 'ok') AS ok_runs, countIf(status = 'error') AS error_runs,
       countIf(status = 'in_progress') AS in_progress_runs,
       quantilesIf(0.5, 0.95)(duration_ms, status != 'in_progress') AS duration_q,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(total_tokens) AS total_tokens, sum(cost_usd) AS cost_usd
FROM runs FINAL WHERE {where}
GROUP BY bucket ORDER BY bucket"""

_EMPTY = dict(runs=0, ok_runs=0, error_runs=0, in_progress_runs=0, input_tokens=0, output_tokens=0,
              total_tokens=0, cost_usd=None, success_rate=None, p50_run_duration_ms=None,
              p95_run_duration_ms=None)


def run_series(store, project_id: str, since_ns: int, until_ns: int, buckets: int) -> tuple[int, list[dict]]:
    """(bucket width in ns, one dict per bucket with ``start_ns``) for the project's runs
    started in ``[since_ns, until_ns)``; the window is cut into ``buckets`` equal parts."""
    width = max(1, -(-(until_ns - since_ns) // buckets))
    filters = RunFilter(projects=frozenset([project_id]), since_ns=since_ns, until_ns=until_ns)
    where, params = filters.where()
    rows = store.query(_SERIES.replace("{where}", where),
                       parameters={**params, "b_since": since_ns, "b_width": width}).named_results()
    found = {}
    for row in rows:
        finished = row["ok_runs"] + row["error_runs"]
        q50, q95 = row.pop("duration_q")
        row.update(cost_usd=_money(row["cost_usd"]),
                   success_rate=round(row["ok_runs"] / finished, 6) if finished else None,
                   p50_run_duration_ms=_finite(q50) if finished else None,
                   p95_run_duration_ms=_finite(q95) if finished else None)
        found[row.pop("bucket")] = row
    return width, [{"start_ns": since_ns + i * width, **found.get(i, _EMPTY)} for i in range(buckets)]
