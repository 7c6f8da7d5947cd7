"""The sole writer's in-memory filter of stored runs (storage/known_runs.py), on the real engine."""

from __future__ import annotations

import time

import pytest

from agenttrail.storage import EncodedSteps
from agenttrail.storage.known_runs import COUNT_SQL, KnownRuns, run_key, run_keys
from agenttrail.storage.runs_sql import COMMIT_VIEW_DDL
from agenttrail.storage.writer import KNOWN_RUNS_SQL, STORED_KEYS_SQL, BatchWriter

from test_storage_writer import STEPS, _Recording, batch_of, run_row, step

ODD = [("demo", "0af7651916cd43dd8448eb211c80319c"), ("", "x"), ("projé ✓", "r\0un"), ("p", ""), ("p" * 300, "'$,\\")]


@pytest.mark.parametrize("project, run", ODD)
def test_a_runs_key_in_python_is_the_key_clickhouse_computes(store, project, run):
    sql = "SELECT reinterpretAsUInt64(substring(MD5(concat({p:String}, '\\0', {r:String})), 1, 8))"
    assert store.query(sql, parameters={"p": project, "r": run}).result_rows[0][0] == run_key(project, run)


def test_a_loaded_filter_names_every_stored_run_and_no_other(store):
    runs = {("p", f"{i:032x}") for i in range(1, 40)} | {("q", f"{1:032x}")}
    store.writer.write(batch_of([step("1", project_id=p, run_id=r) for p, r in runs]), timeout=30)
    store.writer.write(batch_of([step("2", "1", project_id=p, run_id=r) for p, r in sorted(runs)[:5]]), timeout=30)
    assert store.query("SELECT count() FROM runs").result_rows[0][0] > len(runs)  # a row per version
    known = KnownRuns.load(store.client())
    unknown = {("p", f"{i:032x}") for i in range(40, 60)} | {("r", f"{1:032x}")}
    found = known.stored_since(run_keys(runs | unknown))
    assert found.keys() == runs
    assert len(known) == len(runs) and known.stored_since({}) == {}  # each key once
    # Each time is the run's earliest first_seen_at, in whole seconds, rounded down.
    first_seen = dict(((p, r), t) for p, r, t in store.query(
        "SELECT project_id, run_id, toUnixTimestamp64Milli(min(first_seen_at)) FROM runs "
        "GROUP BY project_id, run_id").result_rows)
    assert all(first_seen[run] - 1000 < found[run] <= first_seen[run] for run in runs)


def test_added_runs_are_found_before_and_after_they_are_folded_into_the_sorted_keys():
    known = KnownRuns()
    first = [("p", f"{i:032x}") for i in range(1000)]
    known.add(run_keys(first).values(), 5_000_999)
    known.add(run_keys(first[:5]).values(), 9_000_000)  # seen again later: the earlier time stays
    known.add(run_keys(first[5:10]).values(), 3_000_000)  # again, stamped earlier: that time
    expected = {run: 5_000_000 for run in first[:5]} | {run: 3_000_000 for run in first[5:10]}
    assert known.stored_since(run_keys(first[:10] + [("p", "f" * 32)])) == expected
    many = [("p", f"{i:032x}") for i in range(1000, 102_000)]  # past the fold threshold
    known.add(run_keys(many).values(), 7_000_000)
    assert not known._added and len(known._keys) == 102_000  # folded, each key once
    assert list(known._keys) == sorted(known._keys)
    sample = first[::97] + many[::997]
    found = known.stored_since(run_keys(sample + [("p", "e" * 32), ("q", f"{5:032x}")]))
    assert found.keys() == set(sample)
    assert found[first[0]] == 5_000_000 and found[many[0]] == 7_000_000
    # Keys already folded in, added again: earlier times are taken, later ones not, also at the next fold.
    known.add(run_keys(first[:2]).values(), 1_000_000)
    known.add(run_keys(first[2:4]).values(), 8_000_000)
    for _ in range(2):
        found = known.stored_since(run_keys(first[:4]))
        assert found == {first[0]: 1_000_000, first[1]: 1_000_000, first[2]: 5_000_000, first[3]: 5_000_000}
        known._fold()


def test_a_store_with_more_runs_than_the_limit_gets_no_filter(store):
    store.writer.write(batch_of(STEPS), timeout=30)
    assert KnownRuns.load(store.client(), max_runs=0) is None
    assert KnownRuns.load(store.client(), max_runs=1) is not None


def test_the_limit_counts_runs_not_their_row_versions(store):
    runs = [("p", f"{i:032x}") for i in range(1, 4)]
    store.writer.write(batch_of([step("1", run_id=r) for _, r in runs]), timeout=30)
    store.writer.write(batch_of([step("2", "1", run_id=r) for _, r in runs]), timeout=30)
    assert store.query("SELECT count() FROM runs").result_rows[0][0] > 3  # unmerged versions
    known = KnownRuns.load(store.client(), max_runs=3)
    assert known is not None and known.stored_since(run_keys(runs)).keys() == set(runs)


def test_the_sole_writer_never_asks_the_store_which_runs_are_stored(store):
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS[:3]), timeout=30)  # a new run
        writer.write(batch_of([step("1", run_id="cd" * 16)]), timeout=30)  # another new run
        assert STORED_KEYS_SQL not in sql
        retry = writer.write(batch_of(STEPS[2:]), timeout=30)  # the first run again, one span retried
        assert STORED_KEYS_SQL in sql and retry.duplicates == 1
    finally:
        writer.close()
    assert KNOWN_RUNS_SQL not in sql
    assert run_row(store)["step_count"] == 5


@pytest.mark.parametrize("hours_ago", [0, 48])
@pytest.mark.parametrize("max_known_runs", [10_000_000, 0])
def test_a_run_stored_before_a_restart_is_known_to_the_next_writer(store, max_known_runs, hours_ago):
    # The next writer's filter is loaded from the stored runs (or, past the limit, it asks
    # the store): either way the second half of the run is recomputed with the first, and the
    # retry's check reaches back to the first half, also when it was ingested two days ago.
    ingested = time.time_ns() // 1_000_000 - hours_ago * 3_600_000
    store.writer.write(EncodedSteps.of(batch_of(STEPS[:3]), ingested_ms=ingested), timeout=30)
    store.writer.close()
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=True,
                         max_known_runs=max_known_runs).start()
    try:
        writer.write(batch_of(STEPS[3:]), timeout=30)
        assert run_row(store)["step_count"] == 5
        retry = writer.write(batch_of(STEPS[:2]), timeout=30)  # a client retry: deduplicated
        assert (writer._known_filter is None) == (max_known_runs == 0)
    finally:
        writer.close()
    assert retry.duplicates == 2
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]


def test_a_prepared_writer_asks_nothing_more_at_its_first_commit(store):
    # A server prepares its writer before it takes spans: the filter and the commit view exist
    # before the first commit, which then only checks the known run for duplicates.
    store.writer.write(batch_of(STEPS[:3]), timeout=30)
    store.writer.close()
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.prepare()
        assert COUNT_SQL in sql and COMMIT_VIEW_DDL[-1] in sql
        sql.clear()
        retry = writer.write(batch_of(STEPS[2:]), timeout=30)  # the run again, one span retried
        assert COUNT_SQL not in sql and not set(COMMIT_VIEW_DDL) & set(sql)
        assert STORED_KEYS_SQL in sql and retry.duplicates == 1
    finally:
        writer.close()
    assert run_row(store)["step_count"] == 5


def test_a_writer_that_cannot_prepare_does_it_at_its_first_commit(store, caplog):
    store.writer.close()
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("store not reachable yet")
        return store.client()

    writer = BatchWriter(flaky, linger=0, sole_writer=True).start()
    try:
        writer.prepare()
        assert "could not prepare the writer" in caplog.text
        writer.write(batch_of(STEPS), timeout=30)
    finally:
        writer.close()
    assert run_row(store)["step_count"] == 5
