"""How a run row is derived from its steps — in ClickHouse, so it is one statement per commit.

The writer re-runs this for every run a commit touched.  Because it recomputes from the
stored steps (not by adding deltas), the run row is the same whatever order its spans came
in, and a duplicate span (already filtered by identity) can never be counted twice.

Rules (README, "Runs and steps"):
* the root span (no parent) gives status, timing, service and agent name;
* no root yet: status ``in_progress``, ``root_missing = 1``, timing from the steps seen;
* tokens and cost are summed over ``llm`` steps only — agent spans often repeat
  aggregated usage, and counting them too would double the total;
* totals the agent declared on its root (:mod:`.declared`) raise ``total_tokens`` and
  ``cost_usd`` to the declared value when that is greater than the llm steps' sum;
* ``cost_usd`` is NULL when the run has llm steps, none of them could be priced, and no
  cost was declared;
* ``failure_categories`` are the distinct categories of its failed steps (:mod:`agenttrail.analysis.classify`).
"""

from .declared import DECLARED_COST_SQL, DECLARED_TOKENS_SQL

# Two layers: the inner SELECT holds only aggregates over a run's steps (aliases ``a_``, so that
# none shadows a steps column another aggregate reads); the outer one derives the run's columns
# from them.  In one layer, every derived column repeated its aggregates' expressions (ClickHouse
# expands an alias where it is used), and the orphan count below its sorted id array four times,
# all of it planned again at every commit.

_ROOT = "parent_step_id = ''"
# A trace may hold several root spans.  The run's root is the first in step order (start time,
# then id), as for the validator (validator/reference.py), so that the row does not depend on
# the order ClickHouse happens to read rows in (anyIf did).  One aggregate carries every field
# of it, cheaper than one argMinIf per field; ``_root`` reads one field.
_ROOT_FIELDS = ("service_name", "agent_name", "name", "status", "status_message", "start_time", "end_time")


def _root(column: str) -> str:
    return f"tupleElement(a_root, {_ROOT_FIELDS.index(column) + 1})"


# Steps whose parent is not among the run's steps.  The plain form, ``arrayFilter(p -> NOT
# has(groupArray(step_id), p), ...)``, captures the id array in the lambda, and ClickHouse
# copies a captured array once per element: quadratic in the run's length.  Instead the ids (tag
# 0) and the non-empty parent ids (tag 1) are sorted together (``a_tagged_ids``), so each id's
# group starts with tag 0 when a step has that id; arrayFill carries each group's first element
# along it, and a parent id is an orphan when its group's first element is a parent too.  No
# lambda captures anything: n log n (checked against a direct count in
# tests/test_storage_writer.py).
_TAGGED_IDS = ("arraySort(arrayConcat(arrayMap(s -> (s, 0), groupArray(step_id)), "
               "arrayMap(p -> (p, 1), groupArrayIf(parent_step_id, parent_step_id != ''))))")
_GROUP_HEADS = ("arrayFill((x, starts_group) -> starts_group, a_tagged_ids, "
                "arrayMap((x, prev) -> x.1 != prev.1, a_tagged_ids, "
                "arrayPushFront(arrayPopBack(a_tagged_ids), ('', 2))))")
_ORPHANS = f"arrayCount((x, head) -> x.2 = 1 AND head.2 = 1, a_tagged_ids, {_GROUP_HEADS})"

# (name, aggregate over a run's steps): the inner layer.
RUN_AGGREGATES: tuple[tuple[str, str], ...] = (
    ("project_id", "project_id"),
    ("run_id", "run_id"),
    ("roots", f"countIf({_ROOT})"),
    ("root", f"argMinIf(tuple({', '.join(_ROOT_FIELDS)}), (start_time, step_id), {_ROOT})"),
    ("any_service", "any(service_name)"),
    ("named_steps", "countIf(agent_name != '')"),
    ("first_agent", "argMinIf(agent_name, start_time, agent_name != '')"),
    ("session_id", "argMinIf(session_id, start_time, session_id != '')"),
    ("user_id", "argMinIf(user_id, start_time, user_id != '')"),
    ("environment", "toString(argMinIf(environment, start_time, environment != ''))"),
    ("first_start", "min(start_time)"),
    ("last_start", "max(start_time)"),
    ("last_end", "max(end_time)"),
    ("step_count", "count()"),
    ("llm_calls", "countIf(kind = 'llm')"),
    ("tool_calls", "countIf(kind = 'tool')"),
    ("error_count", "countIf(status = 'error')"),
    ("input_tokens", "sumIf(input_tokens, kind = 'llm')"),
    ("output_tokens", "sumIf(output_tokens, kind = 'llm')"),
    ("cache_read_tokens", "sumIf(cache_read_tokens, kind = 'llm')"),
    ("reasoning_tokens", "sumIf(reasoning_tokens, kind = 'llm')"),
    ("llm_tokens", "sumIf(total_tokens, kind = 'llm')"),
    ("declared_tokens", f"max({DECLARED_TOKENS_SQL})"),
    ("declared_cost", f"max({DECLARED_COST_SQL})"),
    ("unpriced_llm_calls", "countIf(kind = 'llm' AND cost_usd IS NULL)"),
    ("llm_cost", "sumIf(assumeNotNull(cost_usd), kind = 'llm' AND cost_usd IS NOT NULL)"),
    ("tagged_ids", _TAGGED_IDS),
    ("tools", "arraySort(groupUniqArrayIf(tool_name, tool_name != ''))"),
    ("models", "arraySort(groupUniqArrayIf(toString(model), model != ''))"),
    ("failure_categories", "arraySort(groupUniqArrayIf(toString(failure_category), failure_category != ''))"),
    ("first_seen_at", "min(ingested_at)"),
    ("last_span_at", "max(ingested_at)"),
)

_STARTED = f"if(a_roots > 0, {_root('start_time')}, a_first_start)"
_ENDED = f"if(a_roots > 0, {_root('end_time')}, a_last_end)"

# (run column, its value from the aggregates): the outer layer, in the runs table's order.
RUN_COLUMN_VALUES: tuple[tuple[str, str], ...] = (
    ("project_id", "a_project_id"),
    ("run_id", "a_run_id"),
    ("service_name", f"if(a_roots > 0, {_root('service_name')}, a_any_service)"),
    ("agent_name", f"multiIf(a_roots > 0 AND {_root('agent_name')} != '', {_root('agent_name')}, "
                   f"a_named_steps > 0, a_first_agent, {_root('name')})"),
    ("session_id", "a_session_id"),
    ("user_id", "a_user_id"),
    ("environment", "a_environment"),
    ("root_name", _root("name")),
    ("status", f"multiIf(a_roots = 0, 'in_progress', {_root('status')} = 'error', 'error', 'ok')"),
    ("status_message", _root("status_message")),
    ("started_at", _STARTED),
    ("ended_at", _ENDED),
    ("duration_ms", f"greatest(toInt64(toUnixTimestamp64Nano({_ENDED})) - toInt64(toUnixTimestamp64Nano({_STARTED})), 0) / 1e6"),
    ("step_count", "a_step_count"),
    ("llm_calls", "a_llm_calls"),
    ("tool_calls", "a_tool_calls"),
    ("error_count", "a_error_count"),
    ("input_tokens", "a_input_tokens"),
    ("output_tokens", "a_output_tokens"),
    ("cache_read_tokens", "a_cache_read_tokens"),
    ("reasoning_tokens", "a_reasoning_tokens"),
    ("total_tokens", "greatest(a_llm_tokens, a_declared_tokens)"),
    ("unpriced_llm_calls", "a_unpriced_llm_calls"),
    ("cost_usd", "if(a_llm_calls > 0 AND a_unpriced_llm_calls = a_llm_calls AND a_declared_cost = 0, NULL, "
                 "greatest(a_llm_cost, a_declared_cost))"),
    ("root_missing", "a_roots = 0"),
    ("orphan_count", _ORPHANS),
    ("tools", "a_tools"),
    ("models", "a_models"),
    ("first_seen_at", "a_first_seen_at"),
    ("last_span_at", "a_last_span_at"),
    ("first_step_at", "a_first_start"),
    ("last_step_at", "a_last_start"),
    ("failure_categories", "a_failure_categories"),
)
RUN_COLUMNS: tuple[str, ...] = tuple(name for name, _ in RUN_COLUMN_VALUES)

RUN_AGGREGATES_SQL = ",\n    ".join(f"{expr} AS a_{name}" for name, expr in RUN_AGGREGATES)
"""The select list that turns a group of steps into the aggregates (aliases ``a_<name>``)."""


def runs_select_sql(source: str, version: str = "{version:UInt64}") -> str:
    """The run rows (columns named as in ``runs``, then ``version``) that the aggregates make of
    the steps in ``source`` (a table or subquery, with any WHERE clause), stamped ``version``."""
    return f"""
SELECT {", ".join(f"{value} AS {name}" for name, value in RUN_COLUMN_VALUES)}, {version} AS version
FROM (
    SELECT {RUN_AGGREGATES_SQL}
    FROM {source}
    GROUP BY project_id, run_id
)"""


def runs_insert_sql(source: str, version: str = "{version:UInt64}") -> str:
    """``INSERT INTO runs`` of :func:`runs_select_sql`."""
    return f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}, version){runs_select_sql(source, version)}"


# The runs of one commit are spread over the whole (project_id, run_id) key space, so the key
# alone selects a granule of nearly every part, and each commit read close to the whole table
# (~0.5 s of CPU for 1000 runs at 4M stored steps).  ``since`` (ms) is a time no later than the
# ingest of any stored step of these runs (the writer derives it from their ``first_seen_at``);
# with the minmax index on ``ingested_at`` ClickHouse skips every older granule.
#
# Not FINAL: under FINAL, ClickHouse widens a skip-index selection back to every granule that
# shares key ranges with it (exact mode), which undoes the bound.  ``LIMIT 1 BY`` the span's
# identity collapses a span stored twice just as well (the writer stores each span once; this
# guards against concurrent writers), and works on every server version.
#
# ``$runs$`` is the commit's run ids, comma-separated (``writer.run_ids_parameter``).
RECOMPUTE_RUNS_SQL = runs_insert_sql("""(
        SELECT * FROM steps
        WHERE project_id IN {projects:Array(String)} AND run_id IN splitByChar(',', $runs$)
          AND ingested_at >= fromUnixTimestamp64Milli({since:Int64})
        LIMIT 1 BY project_id, run_id, step_id
    )""")


# The writer of an embedded store is the only one (chDB binds a data directory to one
# process), so the steps of a run that has no run row are exactly those of the commit in hand.
# While that writer runs, a materialized view on ``steps`` (COMMIT_RUNS_VIEW) aggregates every
# insert's runs into ``runs`` as it is written: the block is parsed once, and no read of
# ``steps`` is needed, where the recompute above reads a granule of every part for each run
# once merges have mixed old and new rows.
#
# The view writes a row for every run in the insert, and only a new run's is right: for a run
# already stored it is a partial row, made of this commit's steps alone, and the writer then
# recomputes that run from ``steps``.  So that such a row never wins, not even while the
# recompute is pending or after it failed, the view's rows carry COMMIT_ROWS_VERSION: below every
# recomputed row's version (a time in nanoseconds, ~1.7e18 and growing), and falling as time
# passes, so a later commit's partial row also loses to the earlier commit's row of a run never
# yet recomputed.  A new run's row is its only row, and wins.  The view then needs no list of
# which runs are new, which would be a table the view reads at every insert.
#
# ClickHouse squashes an insert's blocks into one before the view sees it; COMMIT_INSERT_SETTINGS
# make sure a large commit is not split, which would give a new run two partial rows.
# WRITER_MARKER exists from a writer's first commit to its clean stop, so finding it at start
# means the last process died (writer.BatchWriter); its name is the one earlier versions used
# for their staging table, which marked the same thing.
#
# The runs a commit recomputes are put in COMMIT_RECOMPUTED (an in-memory Set) before its
# insert, and the view leaves them out: their partial rows would only lose, yet cost the view's
# aggregate and a row in ``runs`` and ``runs_by_start`` each, for three runs in four when long
# runs arrive in several requests.  The Set only ever holds runs the writer recomputes next, so
# a stale or empty Set costs a losing row, never a missing one.
WRITER_MARKER = "writer_staging"
COMMIT_ROWS_VERSION = "toUInt64(1000000000000000000 - toUnixTimestamp64Micro(now64(6)))"
COMMIT_RUNS_VIEW = "writer_runs_view"
COMMIT_RECOMPUTED = "writer_recomputed"
COMMIT_VIEW_DDL: tuple[str, ...] = (
    f"DROP VIEW IF EXISTS {COMMIT_RUNS_VIEW}",
    "DROP VIEW IF EXISTS writer_steps_view",  # earlier versions' objects
    "DROP TABLE IF EXISTS writer_steps_in",
    f"CREATE OR REPLACE TABLE {WRITER_MARKER} (started_at DateTime64(3, 'UTC')) ENGINE = Memory",
    f"CREATE OR REPLACE TABLE {COMMIT_RECOMPUTED} (project_id String, run_id String) "
    "ENGINE = Set SETTINGS persistent = 0",
    f"CREATE MATERIALIZED VIEW {COMMIT_RUNS_VIEW} TO runs AS "
    f"{runs_select_sql(f'steps WHERE (project_id, run_id) NOT IN {COMMIT_RECOMPUTED}', COMMIT_ROWS_VERSION)}",
)
"""Statements that (re)create the marker, the Set of recomputed runs and the view, in order."""
COMMIT_VIEW_DROP: tuple[str, ...] = (
    f"DROP VIEW IF EXISTS {COMMIT_RUNS_VIEW}",
    f"DROP TABLE IF EXISTS {COMMIT_RECOMPUTED}",
    f"DROP TABLE IF EXISTS {WRITER_MARKER}",
)
"""Statements that remove them at a clean stop, the marker last."""
COMMIT_INSERT_SETTINGS = {"min_insert_block_size_rows": 1 << 40, "min_insert_block_size_bytes": 1 << 40}
