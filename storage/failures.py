"""Failure reads: the light step rows the run analysis needs for a page of runs.

The failure block of each run in a list comes from one query over the steps of the page's
runs that can have one (not one query per run), reading only what retry, loop and root-cause
rules look at; tool arguments are compared, never shown, so a hash of them is read instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .runs import _in_execution_order

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_LIGHT_STEP_SELECT = (
    "project_id, run_id, step_id, parent_step_id, name, kind, tool_name, "
    "toString(cityHash64(tool_arguments)) AS tool_arguments, model, status, "
    "failure_category, failure_type, start_time, "
    # the step an SDK failure event names as the cause (agenttrail.failure.step_id), on failed steps only
    "if(status = 'error', arrayStringConcat(arrayMap((n, a) -> if(n = 'agenttrail.failure', "
    "a['agenttrail.failure.step_id'], ''), `events.name`, `events.attributes`)), '') AS failure_step_ref"
)


def page_steps(store, runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(project_id, run_id) → that run's light step rows in execution order, for the run rows
    ``runs`` (as the run lists return them), one query.

    Only steps ingested between the rows' earliest ``first_seen_at`` and latest ``last_span_at``,
    and started between their earliest ``first_step_at`` and latest ``last_step_at``, are read:
    a run row is computed from all of its stored steps, so these are exactly the steps each row
    counts.  The minmax index on ``ingested_at`` skips the granules of other times, and the
    start bound the daily partitions of other days (a store whose spans were all ingested at
    once, a backfill, has nothing for the first to skip)."""
    if not runs:
        return {}
    keys = [(r["project_id"], r["run_id"]) for r in runs]
    # No FINAL: it merges every part's granules of these runs before filtering, 1.3 s instead
    # of 76 ms for 50 runs at 10M steps; a span stored twice is dropped here instead.
    # The keys as one set of pairs: a set of projects and a set of runs would select every
    # granule that may hold any of the projects with any of the runs.
    sql = (f"SELECT {_LIGHT_STEP_SELECT} FROM steps WHERE (project_id, run_id) IN {{keys:Array(Tuple(String, String))}} "
           "AND ingested_at >= fromUnixTimestamp64Milli({since:Int64}) "
           "AND ingested_at <= fromUnixTimestamp64Milli({until:Int64})")
    parameters = {"keys": sorted(set(keys)), "since": min(_ms(r["first_seen_at"]) for r in runs),
                  "until": max(_ms(r["last_span_at"]) for r in runs)}
    if all(_us(r["first_step_at"]) > 0 for r in runs):  # rows stored before v8 hold the epoch
        # Microseconds (the client reads nanoseconds to them), widened by one each way.
        sql += (" AND start_time >= fromUnixTimestamp64Micro({first_start:Int64}) "
                "AND start_time <= fromUnixTimestamp64Micro({last_start:Int64})")
        parameters.update(first_start=min(_us(r["first_step_at"]) for r in runs) - 1,
                          last_start=max(_us(r["last_step_at"]) for r in runs) + 1)
    result = store.query(sql, parameters=parameters)
    grouped: dict[tuple[str, str], dict[str, dict]] = {}
    for row in result.named_results():
        row["failure_step_ref"] = row["failure_step_ref"] or None
        grouped.setdefault((row["project_id"], row["run_id"]), {})[row["step_id"]] = row
    return {key: _in_execution_order(list(steps.values())) for key, steps in grouped.items()}


def _ms(value: datetime) -> int:
    """Milliseconds since the epoch of a stored DateTime64(3) (exact: no float on the way)."""
    return (_utc(value) - _EPOCH) // timedelta(milliseconds=1)


def _us(value: datetime) -> int:
    """Microseconds since the epoch of a datetime read back from ClickHouse."""
    return (_utc(value) - _EPOCH) // timedelta(microseconds=1)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value  # read back as UTC


# group_by name -> (key expression over steps ``s``, extra condition).  Only these texts
# reach the SQL; the caller's value chooses among them.
FAILURE_GROUPS: dict[str, tuple[str, str]] = {
    "category": ("toString(s.failure_category)", ""),
    "tool": ("s.tool_name", " AND s.tool_name != ''"),
    "model": ("toString(s.model)", " AND s.model != ''"),
    "fingerprint": ("s.error_fingerprint", ""),
    "agent": ("if(r.agent_name != '', r.agent_name, toString(s.service_name))", ""),
}
_AGENT_JOIN = (
    " LEFT ANY JOIN (SELECT run_id, agent_name FROM runs FINAL WHERE project_id = {project:String} "
    # a run starts before its steps: a day of margin keeps runs that began just before the window
    "AND started_at >= fromUnixTimestamp64Nano({since:Int64}, 'UTC') - INTERVAL 1 DAY "
    "AND started_at < fromUnixTimestamp64Nano({until:Int64}, 'UTC')) AS r ON r.run_id = s.run_id"
)
_FAILURES_SQL = """
WITH (SELECT count() FROM runs FINAL WHERE project_id = {{project:String}}
      AND started_at >= fromUnixTimestamp64Nano({{since:Int64}}, 'UTC')
      AND started_at < fromUnixTimestamp64Nano({{until:Int64}}, 'UTC')) AS window_runs
SELECT key, uniqExactMerge(runs_state) AS run_count, sum(steps) AS step_count,
       min(first) AS first_seen, max(last) AS last_seen, any(window_runs) AS total_runs,
       arraySort(x -> x.1, groupArray((toUnixTimestamp(hour), steps))) AS trend,
       arraySlice(arrayDistinct(arrayFlatten(arrayMap(x -> x.2,
           arrayReverseSort(x -> x.1, groupArray((hour, ids)))))), 1, {{examples:UInt8}}) AS example_run_ids,
       arrayDistinct(arrayFlatten(groupArray(categories))) AS categories,
       argMax(message, last) AS sample_message
FROM (
    SELECT {key} AS key, toStartOfHour(s.start_time) AS hour, count() AS steps,
           uniqExactState(s.run_id) AS runs_state, min(s.start_time) AS first, max(s.start_time) AS last,
           groupUniqArray({{examples:UInt8}})(s.run_id) AS ids,
           groupUniqArray(toString(s.failure_category)) AS categories,
           argMax(substring(s.status_message, 1, 500), s.start_time) AS message
    FROM steps AS s{join}
    WHERE s.project_id = {{project:String}} AND s.failure_category != ''
      AND s.start_time >= fromUnixTimestamp64Nano({{since:Int64}}, 'UTC')
      AND s.start_time < fromUnixTimestamp64Nano({{until:Int64}}, 'UTC'){condition}
    GROUP BY key, hour
)
GROUP BY key ORDER BY last_seen DESC, key LIMIT {{limit:UInt32}}"""


def failure_groups(store, project_id: str, since_ns: int, until_ns: int, group_by: str,
                   limit: int = 50, examples: int = 5) -> tuple[list[dict], int]:
    """Failed steps of one project in a window, grouped by ``group_by`` (a key of
    :data:`FAILURE_GROUPS`), newest group first; and the number of runs started in the window.

    Each group: ``key``, ``run_count``, ``step_count``, ``first_seen``/``last_seen``, ``trend``
    ((hour start as epoch seconds, failed steps) for the hours with failures), a few
    ``example_run_ids`` (newest hours first), the ``categories`` seen and the newest message.
    One query.
    """
    key, condition = FAILURE_GROUPS[group_by]
    sql = _FAILURES_SQL.format(key=key, condition=condition, join=_AGENT_JOIN if group_by == "agent" else "")
    result = store.query(sql, parameters={"project": project_id, "since": since_ns, "until": until_ns,
                                          "limit": limit, "examples": examples})
    rows = list(result.named_results())
    total = rows[0]["total_runs"] if rows else 0
    return rows, total
__all__ = ["FAILURE_GROUPS", "failure_groups", "page_steps"]
