"""Storage side of the event API: read back steps to merge into, and drop them before rewriting.

The writer deduplicates on (project_id, run_id, step_id): a second row for a stored step is a
duplicate and is dropped.  An event that completes a stored step (``step.end`` after a
``step.start`` written by an earlier request) therefore deletes the stored row and writes the
merged one.  Lightweight ``DELETE`` keeps that cheap for the handful of rows one request
touches; between the delete and the write a reader may briefly miss that step.
"""

from __future__ import annotations

from .model import STEP_COLUMN_NAMES

_TIMES = {"start_time", "end_time"}


def _select_list() -> str:
    parts = []
    for name in STEP_COLUMN_NAMES:
        if name in _TIMES:
            parts.append(f"toUnixTimestamp64Nano({name}) AS {name}")
        elif name == "events.time":
            parts.append("arrayMap(t -> toUnixTimestamp64Nano(t), `events.time`) AS `events.time`")
        else:
            parts.append(f"`{name}`")
    return ", ".join(parts)


def load_steps(store, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict]:
    """Stored step rows (StepBatch column values) for the given (project, run, step) keys."""
    if not keys:
        return {}
    projects = sorted({k[0] for k in keys})
    runs = sorted({k[1] for k in keys})
    steps = sorted({k[2] for k in keys})
    result = store.query(
        f"SELECT {_select_list()} FROM steps FINAL WHERE project_id IN {{projects:Array(String)}} "
        "AND run_id IN {runs:Array(String)} AND step_id IN {steps:Array(String)}",
        parameters={"projects": projects, "runs": runs, "steps": steps},
    )
    found = {}
    for row in result.named_results():
        key = (row["project_id"], row["run_id"], row["step_id"])
        if key in keys:
            row["attributes"] = dict(row["attributes"])
            found[key] = row
    return found


def delete_steps(store, keys: set[tuple[str, str, str]]) -> None:
    """Delete the given stored steps so that merged rows can be written in their place."""
    for project, run in sorted({(k[0], k[1]) for k in keys}):
        steps = sorted(k[2] for k in keys if k[:2] == (project, run))
        store.command(
            "DELETE FROM steps WHERE project_id = {project:String} AND run_id = {run:String} "
            "AND step_id IN {steps:Array(String)}",
            parameters={"project": project, "run": run, "steps": steps},
        )


def run_projects(store, runs: list[str], projects: frozenset[str] | None) -> dict[str, str]:
    """The project of each already-stored run (among those the caller may see)."""
    if not runs:
        return {}
    clause, params = "", {}
    if projects is not None:
        clause, params = " AND project_id IN {projects:Array(String)}", {"projects": sorted(projects)}
    result = store.query(
        f"SELECT run_id, any(project_id) FROM runs WHERE run_id IN {{runs:Array(String)}}{clause} GROUP BY run_id",
        parameters={"runs": runs, **params},
    )
    return dict(result.result_rows)
