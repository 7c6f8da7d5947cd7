"""Failure reads: the light step rows the run analysis needs for a page of runs.

The failure block of each run in a list comes from one query over the page's steps (not one
per run), reading only what retry, loop and root-cause rules look at; tool arguments are
compared, never shown, so a hash of them is read instead of the text.
"""

from __future__ import annotations

from .runs import _in_execution_order

_LIGHT_STEP_SELECT = (
    "project_id, run_id, step_id, parent_step_id, name, kind, tool_name, "
    "toString(cityHash64(tool_arguments)) AS tool_arguments, model, status, "
    "failure_category, failure_type, start_time, "
    # the step an SDK failure event names as the cause (agenttrail.failure.step_id), on failed steps only
    "if(status = 'error', arrayStringConcat(arrayMap((n, a) -> if(n = 'agenttrail.failure', "
    "a['agenttrail.failure.step_id'], ''), `events.name`, `events.attributes`)), '') AS failure_step_ref"
)


def page_steps(store, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
    """(project_id, run_id) → that run's light step rows in execution order, one query."""
    if not keys:
        return {}
    result = store.query(
        f"SELECT {_LIGHT_STEP_SELECT} FROM steps FINAL WHERE project_id IN {{projects:Array(String)}} "
        "AND run_id IN {runs:Array(String)}",
        parameters={"projects": sorted({k[0] for k in keys}), "runs": sorted({k[1] for k in keys})})
    wanted = set(keys)
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in result.named_results():
        key = (row["project_id"], row["run_id"])
        if key in wanted:
            row["failure_step_ref"] = row["failure_step_ref"] or None
            grouped.setdefault(key, []).append(row)
    return {key: _in_execution_order(steps) for key, steps in grouped.items()}


__all__ = ["page_steps"]
