"""Reading runs and their steps.

Callers pass the projects the caller may see (``None`` = all); a run in another project is
simply not found, so the API can answer 404 without revealing it exists.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .runs_sql import RUN_COLUMNS

RUN_FIELDS = RUN_COLUMNS

# What the API shows of a step, and no more: a point read's cost grows with every column read
# far more than with the rows (bench/query_bench.py; docs/api.md, Speed).
STEP_FIELDS = (
    "step_id", "parent_step_id", "name", "kind", "operation", "tool_name", "tool_call_id",
    "tool_arguments", "model", "provider", "status", "status_message", "error_type", "start_time",
    "end_time", "duration_ns", "input_tokens", "output_tokens", "cache_read_tokens",
    "reasoning_tokens", "total_tokens", "cost_usd", "cost_source", "finish_reasons", "unmapped_usage",
    "attributes", "events.time", "events.name", "events.attributes", "truncated",
    "failure_category", "failure_type", "error_fingerprint",
)


def _project_clause(projects) -> tuple[str, dict]:
    if projects is None:
        return "", {}
    return " AND project_id IN {projects:Array(String)}", {"projects": sorted(projects)}


def _run_row_sql(columns: str, clause: str) -> str:
    # The newest row for the id: a trace id sent under two projects has a row in each.
    return (f"SELECT {columns} FROM runs FINAL WHERE run_id = {{run_id:String}}{clause} "
            "ORDER BY last_span_at DESC LIMIT 1")


def get_run(store, run_id: str, projects=None) -> dict | None:
    """The run row for ``run_id`` (normalised hex) or None when absent or not visible."""
    clause, params = _project_clause(projects)
    result = store.query(_run_row_sql(", ".join(RUN_FIELDS), clause),
                         parameters={"run_id": run_id, **params})
    rows = result.named_results()
    return next(iter(rows), None)


_STEP_SELECT = ", ".join("`" + f + "`" for f in ("project_id",) + STEP_FIELDS)


def get_steps(store, project_id: str, run_id: str) -> list[dict]:
    """Every step of a run, in execution order, with ``index`` and tree ``depth`` added.

    Order: start time, then depth (parent before child), then span id — the same however
    the spans arrived.  Depth counts ancestors present in the run (an orphan's subtree starts at 0).
    """
    result = store.query(
        f"SELECT {_STEP_SELECT} FROM steps FINAL WHERE project_id = {{project:String}} AND run_id = {{run_id:String}}",
        parameters={"project": project_id, "run_id": run_id},
    )
    return _in_execution_order(list(result.named_results()))


# A run's steps, bounded by what its row says of them: ``steps`` is partitioned by the day a
# span started and sorted by run within each part, so a read by key alone looks into a granule
# of every part of every day kept (78 of 82 parts at 50M steps, each checked against the
# run-id bloom filter), where the row's first and last step start select the parts that hold
# them.  Rows stored before schema v8 hold the epoch in both: read from then on, unbounded.
_RUN_BOUNDS_SQL = ("(project_id, first_step_at, if(last_step_at = toDateTime64(0, 9, 'UTC'), "
                   "toDateTime64('2200-01-01 00:00:00', 9, 'UTC'), last_step_at))")


def get_run_steps(store, run_id: str, projects=None) -> list[dict]:
    """The steps of the run :func:`get_run` returns for the same arguments, without first
    knowing its project: the project and the bounds of its steps' start times come from a
    read of ``runs`` inside the query, so this can run side by side with :func:`get_run`
    (each read is mostly ClickHouse's fixed per-query cost; one after the other they add up).
    These are the steps that row counts, and any stored since whose start lies within them.
    Each step carries ``project_id``: a caller holding the run row can check both reads saw
    the same run.

    Not FINAL: it merged every granule the key selects before the start bound could skip
    them (21–23 ms against 12 for a run at 50M steps); a span stored twice is dropped here.
    """
    clause, params = _project_clause(projects)
    result = store.query(
        f"WITH ({_run_row_sql(_RUN_BOUNDS_SQL, clause)}) AS run "
        f"SELECT {_STEP_SELECT} FROM steps WHERE run_id = {{run_id:String}} AND project_id = tupleElement(run, 1) "
        "AND start_time >= tupleElement(run, 2) AND start_time <= tupleElement(run, 3)",
        parameters={"run_id": run_id, **params},
    )
    steps = {row["step_id"]: row for row in result.named_results()}
    return _in_execution_order(list(steps.values()))


def steps_of_runs(store, runs: list[dict], select: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """(project_id, run_id) → that run's steps in execution order, for the run rows ``runs``
    (as :func:`get_run` or the run lists return them), one query rather than one per run.

    ``select`` is the columns to read, ``project_id`` and ``run_id`` among them (default: those
    :func:`get_steps` returns, and ``run_id``).  Only steps ingested between the rows' earliest
    ``first_seen_at`` and latest ``last_span_at``, and started between their earliest
    ``first_step_at`` and latest ``last_step_at``, are read: a run row is computed from all of
    its stored steps, so these are exactly the steps each row counts.  The minmax index on
    ``ingested_at`` skips the granules of other times, and the start bound the daily
    partitions of other days (a store whose spans were all ingested at once, a backfill, has
    nothing for the first to skip)."""
    if not runs:
        return {}
    keys = [(r["project_id"], r["run_id"]) for r in runs]
    # No FINAL: it merges every part's granules of these runs before filtering, 1.3 s instead
    # of 76 ms for 50 runs at 10M steps; a span stored twice is dropped here instead.
    # The keys as one set of pairs: a set of projects and a set of runs would select every
    # granule that may hold any of the projects with any of the runs.
    sql = (f"SELECT {select or 'run_id, ' + _STEP_SELECT} FROM steps "
           "WHERE (project_id, run_id) IN {keys:Array(Tuple(String, String))} "
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
    grouped: dict[tuple[str, str], dict[str, dict]] = {}
    for row in store.query(sql, parameters=parameters).named_results():
        grouped.setdefault((row["project_id"], row["run_id"]), {})[row["step_id"]] = row
    return {key: _in_execution_order(list(steps.values())) for key, steps in grouped.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ms(value: datetime) -> int:
    """Milliseconds since the epoch of a stored DateTime64(3) (exact: no float on the way)."""
    return (_utc(value) - _EPOCH) // timedelta(milliseconds=1)


def _us(value: datetime) -> int:
    """Microseconds since the epoch of a datetime read back from ClickHouse."""
    return (_utc(value) - _EPOCH) // timedelta(microseconds=1)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value  # read back as UTC


def _in_execution_order(steps: list[dict]) -> list[dict]:
    # Sorted here, not in SQL: the order needs each step's depth, which needs the whole run.
    depths = step_depths({s["step_id"]: s["parent_step_id"] for s in steps})
    for step in steps:
        step["depth"] = depths[step["step_id"]]
    steps.sort(key=lambda s: (s["start_time"], s["depth"], s["step_id"]))
    for index, step in enumerate(steps):
        step["index"] = index
    return steps


def step_depths(parents: dict[str, str]) -> dict[str, int]:
    """Depth of every step given ``step_id -> parent_step_id``; cycles and gaps end a chain."""
    depths: dict[str, int] = {}
    for start in parents:
        path, current = [], start
        while current not in depths:
            path.append(current)
            parent = parents[current]
            if parent not in parents or parent in path:
                depths[current] = 0
                path.pop()
                break
            current = parent
        depth = depths[current]
        for node in reversed(path):
            depth += 1
            depths[node] = depth
    return depths


# -- validations (table of migration 2, written by agenttrail.validator) ---------------------

_PASS_RATE_SQL = """
SELECT count() AS validated_runs, countIf(latest = 'passed') AS passed_runs,
       countIf(latest = 'failed') AS failed_runs, countIf(latest = 'incomplete') AS incomplete_runs
FROM (
    SELECT run_id, argMax(status, created_at) AS latest FROM validations FINAL
    WHERE project_id = {project:String} AND run_id IN (
        SELECT run_id FROM runs WHERE project_id = {project:String}
        AND started_at >= fromUnixTimestamp64Nano({since:Int64}, 'UTC')
        AND started_at < fromUnixTimestamp64Nano({until:Int64}, 'UTC'))
    GROUP BY run_id
)"""


def validation_pass_rate(store, project_id: str, since_ns: int, until_ns: int) -> dict:
    """How the latest validation of each run started in the window came out.

    ``pass_rate`` = passed / (passed + failed); incomplete verdicts (no root span yet) are
    counted apart; ``pass_rate`` is None when no run of the window has a decided verdict.
    """
    row = next(iter(store.query(_PASS_RATE_SQL, parameters={
        "project": project_id, "since": since_ns, "until": until_ns}).named_results()))
    decided = row["passed_runs"] + row["failed_runs"]
    row["pass_rate"] = round(row["passed_runs"] / decided, 6) if decided else None
    return row


def latest_verdicts(store, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The newest validation's status, runbook and time per (project_id, run_id) key, one query."""
    if not keys:
        return {}
    result = store.query(
        "SELECT project_id, run_id, validation_id, status, runbook_name, runbook_version, created_at "
        "FROM validations FINAL WHERE (project_id, run_id) IN {keys:Array(Tuple(String, String))} "
        "ORDER BY created_at DESC LIMIT 1 BY project_id, run_id",
        parameters={"keys": sorted(set(keys))},  # pairs: granules of these runs only (fetch_runs)
    )
    return {(r["project_id"], r["run_id"]): r for r in result.named_results()}
