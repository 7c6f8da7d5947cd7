"""Cluster mode: how a migration's DDL becomes sharded, replicated DDL.

Migrations are written once, for one table per name (``CREATE TABLE db.steps ...``).  With a
``cluster`` configured, :func:`distribute` turns each table into two:

* ``db.<name>_local`` — the statement as written (its engine is already ``Replicated*`` and
  it carries ``ON CLUSTER``, see :meth:`SchemaOptions.engine`): the rows of one shard,
  replicated between that shard's replicas;
* ``db.<name>`` — a ``Distributed`` table over every shard's ``<name>_local``.

Everything else in agenttrail (the writer's INSERTs, ``runs`` recomputation, the API, the
dashboards, the ``otel_traces`` view) keeps using ``db.<name>`` unchanged.

The sharding key is ``cityHash64(run_id)`` for every table with a ``run_id`` column: all steps,
the run row and the validations of one run live on one shard, so ``ReplacingMergeTree``
deduplication (which only collapses rows within one table part set, i.e. one shard),
``FINAL`` and the per-run recomputation are as correct as on a single server.  A table with no
``run_id`` must be listed in :data:`SHARDING_KEYS`; guessing would silently break
deduplication, so an unknown table is an error.
"""

from __future__ import annotations

import re

# Tables without a run_id column and the key that spreads them over shards.  Each key keeps
# together the rows ReplacingMergeTree must collapse (they only collapse within one shard):
# every record of one migration, every version of one runbook.
SHARDING_KEYS: dict[str, str] = {
    "schema_migrations": "version",
    "runbooks": "cityHash64(project_id, name)",
}
RUN_SHARDING_KEY = "cityHash64(run_id)"
LOCAL_SUFFIX = "_local"

_CREATE_TABLE = re.compile(
    r"^\s*CREATE TABLE (?:IF NOT EXISTS )?(?P<db>\w+)\.(?P<table>\w+)\s+ON CLUSTER\s+\w+\s*\(",
    re.IGNORECASE,
)
_ALTER_TABLE = re.compile(
    r"^\s*ALTER TABLE (?P<db>\w+)\.(?P<table>\w+)\s+ON CLUSTER\s+\w+\s+(?P<action>.*)",
    re.IGNORECASE | re.DOTALL,
)
# ALTER actions that change columns must reach the Distributed table too (it has the same
# columns as its local table); index, TTL and settings changes only concern the local table.
_COLUMN_ACTION = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.IGNORECASE)
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)
_ON_CLUSTER = re.compile(r"\sON CLUSTER\s+\w+", re.IGNORECASE)
_RUN_ID_COLUMN = re.compile(r"^\s*run_id\s+\w", re.MULTILINE)
# Only the plain form is rendered: one target table, one source table, nothing else read.
_MATERIALIZED_VIEW = re.compile(
    r"^\s*CREATE MATERIALIZED VIEW (?:IF NOT EXISTS )?\w+\.\w+\s+ON CLUSTER\s+\w+\s+"
    r"TO (?P<db>\w+)\.(?P<target>\w+) AS SELECT \* FROM (?P=db)\.(?P<source>\w+)\s*$",
    re.IGNORECASE,
)
_ANY_MATERIALIZED_VIEW = re.compile(r"^\s*CREATE MATERIALIZED VIEW\b", re.IGNORECASE)


class ClusterSchemaError(ValueError):
    """A migration statement cannot be rendered for cluster mode."""


def sharding_key(table: str, statement: str) -> str:
    """The Distributed sharding expression for ``table`` created by ``statement``."""
    if table in SHARDING_KEYS:
        return SHARDING_KEYS[table]
    if _RUN_ID_COLUMN.search(statement):
        return RUN_SHARDING_KEY
    raise ClusterSchemaError(
        f"table {table!r} has no run_id column: add its sharding key to "
        "agenttrail.storage.cluster.SHARDING_KEYS"
    )


def distribute(statement: str, cluster: str) -> list[str]:
    """The cluster-mode form of one migration statement (``ON CLUSTER`` already rendered).

    ``CREATE TABLE db.t`` becomes ``db.t_local`` plus a Distributed ``db.t``; a column
    ``ALTER`` is applied to both; a materialized view goes between the local tables; views and
    database statements pass through unchanged (views select from the Distributed tables, so
    they read every shard).
    """
    if _DDL.match(statement) and not _ON_CLUSTER.search(statement):
        raise ClusterSchemaError(
            "DDL in cluster mode needs ON CLUSTER (build it with SchemaOptions.on_cluster), "
            f"or it changes one node only: {statement[:80]!r}"
        )
    view = _MATERIALIZED_VIEW.match(statement)
    if view:
        # Each shard's view reads its own local rows as they are inserted and writes them to
        # its local target, so a row stays on the shard its run lives on.  The source is
        # renamed first: it comes after the target, whose offsets stay valid.
        return [_rename(_rename(statement, view, view["source"] + LOCAL_SUFFIX, "source"),
                        view, view["target"] + LOCAL_SUFFIX, "target")]
    if _ANY_MATERIALIZED_VIEW.match(statement):
        # Reading anything but one local table would mix shards' rows or drop some silently.
        raise ClusterSchemaError("only a materialized view 'TO db.t AS SELECT * FROM db.s' can be "
                                 f"rendered for cluster mode: {statement[:80]!r}")
    created = _CREATE_TABLE.match(statement)
    if created:
        db, table = created["db"], created["table"]
        local = table + LOCAL_SUFFIX
        return [
            _rename(statement, created, local),
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local}\n"
            f"ENGINE = Distributed({cluster}, {db}, {local}, {sharding_key(table, statement)})",
        ]
    altered = _ALTER_TABLE.match(statement)
    if altered:
        local = _rename(statement, altered, altered["table"] + LOCAL_SUFFIX)
        return [local, statement] if _COLUMN_ACTION.match(altered["action"]) else [local]
    if re.match(r"^\s*(CREATE|ALTER)\s+TABLE\b", statement, re.IGNORECASE):
        raise ClusterSchemaError(f"cannot render for cluster mode (expected db.table): {statement[:80]!r}")
    return [statement]


def _rename(statement: str, match: re.Match, table: str, group: str = "table") -> str:
    return statement[: match.start(group)] + table + statement[match.end(group):]
