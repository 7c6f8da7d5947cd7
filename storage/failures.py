"""Failure reads: the light step rows the run analysis needs for a page of runs.

The failure block of each run in a list comes from one query over the steps of the page's
runs that can have one (not one query per run), reading only what retry, loop and root-cause
rules look at; tool arguments are compared, never shown, so a hash of them is read instead.
"""

from __future__ import annotations

from .runs import steps_of_runs

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
    ``runs`` (as the run lists return them), one query (:func:`~.runs.steps_of_runs`)."""
    grouped = steps_of_runs(store, runs, _LIGHT_STEP_SELECT)
    for steps in grouped.values():
        for step in steps:
            step["failure_step_ref"] = step["failure_step_ref"] or None
    return grouped


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
