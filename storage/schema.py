"""Versioned DDL for agenttrail's ClickHouse tables.

Each migration is a list of statements rendered from :class:`SchemaOptions`, so the same
definitions serve the embedded engine, a single server and (with ``cluster``) a cluster.
Applied versions are recorded in ``schema_migrations``; :func:`migrate` runs the missing ones
in order at start-up.

Table design (why the keys are what they are):

* ``steps`` — one row per span.  ``ORDER BY (project_id, run_id, step_id)`` makes "all steps
  of one run" a primary-key range read and is the replacing key that collapses a span
  delivered twice.  Daily partitions on the span's start time drop cleanly with the TTL.
* ``runs`` — one row per trace, recomputed from ``steps`` by the writer after every commit,
  so it is right whatever order spans arrive in.  ``ReplacingMergeTree(version)`` keeps the
  newest recomputation; readers use ``FINAL``.  A minmax index on ``started_at`` lets time
  windows skip granules; small granules and compression blocks keep a page of scattered runs
  cheap to read (migration 7).
* ``runs_by_start`` — the same rows again, sorted by the minute each run started and fed by a
  materialized view on ``runs``, so a list of the newest runs reads from the end of the table
  instead of every run's filter columns (migration 9).
* ``otel_traces`` — a view over ``steps`` with the OpenTelemetry Collector ClickHouse
  exporter's column names and values (``SPAN_KIND_INTERNAL``, …), so Grafana's ClickHouse
  plugin trace mode reads agenttrail data.

Cluster mode (``cluster`` set): every DDL carries ``ON CLUSTER``, engines are ``Replicated*``,
and :func:`rendered` turns each table into ``<name>_local`` plus a ``Distributed`` ``<name>``
sharded by ``cityHash64(run_id)``, so all other code keeps the table names above.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable

from .cluster import distribute

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class SchemaError(ValueError):
    """A schema option (database or cluster name, TTL) is not acceptable."""


@dataclass(frozen=True)
class SchemaOptions:
    """What the DDL depends on.

    ``database`` and ``cluster`` are identifiers: they cannot be bound parameters in DDL, so
    they are validated against a strict pattern instead.  ``ttl_days`` of 0 keeps data forever.
    """

    database: str = "agenttrail"
    cluster: str | None = None
    ttl_days: int = 0

    def __post_init__(self) -> None:
        for label, value in (("database", self.database), ("cluster", self.cluster)):
            if value is not None and not _IDENTIFIER.match(value):
                raise SchemaError(f"{label} name {value!r} must match {_IDENTIFIER.pattern}")
        if not isinstance(self.ttl_days, int) or self.ttl_days < 0:
            raise SchemaError(f"ttl_days must be a non-negative integer, not {self.ttl_days!r}")

    @property
    def on_cluster(self) -> str:
        """The ``ON CLUSTER`` clause, empty outside cluster mode."""
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def engine(self, name: str, *args: str) -> str:
        """A MergeTree-family engine clause, replicated in cluster mode."""
        if self.cluster:
            zk = ["'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'"]
            return f"Replicated{name}({', '.join(zk + list(args))})"
        return f"{name}({', '.join(args)})"

    def ttl(self, column: str) -> str:
        """A TTL clause on ``column``, empty when data is kept forever."""
        if not self.ttl_days:
            return ""
        return f"\nTTL toDateTime({column}) + INTERVAL {int(self.ttl_days)} DAY"


STEP_COLUMNS_DDL = """
    project_id            LowCardinality(String),
    run_id                String,
    step_id               String,
    parent_step_id        String,
    trace_state           String,
    name                  String,
    kind                  LowCardinality(String),
    span_kind             LowCardinality(String),
    operation             LowCardinality(String),
    service_name          LowCardinality(String),
    scope_name            LowCardinality(String),
    scope_version         LowCardinality(String),
    agent_name            String,
    session_id            String,
    user_id               String,
    environment           LowCardinality(String),
    tool_name             String,
    tool_call_id          String,
    tool_arguments        String,
    model                 LowCardinality(String),
    provider              LowCardinality(String),
    status                LowCardinality(String),
    status_message        String,
    error_type            String,
    start_time            DateTime64(9, 'UTC'),
    end_time              DateTime64(9, 'UTC'),
    duration_ns           UInt64,
    input_tokens          UInt64,
    output_tokens         UInt64,
    cache_read_tokens     UInt64,
    cache_creation_tokens UInt64,
    reasoning_tokens      UInt64,
    total_tokens          UInt64,
    cost_usd              Nullable(Float64),
    cost_source           LowCardinality(String),
    finish_reasons        Array(String),
    unmapped_usage        Map(String, String),
    attributes            Map(LowCardinality(String), String),
    resource_attributes   Map(LowCardinality(String), String),
    events                Nested(time DateTime64(9, 'UTC'), name LowCardinality(String),
                                 attributes Map(LowCardinality(String), String)),
    links                 Nested(trace_id String, span_id String, trace_state String,
                                 attributes Map(LowCardinality(String), String)),
    truncated             UInt8,
    ingested_at           DateTime64(3, 'UTC')"""


# Columns added after v1, in the order they were added (the insert reads its types from both).
FAILURE_COLUMNS_DDL = """
    failure_category      LowCardinality(String),
    failure_type          LowCardinality(String),
    error_fingerprint     String"""


def _v1_core(o: SchemaOptions) -> list[str]:
    db = o.database
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.steps{o.on_cluster} ({STEP_COLUMNS_DDL},
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_tool tool_name TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = {o.engine("ReplacingMergeTree")}
PARTITION BY toDate(start_time)
ORDER BY (project_id, run_id, step_id){o.ttl("start_time")}
SETTINGS ttl_only_drop_parts = 1""",
        f"""CREATE TABLE IF NOT EXISTS {db}.runs{o.on_cluster} (
    project_id        LowCardinality(String),
    run_id            String,
    service_name      LowCardinality(String),
    agent_name        String,
    session_id        String,
    user_id           String,
    environment       LowCardinality(String),
    root_name         String,
    status            LowCardinality(String),
    status_message    String,
    started_at        DateTime64(9, 'UTC'),
    ended_at          DateTime64(9, 'UTC'),
    duration_ms       Float64,
    step_count        UInt64,
    llm_calls         UInt64,
    tool_calls        UInt64,
    error_count       UInt64,
    input_tokens      UInt64,
    output_tokens     UInt64,
    cache_read_tokens UInt64,
    reasoning_tokens  UInt64,
    total_tokens      UInt64,
    cost_usd          Nullable(Float64),
    unpriced_llm_calls UInt64,
    root_missing      UInt8,
    orphan_count      UInt64,
    tools             Array(String),
    models            Array(String),
    first_seen_at     DateTime64(3, 'UTC'),
    last_span_at      DateTime64(3, 'UTC'),
    version           UInt64,
    INDEX idx_started started_at TYPE minmax GRANULARITY 1,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {o.engine("ReplacingMergeTree", "version")}
ORDER BY (project_id, run_id){o.ttl("started_at")}""",
        f"""CREATE VIEW IF NOT EXISTS {db}.otel_traces{o.on_cluster} AS
SELECT
    start_time                      AS Timestamp,
    run_id                          AS TraceId,
    step_id                         AS SpanId,
    parent_step_id                  AS ParentSpanId,
    trace_state                     AS TraceState,
    name                            AS SpanName,
    concat('SPAN_KIND_', span_kind) AS SpanKind,
    service_name                    AS ServiceName,
    resource_attributes             AS ResourceAttributes,
    scope_name                      AS ScopeName,
    scope_version                   AS ScopeVersion,
    attributes                      AS SpanAttributes,
    duration_ns                     AS Duration,
    multiIf(status = 'error', 'Error', status = 'ok', 'Ok', 'Unset') AS StatusCode,
    status_message                  AS StatusMessage,
    events.time                     AS `Events.Timestamp`,
    events.name                     AS `Events.Name`,
    events.attributes               AS `Events.Attributes`,
    links.trace_id                  AS `Links.TraceId`,
    links.span_id                   AS `Links.SpanId`,
    links.trace_state               AS `Links.TraceState`,
    links.attributes                AS `Links.Attributes`,
    project_id                      AS ProjectId,
    kind                            AS StepKind
FROM {db}.steps""",
    ]


def _v2_validations(o: SchemaOptions) -> list[str]:
    """Runbook verdicts and stored runbooks (agenttrail.validator).

    ``validations``: ``ORDER BY (project_id, run_id, input_hash)`` makes "validations of run
    X" (latest first) a primary-key range read and collapses a verdict stored twice for the
    same run state; a minmax index on ``created_at`` serves "a project's validations in a
    window".  ``runbooks``: one row per (project, name, version); the newest version wins.
    """
    db = o.database
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.validations{o.on_cluster} (
    validation_id   String,
    project_id      LowCardinality(String),
    run_id          String,
    runbook_name    String,
    runbook_version UInt32,
    runbook_hash    String,
    status          LowCardinality(String),
    reasons         String,
    summary         String,
    input_hash      String,
    source          LowCardinality(String),
    created_at      DateTime64(3, 'UTC'),
    INDEX idx_created created_at TYPE minmax GRANULARITY 1,
    INDEX idx_run_id run_id TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = {o.engine("ReplacingMergeTree")}
ORDER BY (project_id, run_id, input_hash){o.ttl("created_at")}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.runbooks{o.on_cluster} (
    project_id      LowCardinality(String),
    name            String,
    version         UInt32,
    yaml            String,
    hash            String,
    applies_agent   String,
    applies_service String,
    auto            UInt8,
    created_at      DateTime64(3, 'UTC')
) ENGINE = {o.engine("ReplacingMergeTree")}
ORDER BY (project_id, name, version)""",
    ]


def _v3_ingest_window(o: SchemaOptions) -> list[str]:
    """A minmax index on ``steps.ingested_at``, built for existing parts too.

    Run ids are random, so the steps of the runs one commit touches sit in a granule of
    nearly every part: finding them by key reads close to the whole table, and each commit's
    duplicate check and run recompute grew with it (~1 s of CPU per commit at 10M steps).
    A run's stored steps were all ingested since its ``first_seen_at``, so the writer also
    bounds both reads by ingest time, and this index lets ClickHouse skip every older granule.
    """
    db = o.database
    return [
        f"ALTER TABLE {db}.steps{o.on_cluster} ADD INDEX IF NOT EXISTS idx_ingested ingested_at "
        f"TYPE minmax GRANULARITY 1",
        f"ALTER TABLE {db}.steps{o.on_cluster} MATERIALIZE INDEX idx_ingested",
    ]


def _v4_vertical_merges(o: SchemaOptions) -> list[str]:
    """Merge ``steps`` column by column once a merge holds more than a granule of rows.

    By default ClickHouse merges row by row ("horizontal") below 131,072 rows: every cell of
    every column is copied on its own, and ~50 columns with two attribute maps make that ~7 µs
    of CPU per row when ten 8,192-row parts merge (``bench/merge_bench.py``).  A vertical merge
    sorts by the key columns once, then gathers each other column in bulk: 3.8 µs there, and
    3.5 -> 3.1 µs for five 32,768-row parts.  Merges below a granule still run horizontally
    (their result is a compact part, where vertical gained nothing measurable).  A setting
    change only: parts are untouched.
    """
    return [
        f"ALTER TABLE {o.database}.steps{o.on_cluster} "
        f"MODIFY SETTING vertical_merge_algorithm_min_rows_to_activate = 8192",
    ]


class Tuning(str):
    """A statement that only tunes performance, with a setting an older server may not know:
    :func:`migrate` skips it there (with a warning) rather than refuse to start."""


def _v5_wider_merges(o: SchemaOptions) -> list[str]:
    """Merge ``steps`` parts about twenty at a time, not five: each span is rewritten fewer times.

    ClickHouse's merge selector (``merge_selector_base``, default 5) merges a handful of parts
    as soon as they are similar in size, so a span inserted in a ~10,000-span part is rewritten
    at every step of a 5x ladder to the large parts.  On an ingest-bound store those merges took
    6.7-11 µs of CPU per span; at 20 they take 4.1-5.5 (``bench/ingest_bench.py --protocol http
    --requests 1500`` prints the merges' share).  The price is more parts alive at once (22
    instead of 8 after 2M spans; ClickHouse slows inserts at 1,000): docs/performance.md, Merges.
    The setting exists from ClickHouse 24.11; older servers keep the default.
    """
    return [Tuning(f"ALTER TABLE {o.database}.steps{o.on_cluster} MODIFY SETTING merge_selector_base = 20")]


def _v6_failures(o: SchemaOptions) -> list[str]:
    """Failure analysis columns on ``steps`` (filled at ingest by agenttrail.analysis.classify).

    ``failure_category`` / ``failure_type`` are small closed sets (LowCardinality); a ``set``
    skip index on the category lets "runs with a failed step of category X" and the failures
    breakdown skip the granules of steps that did not fail, which are nearly all of them.
    Steps stored before this version read as not failed ('') in these columns; the run
    analysis classifies their failed steps when it reads them.
    """
    db = o.database
    return [
        f"ALTER TABLE {db}.steps{o.on_cluster} ADD COLUMN IF NOT EXISTS {column} AFTER {after}"
        for column, after in (("failure_category LowCardinality(String)", "truncated"),
                              ("failure_type LowCardinality(String)", "failure_category"),
                              ("error_fingerprint String", "failure_type"))
    ] + [
        f"ALTER TABLE {db}.steps{o.on_cluster} ADD INDEX IF NOT EXISTS idx_failure_category failure_category "
        f"TYPE set(32) GRANULARITY 4",
    ]


RUNS_LAYOUT = "index_granularity = 1024, min_compress_block_size = 4096, max_compress_block_size = 65536"


def _v7_run_layout(o: SchemaOptions) -> list[str]:
    """Rebuild ``runs`` with 1,024-row granules and compression blocks of about one granule.

    ``runs`` is sorted by run id, so a page of runs (the newest, the most expensive) is a
    scattered handful of rows, and each costs a whole granule of every column read: with
    8,192-row granules and 64 KB-1 MB blocks, ~150 MB decompressed to show 50 runs at 5M runs;
    with these, an eighth of that (docs/api.md, Speed).  Granularity is fixed when a table is
    created, so the rows are copied into a new table that then takes the old one's name; rows
    another receiver recomputed during the copy are copied over after the swap.  A cluster
    keeps its layout: swapping replicated tables on every shard is not done at start-up
    (docs/deploy.md).
    """
    if o.cluster:
        return []
    db = o.database
    create = next(s for s in _v1_core(o) if s.startswith(f"CREATE TABLE IF NOT EXISTS {db}.runs "))
    create = create.replace(f"{db}.runs ", f"{db}.runs_rebuild ", 1) + f"\nSETTINGS {RUNS_LAYOUT}"
    recent = f"toInt64(version) > (SELECT toInt64(max(version)) - 60000000000 FROM {db}.runs)"
    return [
        f"DROP TABLE IF EXISTS {db}.runs_rebuild",  # left by a start that stopped half-way
        create,
        f"INSERT INTO {db}.runs_rebuild SELECT * FROM {db}.runs",
        f"EXCHANGE TABLES {db}.runs AND {db}.runs_rebuild",
        # Rows recomputed since the copy's newest, less a minute for receivers whose clocks run
        # behind, that the copy lacks: only those, so the swap adds no duplicate rows.
        f"INSERT INTO {db}.runs SELECT * FROM {db}.runs_rebuild WHERE {recent} "
        f"AND (project_id, run_id, version) NOT IN (SELECT project_id, run_id, version FROM {db}.runs WHERE {recent})",
        f"DROP TABLE {db}.runs_rebuild",
    ]


def _v8_step_time_bounds(o: SchemaOptions) -> list[str]:
    """``runs.first_step_at`` / ``last_step_at``: the earliest and latest start of its steps.

    ``steps`` is partitioned by the day a span started, so a read of a page's steps by key
    alone looks into every part of every day kept.  Bounded by these, it reads the parts of the
    days the runs span (storage.failures.page_steps).  The run's ``started_at`` / ``ended_at``
    cannot serve: they are the root span's, and other spans may start before or after it.
    Rows written before this version hold 1970-01-01 in both, and are read unbounded.
    """
    db = o.database
    return [
        f"ALTER TABLE {db}.runs{o.on_cluster} ADD COLUMN IF NOT EXISTS {column} DateTime64(9, 'UTC') AFTER {after}"
        for column, after in (("first_step_at", "last_span_at"), ("last_step_at", "first_step_at"))
    ]


RUNS_BY_START = "runs_by_start"
"""Every run row again, sorted by the minute it started (migration 9)."""


def _v9_runs_by_start(o: SchemaOptions) -> list[str]:
    """``runs_by_start``: the rows of ``runs`` again, sorted by the minute each run started.

    ``runs`` is sorted by run id, so a list of the newest runs that most runs fail (a tool
    with errors) read the filter's columns of every run: 220–300 ms at 5M runs.  Sorted by
    start, the newest matches are read from the end, and stop once a page is found
    (storage.queries).  A materialized view copies every row version written to ``runs``;
    versions of one run collapse like in ``runs``, by the minute the run started: a version
    whose start moved to another minute (a root span that arrived last) stays behind until
    TTL, and readers drop it by its version.  The rows stored so far are copied once.  A later
    migration that rebuilds ``runs`` (as migration 7 does) must create the view again.
    """
    db = o.database
    runs = next(s for s in _v1_core(o) if s.startswith(f"CREATE TABLE IF NOT EXISTS {db}.runs "))
    create = (runs.replace(f"{db}.runs ", f"{db}.{RUNS_BY_START} ", 1)
              # the columns migration 8 added, where it added them, so that rows copy by position
              .replace("    last_span_at      DateTime64(3, 'UTC'),\n",
                       "    last_span_at      DateTime64(3, 'UTC'),\n"
                       "    first_step_at     DateTime64(9, 'UTC'),\n"
                       "    last_step_at      DateTime64(9, 'UTC'),\n", 1)
              .replace("    INDEX idx_started started_at TYPE minmax GRANULARITY 1,\n", "", 1)
              .replace("ORDER BY (project_id, run_id)", "ORDER BY (toStartOfMinute(started_at), project_id, run_id)", 1)
              + f"\nSETTINGS {RUNS_LAYOUT}")
    return [
        create,
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{RUNS_BY_START}_feed{o.on_cluster} "
        f"TO {db}.{RUNS_BY_START} AS SELECT * FROM {db}.runs",
        # After the view: a row written meanwhile is copied twice, and collapses.
        f"INSERT INTO {db}.{RUNS_BY_START} SELECT * FROM {db}.runs",
    ]


# The run columns as of migration 10, frozen: later migrations may add more.
_V10_RUN_COLUMNS = (
    "project_id", "run_id", "service_name", "agent_name", "session_id", "user_id", "environment",
    "root_name", "status", "status_message", "started_at", "ended_at", "duration_ms", "step_count",
    "llm_calls", "tool_calls", "error_count", "input_tokens", "output_tokens", "cache_read_tokens",
    "reasoning_tokens", "total_tokens", "cost_usd", "unpriced_llm_calls", "root_missing", "orphan_count",
    "tools", "models", "first_seen_at", "last_span_at", "first_step_at", "last_step_at", "failure_categories",
)


def _v10_failure_categories(o: SchemaOptions) -> list[str]:
    """``runs.failure_categories``: the distinct categories of a run's failed steps.

    A list filtered by failure category selected its runs with a subquery on ``steps`` that
    read every failed step of the project (p99 ~250 ms at 5M runs), and could not use
    ``runs_by_start``.  As a column of the run, it filters like ``tools``.  Runs stored
    before get a new version of their newest row with the column filled from their failed
    steps (version + 1, so any later recompute still wins); every other run has none.
    """
    db = o.database
    column = "failure_categories Array(LowCardinality(String))"
    failed = (f"SELECT project_id, run_id, arraySort(groupUniqArray(toString(failure_category))) AS categories "
              f"FROM {db}.steps WHERE failure_category != '' GROUP BY project_id, run_id")
    values = ", ".join("f.categories" if c == "failure_categories" else f"r.{c}" for c in _V10_RUN_COLUMNS)
    return [
        *(f"ALTER TABLE {db}.{table}{o.on_cluster} ADD COLUMN IF NOT EXISTS {column} AFTER last_step_at"
          for table in ("runs", RUNS_BY_START)),
        f"INSERT INTO {db}.runs ({', '.join(_V10_RUN_COLUMNS)}, version) SELECT {values}, r.version + 1 "
        f"FROM {db}.runs AS r FINAL INNER JOIN ({failed}) AS f ON r.project_id = f.project_id AND r.run_id = f.run_id",
    ]


STEP_STRING_COLUMNS = (
    "kind", "span_kind", "operation", "service_name", "scope_name", "scope_version", "environment", "model",
    "provider", "status", "cost_source", "failure_category", "failure_type",
)
"""The ``steps`` columns migration 11 turned from ``LowCardinality(String)`` into ``String``."""


def _v11_plain_step_strings(o: SchemaOptions) -> list[str]:
    """Store ``steps``' short text columns as ``String``, not ``LowCardinality(String)``.

    Merges rewrite every span several times on its way into large parts, and each merge
    re-encodes a ``LowCardinality`` column into the new part's dictionary: the thirteen such
    columns took about a quarter of a merge's CPU (one merge of ten 8,192-row parts: 3.7 against
    2.7 µs a row, ``bench/merge_bench.py``).  As ``String`` the same values still compress well,
    since they repeat (6% more disk for ``steps``).  ``project_id`` stays as it was: it leads the sorting key.
    ClickHouse rewrites these columns of every stored part once, in the background.
    """
    modify = ", ".join(f"MODIFY COLUMN {column} String" for column in STEP_STRING_COLUMNS)
    return [f"ALTER TABLE {o.database}.steps{o.on_cluster} {modify}"]


# Ordered, append-only: never edit a released migration, add a new one.
MIGRATIONS: list[tuple[int, str, Callable[[SchemaOptions], list[str]]]] = [
    (1, "steps, runs and the otel_traces view", _v1_core),
    (2, "validations and runbooks", _v2_validations),
    (3, "steps: minmax index on ingested_at", _v3_ingest_window),
    (4, "steps: vertical merges above 8192 rows", _v4_vertical_merges),
    (5, "steps: merge about twenty parts at a time", _v5_wider_merges),
    (6, "steps: failure_category, failure_type, error_fingerprint", _v6_failures),
    (7, "runs: 1024-row granules, small compression blocks (rebuilds runs, ~3 s per million)", _v7_run_layout),
    (8, "runs: first_step_at, last_step_at", _v8_step_time_bounds),
    (9, "runs_by_start: run rows sorted by start (copies runs, ~3 s per million)", _v9_runs_by_start),
    (10, "runs: failure_categories (fills runs that have failed steps)", _v10_failure_categories),
    (11, "steps: short text columns as String (cheaper merges)", _v11_plain_step_strings),
]


def bootstrap_statements(o: SchemaOptions) -> list[str]:
    """The statements that must exist before migrations can be tracked."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {o.database}{o.on_cluster}",
        f"""CREATE TABLE IF NOT EXISTS {o.database}.schema_migrations{o.on_cluster} (
    version UInt32, description String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {o.engine("ReplacingMergeTree")} ORDER BY version""",
    ]


def rendered(statements: list[str], o: SchemaOptions) -> list[str]:
    """Statements as they run: unchanged, or in cluster mode each table split into a replicated
    ``<name>_local`` and a Distributed ``<name>`` (see :mod:`agenttrail.storage.cluster`)."""
    if not o.cluster:
        return statements
    return [part for statement in statements for part in distribute(statement, o.cluster)]


def schema_statements(o: SchemaOptions) -> list[tuple[int, list[str]]]:
    """Every statement :func:`migrate` would run on an empty database, by version (0 = bootstrap)."""
    return [(0, rendered(bootstrap_statements(o), o))] + [
        (version, rendered(build(o), o)) for version, _, build in MIGRATIONS
    ]


def _apply(client, statement: str, tuning: bool) -> None:
    try:
        client.command(statement)
    except Exception as exc:
        # Code 115: UNKNOWN_SETTING, a server older than the setting (see Tuning).
        if not tuning or "UNKNOWN_SETTING" not in str(exc):
            raise
        log.warning("this ClickHouse server does not know a setting agenttrail tunes; keeping its default: %s",
                    str(exc).splitlines()[0][:300])


def migrate(client, options: SchemaOptions) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    for statement in rendered(bootstrap_statements(options), options):
        client.command(statement)
    done = {
        row[0]
        for row in client.query(f"SELECT version FROM {options.database}.schema_migrations").result_rows
    }
    applied = []
    for version, description, build in MIGRATIONS:
        if version in done:
            continue
        log.info("applying schema migration %d: %s", version, description)
        for statement in build(options):
            for part in rendered([statement], options):
                _apply(client, part, tuning=isinstance(statement, Tuning))
        client.insert(
            f"{options.database}.schema_migrations",
            [[version, description]],
            column_names=["version", "description"],
        )
        applied.append(version)
    return applied
