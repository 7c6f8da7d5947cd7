"""The sole writer's in-memory filter of stored runs (storage/known_runs.py), on the real engine."""

from __future__ import annotations

import threading
import time

import pytest

from agenttrail.storage import EncodedSteps
from agenttrail.storage import writer as writer_module
from agenttrail.storage.known_runs import KnownRuns, run_key, run_keys
from agenttrail.storage.writer import KNOWN_RUNS_SQL, STORED_KEYS_SQL, BatchWriter

from test_storage_writer import RUN, STEPS, _Recording, batch_of, run_row, step, wait_for_known_runs

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


def test_once_its_filter_is_loaded_the_sole_writer_never_asks_the_store_which_runs_are_stored(store):
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of([step("1", run_id="ef" * 16)]), timeout=30)  # starts the load, asks meanwhile
        assert KNOWN_RUNS_SQL in sql
        wait_for_known_runs(writer)
        sql.clear()
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
        wait_for_known_runs(writer)
        retry = writer.write(batch_of(STEPS[:2]), timeout=30)  # a client retry: deduplicated
        assert (writer._known_filter is None) == (max_known_runs == 0)
    finally:
        writer.close()
    assert retry.duplicates == 2
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]


class _HeldLoad:
    """:meth:`KnownRuns.load` that reads the stored runs at once (its snapshot, then ``read`` is
    set) and returns only once the test sets ``release``: a load that takes as long as the test
    wants."""

    def __init__(self, monkeypatch):
        self.read, self.release, self.calls = threading.Event(), threading.Event(), 0
        load = KnownRuns.load.__func__

        def held(cls, client, max_runs=10_000_000):
            self.calls += 1
            known = load(cls, client, max_runs)
            self.read.set()
            self.release.wait(30)
            return known

        monkeypatch.setattr(KnownRuns, "load", classmethod(held))


@pytest.fixture
def held_load(monkeypatch):
    held = _HeldLoad(monkeypatch)
    yield held
    held.release.set()


class _InsertingAfter:
    """A client whose inserts wait for ``event``: here, until the held load has read the runs."""

    def __init__(self, client, event: threading.Event):
        self._client, self._event = client, event

    def raw_insert(self, *args, **kwargs):
        assert self._event.wait(30)
        return self._client.raw_insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _earliest_ingest(store) -> dict:
    return dict(((p, r), t) for p, r, t in store.query(
        "SELECT project_id, run_id, toUnixTimestamp64Milli(min(ingested_at)) FROM steps "
        "GROUP BY project_id, run_id").result_rows)


def test_runs_committed_while_the_filter_loads_are_in_it_once_loaded(store, held_load):
    # Every commit here inserts after the load has read the stored runs, so none of their runs
    # is in what it read: only the writer's record of them, added at the pickup, can say that
    # they are stored, and since when.  RUN's steps carry a stamp ten minutes old and the
    # writer no margin, so a later time would miss them too.
    sql, other = [], ("p", "cd" * 16)
    writer = BatchWriter(lambda: _InsertingAfter(_Recording(store.client(), sql), held_load.read),
                         linger=0, sole_writer=True).start()
    writer.sole_margin_ms = 0
    ten_minutes_ago = time.time_ns() // 1_000_000 - 600_000
    try:
        # The commit that starts the load, then one while it runs.
        writer.write(EncodedSteps.of(batch_of(STEPS[:3]), ingested_ms=ten_minutes_ago), timeout=30)
        writer.write(batch_of([step("1", run_id=other[1])]), timeout=30)
        assert writer._known_filter is None and held_load.read.is_set()
        held_load.release.set()
        wait_for_known_runs(writer)
        sql.clear()
        retry = writer.write(batch_of(STEPS[:2] + [step("1", run_id=other[1])]), timeout=30)
        assert writer._known_filter is not None and KNOWN_RUNS_SQL not in sql  # the filter answered
        found = writer._known_filter.stored_since(run_keys([("p", RUN), other]))
    finally:
        writer.close()
    assert (retry.accepted, retry.duplicates) == (3, 3)
    assert store.query("SELECT count() FROM steps").result_rows == [(4,)]
    earliest = _earliest_ingest(store)
    assert found.keys() == {("p", RUN), other}
    assert all(earliest[run] - 1000 < found[run] <= earliest[run] for run in found)
    assert held_load.calls == 1


def test_while_the_filter_loads_commits_ask_the_store_and_still_find_retried_spans(store, held_load):
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS[:3]), timeout=30)  # starts the load, which never ends here
        retry = writer.write(batch_of(STEPS[:2]), timeout=30)  # a client retry
        assert (retry.accepted, retry.duplicates) == (2, 2)
        assert KNOWN_RUNS_SQL in sql and STORED_KEYS_SQL in sql and writer._known_filter is None
    finally:
        closing = time.monotonic()
        writer.close()
    assert time.monotonic() - closing < 10  # close() does not wait for the load
    assert not held_load.release.is_set()
    assert store.query("SELECT count() FROM steps").result_rows == [(3,)]


def test_a_failed_load_is_tried_again_later_and_commits_ask_the_store_meanwhile(store, monkeypatch, caplog):
    monkeypatch.setattr(writer_module, "_KNOWN_RUNS_RETRY", 2.0)
    load, calls = KnownRuns.load.__func__, []

    def fails_once(cls, client, max_runs=10_000_000):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the store did not answer")
        return load(cls, client, max_runs)

    monkeypatch.setattr(KnownRuns, "load", classmethod(fails_once))
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS[:3]), timeout=30)  # starts the load, which fails
        wait_for_known_runs(writer)
        retry = writer.write(batch_of(STEPS[:2]), timeout=30)  # takes the failure, asks the store
        assert retry.duplicates == 2 and writer._known_filter is None
        assert "could not load the stored runs" in caplog.text
        writer.write(batch_of(STEPS[3:4]), timeout=30)
        assert len(calls) == 1  # not at every commit
        time.sleep(2.1)
        writer.write(batch_of(STEPS[4:]), timeout=30)  # tried again
        assert len(calls) == 2
        wait_for_known_runs(writer)
        sql.clear()
        retry = writer.write(batch_of(STEPS), timeout=30)
        assert writer._known_filter is not None and KNOWN_RUNS_SQL not in sql
    finally:
        writer.close()
    assert retry.duplicates == 5 and run_row(store)["step_count"] == 5


def test_a_filter_that_loads_while_more_runs_than_its_limit_commit_is_given_up(store, held_load, caplog):
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=True, max_known_runs=2).start()
    try:
        # Three commits of a run each, recorded for the load the first one starts: past the limit.
        writer.write(batch_of([step("1", run_id=f"{1:032x}")]), timeout=30)
        load = writer._known_load
        for i in range(2, 4):
            writer.write(batch_of([step("1", run_id=f"{i:032x}")]), timeout=30)
        assert "giving up the filter" in caplog.text
        held_load.release.set()
        assert load.result(30) is not None  # a filter the writer no longer takes
        retry = writer.write(batch_of([step("1", run_id=f"{3:032x}")]), timeout=30)
        assert writer._known_filter is None and held_load.calls == 1  # and never loads again
    finally:
        writer.close()
    assert retry.duplicates == 1
