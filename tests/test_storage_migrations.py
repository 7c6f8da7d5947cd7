"""Migrations on the real engine: a tuning setting the server does not know is skipped, not fatal."""

from __future__ import annotations

import logging

import pytest

from agenttrail.storage import schema
from agenttrail.storage.schema import SchemaOptions, Tuning, migrate


def _with_migration(monkeypatch, statement: str) -> None:
    def build(o: SchemaOptions) -> list[str]:
        return [type(statement)(statement.format(db=o.database))]  # a Tuning stays a Tuning

    extra = (len(schema.MIGRATIONS) + 1, "test: one more setting", build)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])


def _versions(store) -> list[int]:
    return [row[0] for row in store.query("SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows]


def test_a_tuning_setting_the_server_does_not_know_is_skipped_with_a_warning(store, monkeypatch, caplog):
    _with_migration(monkeypatch, Tuning("ALTER TABLE {db}.steps MODIFY SETTING no_such_merge_setting = 20"))
    with caplog.at_level(logging.WARNING, logger="agenttrail.storage.schema"):
        applied = migrate(store.client(), SchemaOptions(database=store.database))
    assert applied == [len(schema.MIGRATIONS)]  # recorded: the next start does not try again
    assert _versions(store)[-1] == len(schema.MIGRATIONS)
    assert "no_such_merge_setting" in caplog.text and "keeping its default" in caplog.text


@pytest.mark.parametrize("statement, error", [
    # Not a Tuning: an unknown setting is an error in the schema itself.
    ("ALTER TABLE {db}.steps MODIFY SETTING no_such_merge_setting = 20", "UNKNOWN_SETTING"),
    # A Tuning that fails for another reason.
    (Tuning("ALTER TABLE {db}.no_such_table MODIFY SETTING merge_selector_base = 20"), "UNKNOWN_TABLE"),
])
def test_any_other_failure_stops_the_migration(store, monkeypatch, statement, error):
    _with_migration(monkeypatch, statement)
    with pytest.raises(Exception, match=error):
        migrate(store.client(), SchemaOptions(database=store.database))
    assert _versions(store)[-1] == len(schema.MIGRATIONS) - 1  # not recorded: retried at the next start


def _store_at(monkeypatch, storage_dsn, database, version: int):
    from agenttrail.storage import Store

    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:version])
        return Store.open(storage_dsn, database)


def _runs(store) -> list[tuple]:
    return store.query("SELECT project_id, run_id, status, version FROM runs FINAL ORDER BY run_id").result_rows


class _LateWriter:
    """A client that lets another receiver recompute a run while the rebuild copies ``runs``."""

    def __init__(self, client, database: str):
        self._client, self._database = client, database

    def __getattr__(self, name):
        return getattr(self._client, name)

    def command(self, statement: str, *args, **kwargs):
        result = self._client.command(statement, *args, **kwargs)
        if statement.startswith(f"INSERT INTO {self._database}.runs_rebuild SELECT"):
            # Merges would collapse duplicate rows and hide them from the count below.
            self._client.command(f"SYSTEM STOP MERGES {self._database}.runs_rebuild")
            self._client.command(f"INSERT INTO {self._database}.runs (project_id, run_id, status, version) "
                                 "VALUES ('p', 'late', 'ok', 1700000000000000010), ('p', 'r1', 'error', 1700000000000000011)")
        return result


def test_migration_7_rebuilds_runs_with_small_granules_and_keeps_every_row(monkeypatch, storage_dsn, database):
    store = _store_at(monkeypatch, storage_dsn, database, 6)
    try:
        store.command("INSERT INTO runs (project_id, run_id, status, version) VALUES "
                      "('p', 'r1', 'in_progress', 1700000000000000000), ('p', 'r1', 'ok', 1700000000000000001), "
                      "('q', 'r2', 'error', 1700000000000000002)")
        store.command(f"CREATE TABLE {database}.runs_rebuild (x UInt8) ENGINE = Memory")  # a half-done earlier try
        applied = migrate(_LateWriter(store.client(), database), SchemaOptions(database=database))
        assert 7 in applied
        engine = store.query("SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'runs'",
                             parameters={"db": database}).result_rows[0][0]
        assert "index_granularity = 1024" in engine and "min_compress_block_size = 4096" in engine
        assert _runs(store) == [("p", "late", "ok", 1700000000000000010), ("p", "r1", "error", 1700000000000000011),
                                ("q", "r2", "error", 1700000000000000002)]
        # Copied once each: the five rows written, no duplicate from the copy after the swap.
        assert store.query("SELECT count() - uniqExact(project_id, run_id, version) FROM runs").result_rows[0][0] == 0
        assert not store.query("EXISTS TABLE runs_rebuild").result_rows[0][0]
    finally:
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")


def test_a_new_store_is_created_with_the_small_run_granules(store):
    engine = store.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'runs'"
                         ).result_rows[0][0]
    assert "index_granularity = 1024" in engine


def test_migration_7_with_a_ttl_and_a_view_left_by_a_writer_that_died(monkeypatch, storage_dsn, database):
    # A writer that was killed leaves its view on steps (TO runs); the next start migrates,
    # then the writer recreates the view, which must write into the rebuilt table.
    from agenttrail.storage import Store
    from agenttrail.storage.runs_sql import COMMIT_VIEW_DDL

    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:6])
        store = Store.open(storage_dsn, database, ttl_days=30)
    try:
        store.command("CREATE MATERIALIZED VIEW writer_runs_view TO runs AS "  # as an earlier version's writer left it
                      "SELECT project_id, run_id, toUInt64(1) AS version FROM steps")
        store.command("INSERT INTO runs (project_id, run_id, status, started_at, version) "
                      "VALUES ('p', 'old', 'ok', now64(9), 1700000000000000000)")
        assert 7 in migrate(store.client(), SchemaOptions(database=database, ttl_days=30))
        engine = store.query("SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'runs'",
                             parameters={"db": database}).result_rows[0][0]
        assert "TTL" in engine and "index_granularity = 1024" in engine
        for statement in COMMIT_VIEW_DDL:
            store.command(statement)
        store.command("INSERT INTO steps (project_id, run_id, step_id, name, kind, status, start_time, end_time, "
                      "ingested_at) VALUES ('p', 'new', 's1', 'invoke_agent a', 'agent', 'ok', now64(9), now64(9), now64(3))")
        assert [r[0] for r in store.query("SELECT run_id FROM runs FINAL ORDER BY run_id").result_rows] == ["new", "old"]
    finally:
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")


def _rows(store, table: str) -> list[tuple]:
    return store.query(f"SELECT project_id, run_id, status, started_at, version FROM {table} "
                       "ORDER BY run_id, version").result_rows


def test_migration_9_copies_every_run_row_version_and_feeds_new_ones(monkeypatch, storage_dsn, database):
    store = _store_at(monkeypatch, storage_dsn, database, 8)
    try:
        store.command("SYSTEM STOP MERGES runs")  # both versions of r1 stay, to be copied
        store.command("INSERT INTO runs (project_id, run_id, status, started_at, version) VALUES "
                      "('p', 'r1', 'in_progress', '2026-01-01 10:00:30', 1700000000000000000), "
                      "('p', 'r1', 'ok', '2026-01-01 09:59:50', 1700000000000000001), "
                      "('q', 'r2', 'error', '2026-01-01 11:00:00', 1700000000000000002)")
        assert 9 in migrate(store.client(), SchemaOptions(database=database))
        assert _rows(store, "runs_by_start") == _rows(store, "runs")
        # Same columns in the same order: rows are copied by position.
        assert store.query("DESCRIBE runs_by_start").result_rows == store.query("DESCRIBE runs").result_rows
        key = store.query("SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'runs_by_start'",
                          parameters={"db": database}).result_rows[0][0]
        assert key == "toStartOfMinute(started_at), project_id, run_id"
        store.command("INSERT INTO runs (project_id, run_id, status, started_at, version) VALUES "
                      "('p', 'r3', 'ok', '2026-01-02 00:00:00', 1700000000000000003)")
        assert _rows(store, "runs_by_start") == _rows(store, "runs")
    finally:
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")


def test_runs_the_writer_commits_reach_runs_by_start(store):
    # New runs get their rows from the writer's view on steps; runs already stored are
    # recomputed by an INSERT … SELECT. Both go through the feed.
    from test_storage_writer import T0, batch_of, step

    for steps in ([step("2", "1", run_id="a" * 32, start_time=T0 + 5 * 10**9)],
                  [step("1", run_id="a" * 32, start_time=T0), step("1", run_id="b" * 32, start_time=T0)]):
        store.writer.write(batch_of(steps), timeout=30)
    assert store.writer.stats["runs_from_commit"] >= 1  # the view's path was taken
    by_start = store.query("SELECT run_id, started_at, version FROM runs_by_start FINAL ORDER BY run_id, version")
    runs = store.query("SELECT run_id, started_at, version FROM runs FINAL ORDER BY run_id")
    newest = {run: (started, version) for run, started, version in by_start.result_rows}  # the later version wins
    assert newest == {run: (started, version) for run, started, version in runs.result_rows}
    assert len(newest) == 2


def test_migration_10_gives_runs_with_failed_steps_their_categories(monkeypatch, storage_dsn, database):
    store = _store_at(monkeypatch, storage_dsn, database, 9)
    try:
        store.command("INSERT INTO steps (project_id, run_id, step_id, status, failure_category, start_time) VALUES "
                      "('p', 'r1', 's1', 'error', 'timeout', '2026-01-01 10:00:00'), "
                      "('p', 'r1', 's2', 'error', 'auth', '2026-01-01 10:00:01'), "
                      "('p', 'r1', 's3', 'error', 'timeout', '2026-01-01 10:00:02'), "
                      "('q', 'r1', 's1', 'ok', '', '2026-01-01 10:00:00'), "  # the same trace id, another project
                      "('p', 'r2', 's1', 'ok', '', '2026-01-01 10:00:00')")
        store.command("INSERT INTO runs (project_id, run_id, status, step_count, started_at, version) VALUES "
                      "('p', 'r1', 'in_progress', 2, '2026-01-01 10:00:00', 1700000000000000000), "
                      "('p', 'r1', 'error', 3, '2026-01-01 10:00:00', 1700000000000000005), "
                      "('q', 'r1', 'ok', 1, '2026-01-01 10:00:00', 1700000000000000001), "
                      "('p', 'r2', 'ok', 1, '2026-01-01 10:00:00', 1700000000000000002)")
        assert 10 in migrate(store.client(), SchemaOptions(database=database))
        for table in ("runs", "runs_by_start"):  # the copy has the column and the new version
            assert store.query(f"SELECT project_id, run_id, status, step_count, failure_categories, version FROM {table} FINAL "
                               "ORDER BY project_id, run_id").result_rows == [
                ("p", "r1", "error", 3, ["auth", "timeout"], 1700000000000000006),  # the newest row, kept as it was
                ("p", "r2", "ok", 1, [], 1700000000000000002),
                ("q", "r1", "ok", 1, [], 1700000000000000001)]
        assert store.query("DESCRIBE runs_by_start").result_rows == store.query("DESCRIBE runs").result_rows
    finally:
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")


def test_migration_11_turns_the_short_step_texts_into_strings_and_keeps_them(monkeypatch, storage_dsn, database):
    from test_storage_writer import T0, batch_of, step

    store = _store_at(monkeypatch, storage_dsn, database, 10)
    try:
        store.writer.write(batch_of([
            step("1", run_id="a" * 32, start_time=T0, kind="agent", model="", status="ok"),
            step("2", "1", run_id="a" * 32, start_time=T0 + 1, kind="llm", model="gpt-4o", provider="openai",
                 status="error", failure_category="rate_limit", failure_type="RateLimitError")]), timeout=30)
        columns = "kind, model, provider, status, failure_category, failure_type"
        before = store.query(f"SELECT step_id, {columns} FROM steps ORDER BY step_id").result_rows
        assert migrate(store.client(), SchemaOptions(database=database)) == [11]
        types = dict(store.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                                 "AND table = 'steps'").result_rows)
        assert {name: types[name] for name in schema.STEP_STRING_COLUMNS} == dict.fromkeys(schema.STEP_STRING_COLUMNS,
                                                                                            "String")
        assert types["project_id"] == "LowCardinality(String)"
        assert store.query(f"SELECT step_id, {columns} FROM steps ORDER BY step_id").result_rows == before
        # The category's skip index still selects the failed step.
        assert store.query("SELECT step_id FROM steps WHERE failure_category = 'rate_limit'",
                           settings={"force_data_skipping_indices": "idx_failure_category"}).result_rows == [("2" * 16,)]
        # Blocks encoded with the new types go in; the run row is made of them as before.
        store.writer.write(batch_of([step("3", "1", run_id="a" * 32, start_time=T0 + 2, kind="tool",
                                          tool_name="search", status="ok")]), timeout=30)
        assert store.query("SELECT step_count, llm_calls, tool_calls, error_count, models, failure_categories "
                           "FROM runs FINAL").result_rows == [(3, 1, 1, 1, ["gpt-4o"], ["rate_limit"])]
    finally:
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")
