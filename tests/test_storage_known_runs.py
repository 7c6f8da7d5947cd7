"""The sole writer's in-memory filter of stored runs (storage/known_runs.py), on the real engine."""

from __future__ import annotations

import pytest

from agenttrail.storage.known_runs import KnownRuns, run_key, run_keys
from agenttrail.storage.writer import KNOWN_RUNS_SQL, BatchWriter

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
    assert known.maybe_stored(run_keys(runs | unknown)) == runs
    assert len(known) == len(runs) and known.maybe_stored({}) == set()  # each key once


def test_added_runs_are_found_before_and_after_they_are_folded_into_the_sorted_keys():
    known = KnownRuns()
    first = [("p", f"{i:032x}") for i in range(1000)]
    known.add(run_keys(first).values())
    assert known.maybe_stored(run_keys(first[:10] + [("p", "f" * 32)])) == set(first[:10])
    many = [("p", f"{i:032x}") for i in range(1000, 102_000)]  # past the fold threshold
    known.add(run_keys(many).values())
    assert not known._added and len(known._stored) == 102_000  # folded, each key once
    sample = first[::97] + many[::997]
    assert known.maybe_stored(run_keys(sample + [("p", "e" * 32), ("q", f"{5:032x}")])) == set(sample)


def test_a_store_with_more_run_rows_than_the_limit_gets_no_filter(store):
    store.writer.write(batch_of(STEPS), timeout=30)
    assert KnownRuns.load(store.client(), max_rows=0) is None
    assert KnownRuns.load(store.client(), max_rows=1) is not None


def test_the_sole_writer_asks_the_store_only_about_runs_that_may_be_stored(store):
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS[:3]), timeout=30)  # a new run
        assert KNOWN_RUNS_SQL not in sql
        writer.write(batch_of([step("1", run_id="cd" * 16)]), timeout=30)  # another new run
        assert KNOWN_RUNS_SQL not in sql
        writer.write(batch_of(STEPS[3:]), timeout=30)  # the first run again: it has a row
        assert KNOWN_RUNS_SQL in sql
    finally:
        writer.close()
    assert run_row(store)["step_count"] == 5


@pytest.mark.parametrize("max_known_runs", [10_000_000, 0])
def test_a_run_stored_before_a_restart_is_known_to_the_next_writer(store, max_known_runs):
    # The next writer's filter is loaded from the stored runs (or, past the limit, it asks
    # the store): either way the second half of the run is recomputed with the first.
    store.writer.write(batch_of(STEPS[:3]), timeout=30)
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
