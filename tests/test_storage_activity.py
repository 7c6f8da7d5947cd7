"""The store's background work as /metrics shows it, read from the real engine's system tables."""

from __future__ import annotations

import time

from agenttrail.storage.activity import store_activity
from test_storage_writer import STEPS, batch_of


def test_parts_and_a_pending_mutation_are_reported_by_table(store):
    store.writer.write(batch_of(STEPS), timeout=30)
    store.command("SYSTEM STOP MERGES steps")  # the mutation below waits for the merge pool
    try:
        # Not waited for (the embedded engine waits by default, and would wait for ever here).
        store.client().command("ALTER TABLE steps UPDATE truncated = 0 WHERE 1", settings={"mutations_sync": 0})
        activity = store_activity(store)
        assert activity["steps"]["mutations"] == 1
        assert activity["steps"]["parts"] >= 1
        assert 1 <= activity["steps"]["partition_parts"] <= activity["steps"]["parts"]
        assert activity["runs"]["parts"] >= 1 and activity["runs"]["mutations"] == 0
        assert set(activity["steps"]) == {"parts", "partition_parts", "merges", "merge_bytes", "mutations"}
    finally:
        store.command("SYSTEM START MERGES steps")
    deadline = time.monotonic() + 30
    while store_activity(store)["steps"]["mutations"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store_activity(store)["steps"]["mutations"] == 0


def test_only_the_store_database_is_reported(store):
    activity = store_activity(store)
    tables = {row[0] for row in store.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                            "AND engine LIKE '%MergeTree'").result_rows}
    assert set(activity) <= tables
