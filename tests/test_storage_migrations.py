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
