"""Cluster-mode DDL: golden files, ClickHouse's own parser, and the rewrite rules.

The embedded engine has no cluster or Keeper, so cluster DDL cannot run here; instead every
statement goes through ClickHouse's parser (``formatQuery`` in the ``store`` fixture's
engine — a ClickHouse server when AGENTTRAIL_TEST_CLICKHOUSE_URL is set) and is compared with
the reviewed text in tests/golden/.  After an intended schema change, regenerate with
``AGENTTRAIL_UPDATE_GOLDEN=1 pytest tests/test_cluster.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agenttrail.storage.cluster import ClusterSchemaError, distribute, sharding_key
from agenttrail.storage.schema import MIGRATIONS, SchemaError, SchemaOptions, schema_statements

GOLDEN = Path(__file__).parent / "golden"
MODES = {
    "single": SchemaOptions(),
    "cluster": SchemaOptions(cluster="agenttrail_cluster", ttl_days=30),
}
SEPARATOR = "\n;\n\n"


def _golden_path(mode: str, version: int) -> Path:
    return GOLDEN / f"schema_{mode}_v{version}.sql"


@pytest.mark.parametrize("mode", MODES)
def test_ddl_matches_the_golden_files(mode):
    versions = schema_statements(MODES[mode])
    assert [v for v, _ in versions] == [0] + [v for v, _, _ in MIGRATIONS]
    for version, statements in versions:
        text = SEPARATOR.join(statements) + "\n"
        path = _golden_path(mode, version)
        if os.environ.get("AGENTTRAIL_UPDATE_GOLDEN"):
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"no golden file {path.name}: run with AGENTTRAIL_UPDATE_GOLDEN=1 and review it"
        assert text == path.read_text(), f"{path.name} differs from the generated DDL"


@pytest.mark.parametrize("mode", MODES)
def test_clickhouse_parses_every_statement(store, mode):
    for version, statements in schema_statements(MODES[mode]):
        for statement in statements:
            formatted = store.query("SELECT formatQuery({q:String})", {"q": statement}).result_rows[0][0]
            assert formatted.split()[0] == statement.split()[0], f"v{version}: {statement[:60]}"
            if mode == "cluster" and not statement.startswith("INSERT"):  # rows reach shards by the Distributed table
                assert "ON CLUSTER agenttrail_cluster" in formatted


def _cluster_statements() -> list[str]:
    return [s for _, sts in schema_statements(MODES["cluster"]) for s in sts]


def test_cluster_tables_are_replicated_locals_behind_distributed_tables():
    statements = _cluster_statements()
    created = {}
    for s in statements:
        m = re.match(r"CREATE TABLE IF NOT EXISTS agenttrail\.(\w+) ON CLUSTER agenttrail_cluster", s)
        if m:
            created[m[1]] = s
    locals_ = {name for name in created if name.endswith("_local")}
    distributed = set(created) - locals_
    assert {"steps", "runs", "schema_migrations"} <= distributed
    assert {d + "_local" for d in distributed} == locals_
    for name in locals_:
        assert "ENGINE = Replicated" in created[name], name
        assert "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in created[name]
    for name in distributed:
        assert f"AS agenttrail.{name}_local\nENGINE = Distributed(agenttrail_cluster, agenttrail, {name}_local, " \
            in created[name]
        # a local table is created before the Distributed table that points at it
        assert statements.index(created[name + "_local"]) < statements.index(created[name])
    for name in ("steps", "runs", "runs_by_start", "validations"):
        assert created[name].endswith("cityHash64(run_id))"), "a run's rows must share one shard"


def test_the_runs_by_start_feed_joins_each_shards_local_tables():
    feed = next(s for s in _cluster_statements() if "MATERIALIZED VIEW" in s)
    assert feed == ("CREATE MATERIALIZED VIEW IF NOT EXISTS agenttrail.runs_by_start_feed ON CLUSTER agenttrail_cluster "
                    "TO agenttrail.runs_by_start_local AS SELECT * FROM agenttrail.runs_local")


def test_views_and_readers_use_the_distributed_names():
    view = next(s for s in _cluster_statements() if "VIEW" in s and "otel_traces" in s)
    assert "FROM agenttrail.steps" in view and "steps_local" not in view


def test_single_mode_has_no_cluster_ddl():
    for _, statements in schema_statements(MODES["single"]):
        for s in statements:
            assert "ON CLUSTER" not in s and "Replicated" not in s and "Distributed" not in s
            assert "_local" not in s


def test_ttl_is_on_the_local_tables_in_cluster_mode():
    statements = _cluster_statements()
    steps_local = next(s for s in statements if "agenttrail.steps_local" in s)
    assert "TTL toDateTime(start_time) + INTERVAL 30 DAY" in steps_local


# -- the rewrite rules ---------------------------------------------------------------------------

def test_alter_column_reaches_both_tables_and_index_only_the_local():
    add_col = "ALTER TABLE db.steps ON CLUSTER c ADD COLUMN x String"
    assert distribute(add_col, "c") == ["ALTER TABLE db.steps_local ON CLUSTER c ADD COLUMN x String", add_col]
    add_index = "ALTER TABLE db.steps ON CLUSTER c ADD INDEX i x TYPE bloom_filter GRANULARITY 4"
    assert distribute(add_index, "c") == [add_index.replace("db.steps ", "db.steps_local ")]


@pytest.mark.parametrize("statement, message", [
    ("CREATE TABLE IF NOT EXISTS db.t (run_id String) ENGINE = MergeTree ORDER BY run_id", "ON CLUSTER"),
    ("ALTER TABLE db.t ADD COLUMN x String", "ON CLUSTER"),
    ("CREATE MATERIALIZED VIEW db.mv ON CLUSTER c TO db.t AS SELECT 1", "materialized"),
    ("CREATE MATERIALIZED VIEW db.mv ON CLUSTER c TO db.t AS SELECT * FROM db.s JOIN db.u USING x", "materialized"),
    ("CREATE MATERIALIZED VIEW db.mv ON CLUSTER c AS SELECT * FROM db.s", "materialized"),
    ("CREATE TABLE IF NOT EXISTS db.t ON CLUSTER c (id String) ENGINE = MergeTree ORDER BY id", "run_id"),
    ("CREATE TABLE t ON CLUSTER c (run_id String) ENGINE = MergeTree ORDER BY run_id", "db.table"),
])
def test_statements_that_cannot_be_distributed_are_refused(statement, message):
    with pytest.raises(ClusterSchemaError, match=message):
        distribute(statement, "c")


def test_sharding_key_needs_a_real_run_id_column():
    assert sharding_key("t", "CREATE TABLE db.t ON CLUSTER c (\n    run_id String\n)") == "cityHash64(run_id)"
    with pytest.raises(ClusterSchemaError):  # a column merely named like it is not enough
        sharding_key("t", "CREATE TABLE db.t ON CLUSTER c (\n    parent_run_id String\n)")
    assert sharding_key("schema_migrations", "") == "version"


@pytest.mark.parametrize("cluster", ["c; DROP TABLE x", "c' --", "", "a" * 100, "1abc", "c{shard}"])
def test_hostile_cluster_names_are_rejected(cluster):
    with pytest.raises(SchemaError):
        schema_statements(SchemaOptions(cluster=cluster))
