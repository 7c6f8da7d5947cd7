"""The storage writer on the real engine: dedup, arrival order, backpressure, failures."""

from __future__ import annotations

import collections
import itertools
import pickle
import random
import re
import threading
import time

import pytest

from agenttrail.storage import STEP_COLUMN_NAMES, EncodedSteps, Overloaded, StepBatch, StorageUnavailable
from agenttrail.storage.native import INSERT_COLUMNS, STEP_INSERT_TYPES
from agenttrail.storage.runs import get_run, get_steps
from agenttrail.storage.runs_sql import RECOMPUTE_RUNS_SQL
from agenttrail.storage import writer as writer_module
from agenttrail.storage.writer import STORED_KEYS_SQL, BatchWriter, run_ids_parameter

RUN = "ab" * 16
T0 = 1_700_000_000_000_000_000


def step(step_id: str, parent: str = "", **values) -> dict:
    base = dict(project_id="p", run_id=RUN, step_id=step_id * 16, parent_step_id=parent * 16 if parent else "",
                name=f"step {step_id}", start_time=T0 + int(step_id, 16) * 1000, end_time=T0 + 10**9)
    base.update(values)
    return base


STEPS = [
    step("1", kind="agent", agent_name="support", input_tokens=999),  # agent usage must not count
    step("2", "1", kind="llm", input_tokens=100, output_tokens=10, total_tokens=110, cost_usd=0.01, model="m1"),
    step("3", "1", kind="tool", tool_name="search", status="error"),
    step("4", "3", kind="llm", input_tokens=5, output_tokens=5, total_tokens=10, cost_usd=None, model="m2"),
    step("5", "1", kind="retrieval"),
]


def batch_of(steps) -> StepBatch:
    b = StepBatch()
    for s in steps:
        b.append(**s)
    return b


def run_row(store):
    row = get_run(store, RUN)
    return {k: row[k] for k in ("status", "step_count", "llm_calls", "tool_calls", "error_count", "input_tokens",
                                "output_tokens", "total_tokens", "cost_usd", "unpriced_llm_calls", "root_missing",
                                "orphan_count", "agent_name", "tools", "models", "duration_ms")}


def test_run_totals_from_llm_steps_only(store):
    store.writer.write(batch_of(STEPS))
    assert run_row(store) == {
        "status": "ok", "step_count": 5, "llm_calls": 2, "tool_calls": 1, "error_count": 1,
        "input_tokens": 105, "output_tokens": 15, "total_tokens": 120, "cost_usd": 0.01,
        "unpriced_llm_calls": 1, "root_missing": 0, "orphan_count": 0, "agent_name": "support",
        "tools": ["search"], "models": ["m1", "m2"], "duration_ms": 999.999,
    }
    assert [s["depth"] for s in get_steps(store, "p", RUN)] == [0, 1, 1, 2, 1]


def test_declared_totals_raise_run_totals_never_add(store):
    """Seed 000's set_totals / run.end: the greater of the llm sum and the root's declaration."""
    declared = {"agenttrail.totals.total_tokens": "500", "agenttrail.totals.cost_usd": "0.005"}
    store.writer.write(batch_of([{**STEPS[0], "attributes": declared}, *STEPS[1:]]))
    row = run_row(store)
    assert (row["total_tokens"], row["cost_usd"], row["input_tokens"]) == (500, 0.01, 105)  # 500 > 120, 0.01 > 0.005


@pytest.mark.parametrize("attributes, tokens, cost", [
    ({"agenttrail.totals.tokens": "42", "agenttrail.totals.cost_usd": "0.25"}, 42, 0.25),  # event API names
    ({"agenttrail.totals.total_tokens": "-5", "agenttrail.totals.cost_usd": "1e3"}, 0, None),  # not plain numbers
    ({"agenttrail.totals.total_tokens": "9" * 16, "agenttrail.totals.cost_usd": "abc"}, 0, None),  # too long
])
def test_declared_totals_without_llm_steps(store, attributes, tokens, cost):
    root = step("1", kind="agent", attributes=attributes)
    store.writer.write(batch_of([root, step("3", "1", kind="tool", tool_name="search")]))
    row = run_row(store)
    assert (row["total_tokens"], row["cost_usd"]) == (tokens, cost if cost is not None else 0.0)


def test_declared_totals_on_a_child_do_not_count(store):
    child = step("2", "1", kind="tool", attributes={"agenttrail.totals.total_tokens": "77"})
    store.writer.write(batch_of([STEPS[0], child]))
    assert run_row(store)["total_tokens"] == 0


@pytest.mark.parametrize("seed", range(4))
def test_every_arrival_order_with_duplicates_gives_the_same_run(store, seed):
    rng = random.Random(seed)
    deliveries = STEPS + rng.sample(STEPS, 3)  # client retries resend some spans
    rng.shuffle(deliveries)
    cuts = sorted(rng.sample(range(1, len(deliveries)), 3))
    for lo, hi in itertools.pairwise([0, *cuts, len(deliveries)]):
        store.writer.write(batch_of(deliveries[lo:hi]))
    assert run_row(store)["input_tokens"] == 105
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]
    reference_store_row = run_row(store)
    assert reference_store_row["status"] == "ok" and reference_store_row["step_count"] == 5


def test_missing_root_is_in_progress_with_orphans(store):
    store.writer.write(batch_of(STEPS[1:3]))
    row = run_row(store)
    assert (row["status"], row["root_missing"], row["orphan_count"]) == ("in_progress", 1, 2)
    store.writer.write(batch_of(STEPS[:1]))
    row = run_row(store)
    assert (row["status"], row["root_missing"], row["orphan_count"]) == ("ok", 0, 0)


def _orphans(steps) -> int:
    ids = {s["step_id"] for s in steps}
    return sum(1 for s in steps if s["parent_step_id"] and s["parent_step_id"] not in ids)


@pytest.mark.parametrize("seed", range(3))
def test_orphan_count_matches_a_direct_count_on_random_trees(store, seed):
    """Parents that never arrive (some shared by several children), self-parents, long runs."""
    rng = random.Random(seed)
    runs = {}
    for r in range(40):
        size = rng.choice([1, 2, 8, 50, 700])
        ids = [f"{rng.getrandbits(64):016x}" for _ in range(size)]
        missing = [f"{rng.getrandbits(64):016x}" for _ in range(3)]
        steps = []
        for i, step_id in enumerate(ids):
            parent = rng.choice([*ids[:i], *missing, step_id, ""]) if i else rng.choice(["", missing[0]])
            steps.append(dict(project_id="p", run_id=f"{r:032x}", step_id=step_id, parent_step_id=parent,
                              name="s", start_time=T0 + i, end_time=T0 + i + 1))
        runs[f"{r:032x}"] = steps
    store.writer.write(batch_of([s for steps in runs.values() for s in steps]))
    found = dict(store.query("SELECT run_id, orphan_count FROM runs FINAL").result_rows)
    assert found == {run: _orphans(steps) for run, steps in runs.items()}
    assert any(found.values()) and not all(found.values())


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_of_several_roots_the_first_in_step_order_is_the_runs_root(store, order):
    # The smallest id starts last, and a tie on start time goes to the smaller id.
    roots = [step("1", status="ok", agent_name="late", start_time=T0 + 5),
             step("3", status="error", agent_name="first", start_time=T0 + 1),
             step("f", status="ok", agent_name="tie-but-later-id", start_time=T0 + 1)]
    for i in order:
        store.writer.write(batch_of([roots[i]]), timeout=30)
    row = get_run(store, RUN)
    assert (row["agent_name"], row["status"], row["root_name"]) == ("first", "error", "step 3")


def test_error_root_fails_the_run_and_unpriced_run_cost_is_unknown(store):
    steps = [dict(STEPS[0], status="error", status_message="boom"), dict(STEPS[3], parent_step_id="1" * 16)]
    store.writer.write(batch_of(steps))
    row = get_run(store, RUN)
    assert row["status"] == "error" and row["status_message"] == "boom"
    assert row["cost_usd"] is None  # its only llm step has no price: unknown, not zero


def test_duplicate_within_one_batch_is_written_once(store):
    result = store.writer.write(batch_of([STEPS[0], STEPS[0]]))
    assert (result.accepted, result.duplicates) == (2, 1)
    assert store.query("SELECT count() FROM steps").result_rows == [(1,)]


def test_a_span_sent_twice_in_one_group_is_written_once_even_when_encoded(store):
    rebuilt = []

    def rebuild():
        rebuilt.append(True)
        return batch_of(STEPS)

    encoded = EncodedSteps.of(batch_of(STEPS + [STEPS[2]]), ingested_ms=0)
    encoded.rebuild = rebuild
    result = store.writer.write(encoded)
    assert (result.accepted, result.duplicates) == (6, 1) and rebuilt == [True]
    assert store.query("SELECT count(), uniqExact(step_id) FROM steps").result_rows == [(5, 5)]


def test_one_span_id_in_two_runs_is_two_spans(store):
    other_run = dict(STEPS[1], run_id="cd" * 16)  # span ids are unique per trace only
    result = store.writer.write(batch_of([STEPS[1], other_run]))
    assert (result.accepted, result.duplicates) == (2, 0)
    assert store.query("SELECT count(), uniqExact(run_id) FROM steps").result_rows == [(2, 2)]


@pytest.mark.parametrize("run_id", ["", "ab" * 15 + ",x", "ab" * 15 + "$r", "$runs$ OR 1", "a,b"])
def test_run_ids_the_queries_cannot_carry_are_refused_before_queueing(store, run_id):
    with pytest.raises(ValueError, match="must not be empty or contain"):
        store.writer.submit(batch_of([dict(STEPS[0], run_id=run_id)]))
    assert store.writer.pending_spans == 0
    assert store.writer.write(batch_of(STEPS)).accepted == 5  # the writer is unharmed
    assert store.writer.write(StepBatch()).accepted == 0  # an empty batch has no run ids to check


def test_full_queue_refuses_instead_of_buffering(store):
    writer = BatchWriter(lambda: store.client(), max_pending_spans=3)  # not started: nothing drains
    first = writer.submit(batch_of(STEPS[:3]))
    with pytest.raises(Overloaded) as refused:
        writer.submit(batch_of(STEPS[3:]))
    assert refused.value.retry_after >= 1 and writer.stats["rejected"] == 2
    writer.start()
    assert first.result(30).accepted == 3
    writer.close()


def _write_fails_while(store, broken: str, restored: str, batch) -> None:
    """``batch``'s commit fails while the statement ``broken`` holds; ``restored`` undoes it."""
    store.command(broken)
    try:
        with pytest.raises(StorageUnavailable):
            store.writer.write(batch, timeout=30)
    finally:
        store.command(restored)


def test_failed_commit_fails_every_waiting_batch_then_recovers(store):
    _write_fails_while(store, "RENAME TABLE steps TO steps_gone", "RENAME TABLE steps_gone TO steps", batch_of(STEPS))
    assert store.query("SELECT count() FROM steps").result_rows == [(0,)]
    store.writer.write(batch_of(STEPS), timeout=30)
    assert run_row(store)["step_count"] == 5


class _Recording:
    """A client that records the SQL of its queries (the writer's duplicate check is one)."""

    def __init__(self, client, sql: list):
        self._client, self._sql = client, sql

    def query(self, sql, *args, **kwargs):
        self._sql.append(sql)
        return self._client.query(sql, *args, **kwargs)

    def command(self, sql, *args, **kwargs):
        self._sql.append(sql)
        return self._client.command(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_duplicate_check_reads_only_runs_that_have_a_row(store):
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0).start()
    try:
        first = writer.write(batch_of(STEPS), timeout=30)  # a new run: nothing of it can be stored
        assert (first.accepted, first.duplicates) == (5, 0) and STORED_KEYS_SQL not in sql
        retry = writer.write(batch_of(STEPS[:2]), timeout=30)  # a client retry: the run has a row now
        assert (retry.accepted, retry.duplicates) == (2, 2) and STORED_KEYS_SQL in sql
    finally:
        writer.close()
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]


def test_a_retry_after_a_commit_failed_between_insert_and_recompute_is_deduplicated(store):
    # The steps insert succeeds, the run recompute is refused: the run has stored steps, no row.
    _write_fails_while(store, "ALTER TABLE runs ADD CONSTRAINT refuse_all CHECK 0",
                       "ALTER TABLE runs DROP CONSTRAINT refuse_all", batch_of(STEPS))
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]
    assert store.query("SELECT count() FROM runs").result_rows == [(0,)]
    retry = store.writer.write(batch_of(STEPS), timeout=30)
    assert (retry.accepted, retry.duplicates) == (5, 5)
    assert run_row(store)["step_count"] == 5


def test_too_many_failed_runs_to_remember_checks_every_run_again(store, monkeypatch):
    monkeypatch.setattr(writer_module, "_UNSETTLED_LIMIT", 3)
    writer = store.writer
    writer._unsettle({("p", f"{i:032x}") for i in range(4)}, time.time_ns() // 1_000_000)
    assert writer._check_every_run and not writer._unsettled
    # Steps stored by a commit the writer no longer remembers: found all the same.
    store.command("INSERT INTO steps (project_id, run_id, step_id, start_time, ingested_at) "
                  "VALUES ('p', {run:String}, {step:String}, now64(9), now64(3))",
                  parameters={"run": RUN, "step": "1" * 16})
    assert writer.write(batch_of(STEPS[:1]), timeout=30).duplicates == 1


def _runs_table(store) -> dict:
    rows = store.query("SELECT * EXCEPT version FROM runs FINAL ORDER BY project_id, run_id")
    return {(r["project_id"], r["run_id"]): r for r in rows.named_results()}


def _random_runs(rng: random.Random, count: int) -> list[dict]:
    steps = []
    for r in range(count):
        run, project = f"{rng.getrandbits(128):032x}", rng.choice(["p", "q"])
        ids = [f"{rng.getrandbits(64):016x}" for _ in range(rng.randint(1, 12))]
        for i, step_id in enumerate(ids):
            kind = rng.choice(["llm", "tool", "agent", "retrieval"]) if i else "agent"
            attributes = {"agenttrail.totals.total_tokens": str(rng.randint(0, 900))} if not i and rng.random() < .3 else {}
            steps.append(dict(
                project_id=project, run_id=run, step_id=step_id,
                parent_step_id=rng.choice(["", *ids[:i], "0" * 15 + "1"]) if i else "",
                name=f"s{i}", kind=kind, start_time=T0 + rng.randint(0, 10**9), end_time=T0 + 2 * 10**9,
                status=rng.choice(["ok", "ok", "error"]), agent_name=rng.choice(["", "a", "b"]),
                session_id=rng.choice(["", "s1"]), tool_name=rng.choice(["", "search"]) if kind == "tool" else "",
                model=rng.choice(["m1", "m2"]) if kind == "llm" else "", input_tokens=rng.randint(0, 50),
                output_tokens=rng.randint(0, 50), total_tokens=rng.randint(0, 100),
                cost_usd=rng.choice([None, 0.5, 0.25]) if kind == "llm" else None, attributes=attributes))
    return steps


@pytest.mark.parametrize("seed", range(2))
def test_rows_of_new_runs_computed_from_the_commit_equal_a_recompute_from_steps(store, seed):
    rng = random.Random(seed)
    steps = _random_runs(rng, 60)
    rng.shuffle(steps)
    store.writer.write(batch_of(steps[:200]), timeout=30)  # every run new: staged
    store.writer.write(batch_of(steps[200:]), timeout=30)  # some runs known now, some new
    staged = _runs_table(store)
    touched = sorted({(s["project_id"], s["run_id"]) for s in steps})
    store.command(RECOMPUTE_RUNS_SQL, {"projects": ["p", "q"], "$runs$": run_ids_parameter(sorted({r for _, r in touched})),
                                       "since": 0, "version": time.time_ns() * 2})
    assert _runs_table(store) == staged and len(staged) == len(touched)
    assert {k: v["step_count"] for k, v in staged.items()} == dict(collections.Counter(
        (s["project_id"], s["run_id"]) for s in steps))


def test_the_sole_writer_reads_no_steps_for_new_runs_and_recomputes_known_ones(store):
    sql = []
    writer = BatchWriter(lambda: _Recording(store.client(), sql), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS[:3]), timeout=30)
        assert RECOMPUTE_RUNS_SQL not in sql and STORED_KEYS_SQL not in sql and run_row(store)["step_count"] == 3
        other = [step("1", run_id="cd" * 16)]  # one new run, one known run, in one commit
        writer.write(batch_of(STEPS[3:] + other), timeout=30)
        assert RECOMPUTE_RUNS_SQL in sql
    finally:
        writer.close()
    assert run_row(store)["step_count"] == 5 and get_run(store, "cd" * 16)["step_count"] == 1


@pytest.mark.parametrize("marked", [True, False])
def test_a_commits_partial_row_of_a_known_run_never_wins(store, monkeypatch, marked):
    # The view leaves out the runs the commit recomputes (the Set of them is filled first).
    # Were it to write a row of such a run anyway (``marked`` False: the Set left empty), that
    # row holds this commit's steps alone, and must lose to the stored row even when the
    # recompute is refused.
    store.writer.write(batch_of(STEPS[:3]), timeout=30)  # a new run: its row from the view
    if not marked:
        monkeypatch.setattr(store.writer, "_mark_recomputed", lambda client, runs: None)
    _write_fails_while(store, "ALTER TABLE runs ADD CONSTRAINT refuse_big CHECK step_count <= 3",
                       "ALTER TABLE runs DROP CONSTRAINT refuse_big", batch_of(STEPS[3:]))
    partial_rows = store.query("SELECT count() FROM runs WHERE step_count = 2").result_rows
    assert partial_rows == [(0,)] if marked else [(1,)]
    assert run_row(store)["step_count"] == 3
    store.writer.write(batch_of(STEPS[3:]), timeout=30)  # the client's retry
    assert run_row(store)["step_count"] == 5
    assert store.query("SELECT count() FROM runs WHERE step_count = 2").result_rows == partial_rows


@pytest.mark.parametrize("settle, expected_steps", [(600, 5), (0, 2)])
def test_after_an_unclean_stop_every_run_is_recomputed_for_a_while(store, settle, expected_steps):
    # The last process died between a commit's steps and its run rows: its marker table is
    # still there (the store's own writer made it, and has not stopped), steps of RUN are
    # stored, and RUN has no row.
    store.writer.write(batch_of([step("9", run_id="cd" * 16)]), timeout=30)
    store.command("INSERT INTO steps (project_id, run_id, step_id, parent_step_id, name, start_time, ingested_at) "
                  "SELECT 'p', {run:String}, arrayJoin(['1', '2', '3']) AS s, if(s = '1', '', '1'), 'lost', "
                  "now64(9), now64(3)", parameters={"run": RUN})
    store.command("DELETE FROM runs WHERE run_id = {run:String}", parameters={"run": RUN})  # the view's row
    assert store.query("SELECT count() FROM runs WHERE run_id = {run:String}", {"run": RUN}).result_rows == [(0,)]
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=True, settle=settle).start()
    try:
        # A client retries part of the lost commit, with a step the lost commit did not hold.
        writer.write(batch_of([step("4"), step("5")]), timeout=30)
        assert writer.settling == (settle > 0)
        assert writer.stats["runs_from_steps" if settle else "runs_from_commit"] == 1
    finally:
        writer.close()
    assert get_run(store, RUN)["step_count"] == expected_steps  # 2: a row from the retry alone


@pytest.mark.parametrize("lost_minutes_ago", [0, 10])
def test_after_an_unclean_stop_a_retry_of_the_lost_spans_is_stored_once(store, lost_minutes_ago):
    # The last process stored two spans of RUN and died before their run row and their answer
    # (its marker is still there); the client retries them with a third span.  RUN has no row,
    # so only the unclean start says that it may have stored steps, and only the full margin
    # reaches back to spans stamped ten minutes ago (past the sole writer's own margin).
    store.writer.write(batch_of([step("9", run_id="cd" * 16)]), timeout=30)
    store.command("INSERT INTO steps (project_id, run_id, step_id, parent_step_id, name, start_time, ingested_at) "
                  "SELECT 'p', {run:String}, s, if(s = {root:String}, '', {root:String}), 'lost', now64(9), "
                  "now64(3) - toIntervalMinute({ago:UInt32}) FROM (SELECT arrayJoin([{root:String}, {child:String}]) AS s)",
                  parameters={"run": RUN, "root": "1" * 16, "child": "2" * 16, "ago": lost_minutes_ago})
    store.command("DELETE FROM runs WHERE run_id = {run:String}", parameters={"run": RUN})
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=True).start()
    try:
        retry = writer.write(batch_of([step("1"), step("2", "1"), step("4", "1")]), timeout=30)
    finally:
        writer.close()
    assert (retry.accepted, retry.duplicates) == (3, 2)
    assert store.query("SELECT step_id, count() FROM steps WHERE run_id = {run:String} GROUP BY step_id "
                       "ORDER BY step_id", {"run": RUN}).result_rows == [("1" * 16, 1), ("2" * 16, 1), ("4" * 16, 1)]
    assert get_run(store, RUN)["step_count"] == 3


@pytest.mark.parametrize("max_known_runs", [10_000_000, 0])
def test_a_retry_later_than_the_sole_writers_margin_after_a_failed_commit_is_deduplicated(store, max_known_runs):
    # No margin at all: only the failed commit's own stamp makes the retry's check reach back to
    # the steps that commit stored.  The run filter holds that stamp; without it (past its
    # limit) the writer's record of the failed commit must.
    store.writer.sole_margin_ms = 0
    store.writer.max_known_runs = max_known_runs
    store.command("INSERT INTO runs (project_id, run_id, version) VALUES ('p', 'other', 1)")  # one run stored
    _write_fails_while(store, "ALTER TABLE runs ADD CONSTRAINT refuse_all CHECK 0",
                       "ALTER TABLE runs DROP CONSTRAINT refuse_all", batch_of(STEPS))
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]
    time.sleep(0.01)
    retry = store.writer.write(batch_of(STEPS), timeout=30)
    assert (retry.accepted, retry.duplicates) == (5, 5)
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]
    assert not store.writer._unsettled  # settled: later commits read from their runs' first sighting again


def test_a_store_left_by_the_earlier_staging_layout_is_upgraded_and_treated_as_unclean(store):
    # Earlier versions inserted through a Null table whose view copied rows into steps; left
    # behind by a crash, that view would store every later commit twice.
    store.writer.close()
    store.command("CREATE TABLE writer_staging (run_id String, version UInt64) ENGINE = Memory")
    store.command("CREATE TABLE writer_steps_in AS steps ENGINE = Null")
    store.command("CREATE MATERIALIZED VIEW writer_steps_view TO steps AS SELECT * FROM writer_steps_in")
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS), timeout=30)
        assert writer.settling  # the old marker: the last process died
    finally:
        writer.close()
    names = store.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                        "AND name LIKE 'writer%'").result_rows
    assert names == [] and run_row(store)["step_count"] == 5
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]


def test_a_clean_stop_drops_the_marker_and_the_next_writer_stages_at_once(store):
    store.writer.write(batch_of(STEPS[:1]), timeout=30)
    marker = "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'writer_staging'"
    assert store.query(marker).result_rows == [(1,)]
    store.writer.close()
    assert store.query(marker).result_rows == [(0,)]
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=True).start()
    try:
        writer.write(batch_of(STEPS[1:2]), timeout=30)
        assert writer._stage_from is not None and writer._stage_from <= time.monotonic()
    finally:
        writer.close()


def _read_back(store):
    rows = store.query(f"SELECT {', '.join('`' + c + '`' for c in STEP_COLUMN_NAMES)} FROM steps ORDER BY step_id")
    return [dict(zip(STEP_COLUMN_NAMES, row)) for row in rows.result_rows]


def test_encoded_steps_store_the_same_rows_as_clickhouse_connects_own_insert(store):
    rich = step("1", attributes={"a": "1", "é": "ü"}, resource_attributes={"service.name": "s"},
                finish_reasons=["stop"], unmapped_usage={"gen_ai.usage.x": "3"}, cost_usd=0.5,
                **{"events.time": [T0], "events.name": ["exception"], "events.attributes": [{"k": "v"}],
                   "links.trace_id": ["cd" * 16], "links.span_id": ["ef" * 8], "links.trace_state": [""],
                   "links.attributes": [{}]})
    batch = batch_of([rich, *STEPS[1:]])
    # The reference: clickhouse-connect's own insert, with the types it reads from the table.
    data = [batch.columns[name] for name in STEP_COLUMN_NAMES]
    store.client().insert("steps", data, column_names=list(STEP_COLUMN_NAMES), column_oriented=True)
    expected = _read_back(store)
    store.command("TRUNCATE TABLE steps")
    store.writer.write(EncodedSteps.of(batch_of([rich, *STEPS[1:]]), ingested_ms=0))
    assert _read_back(store) == expected and len(expected) == 5


def test_partly_stored_encoded_steps_are_rebuilt_and_only_new_rows_written(store):
    store.writer.write(batch_of(STEPS[:2]))
    rebuilt = []

    def rebuild():  # the receiver maps the request again: rows may come in another order
        rebuilt.append(True)
        return batch_of(list(reversed(STEPS)))

    encoded = EncodedSteps.of(batch_of(STEPS + [STEPS[4]]), ingested_ms=0)
    encoded.rebuild = rebuild
    result = store.writer.write(encoded)
    assert (result.accepted, result.duplicates) == (6, 3) and rebuilt == [True]
    assert store.query("SELECT count(), uniqExact(step_id) FROM steps").result_rows == [(5, 5)]
    assert run_row(store)["step_count"] == 5


def test_fully_stored_encoded_steps_write_nothing_and_need_no_rebuild(store):
    store.writer.write(batch_of(STEPS))
    encoded = EncodedSteps.of(batch_of(STEPS), ingested_ms=0)
    encoded.rebuild = lambda: pytest.fail("a batch that is all duplicates needs no rebuild")
    assert store.writer.write(encoded).duplicates == 5
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]


def test_a_rebuild_that_lost_spans_fails_the_commit_instead_of_acknowledging_them(store):
    store.writer.write(batch_of(STEPS[:1]))
    encoded = EncodedSteps.of(batch_of(STEPS), ingested_ms=0)
    encoded.rebuild = lambda: batch_of(STEPS[:3])  # spans 4 and 5 went missing
    with pytest.raises(StorageUnavailable):
        store.writer.write(encoded, timeout=30)
    assert store.query("SELECT count() FROM steps").result_rows == [(1,)]


def test_encoded_steps_without_a_rebuild_are_refused_at_submit(store):
    encoded = pickle.loads(pickle.dumps(EncodedSteps.of(batch_of(STEPS), ingested_ms=0)))
    assert encoded.rebuild is None and len(encoded) == 5  # a rebuild does not cross processes
    with pytest.raises(ValueError, match="rebuild"):
        store.writer.submit(encoded)


def test_native_insert_types_are_the_steps_table_types(store):
    described = {name: type_ for name, type_, *_ in store.query("DESCRIBE TABLE steps").result_rows}
    assert described == {name: STEP_INSERT_TYPES[name] for name in INSERT_COLUMNS}


def test_under_load_the_writer_waits_for_a_batch_on_its_way(store):
    writer = BatchWriter(lambda: store.client(), linger=0, busy_linger=60, busy_grace=0, min_group_spans=4)
    writer._busy = True  # the last commit ended with work waiting
    writer.submit(batch_of(STEPS[:2]))
    taken = []
    taker = threading.Thread(target=lambda: taken.append(writer._take_group()))
    with writer.expecting():  # a request being mapped
        taker.start()
        time.sleep(0.3)
        assert not taken  # still waiting for it
        writer.submit(batch_of(STEPS[2:4]))  # reaches min_group_spans: the group is released
    taker.join(30)
    assert [len(batch) for batch, _ in taken[0]] == [2, 2]


def test_under_load_the_writer_stops_waiting_when_the_announced_batch_is_dropped(store):
    writer = BatchWriter(lambda: store.client(), linger=0, busy_linger=60, busy_grace=0, min_group_spans=4)
    writer._busy = True
    writer.submit(batch_of(STEPS[:2]))
    taken = []
    taker = threading.Thread(target=lambda: taken.append(writer._take_group()))
    with pytest.raises(ValueError):
        with writer.expecting():
            taker.start()
            time.sleep(0.3)
            assert not taken
            raise ValueError("a malformed request: nothing is submitted")
    taker.join(30)  # released by the end of the announcement, not by busy_linger
    assert [len(batch) for batch, _ in taken[0]] == [2]


def test_under_load_with_nothing_on_its_way_the_group_goes_after_the_grace(store):
    writer = BatchWriter(lambda: store.client(), linger=0, busy_linger=60, busy_grace=0.05, min_group_spans=4)
    writer._busy = True
    writer.submit(batch_of(STEPS[:2]))
    started = time.monotonic()
    assert [len(batch) for batch, _ in writer._take_group()] == [2]
    assert time.monotonic() - started < 30  # not busy_linger's 60 s


def test_under_load_a_group_smaller_than_the_minimum_still_goes_after_busy_linger(store):
    writer = BatchWriter(lambda: store.client(), linger=0, busy_linger=0.01, min_group_spans=10**6)
    writer._busy = True
    writer.submit(batch_of(STEPS[:2]))
    with writer.expecting():  # announced, but not ready within busy_linger
        assert [len(batch) for batch, _ in writer._take_group()] == [2]


def test_steps_ingested_long_ago_still_count_and_still_deduplicate(store):
    two_days_ago = time.time_ns() // 1_000_000 - 2 * 86_400_000
    store.writer.write(EncodedSteps.of(batch_of(STEPS[:3]), ingested_ms=two_days_ago))
    assert run_row(store)["step_count"] == 3
    # Later spans of the same run: the reads are bounded by ingest time, but the bound comes
    # from the run's first_seen_at, so the steps stored two days ago are found.
    result = store.writer.write(batch_of([STEPS[0], *STEPS[3:]]))
    assert (result.accepted, result.duplicates) == (3, 1)
    row = run_row(store)
    assert (row["step_count"], row["llm_calls"], row["tool_calls"], row["error_count"], row["input_tokens"]) \
        == (5, 2, 1, 1, 105)
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]


def test_a_span_stored_twice_by_another_writer_counts_once(store):
    store.writer.write(batch_of(STEPS[:4]))
    # A second receiver stored step 2 again (both checked before either inserted).
    store.command("INSERT INTO steps SELECT * FROM steps WHERE step_id = {s:String}", parameters={"s": "2" * 16})
    assert store.query("SELECT count() FROM steps").result_rows == [(5,)]
    store.writer.write(batch_of(STEPS[4:]))
    row = run_row(store)
    assert (row["step_count"], row["llm_calls"], row["input_tokens"]) == (5, 2, 105)


@pytest.mark.parametrize("query", ["recompute", "duplicate check"])
def test_a_commit_reads_only_recently_ingested_granules(store, query):
    # 40,000 steps of other runs, ingested two days ago: five granules.  Run ids are random, so
    # the key ranges of those granules contain the new runs below and a read by key alone
    # would select every one of them.
    store.command(
        "INSERT INTO steps (project_id, run_id, step_id, start_time, ingested_at) "
        "SELECT 'p', lower(hex(MD5(toString(number)))), 'ff', now64(9), now64(3) - INTERVAL 2 DAY "
        "FROM numbers(40000)")
    runs = [f"{i:032x}"[::-1] for i in range(1, 301)]
    store.writer.write(batch_of([step("1", run_id=run) for run in runs]))
    select = RECOMPUTE_RUNS_SQL[RECOMPUTE_RUNS_SQL.index("SELECT"):] if query == "recompute" else STORED_KEYS_SQL
    since = time.time_ns() // 1_000_000 - 3_600_000
    plan = [row[0] for row in store.query(
        "EXPLAIN indexes = 1 " + select,
        {"projects": ["p"], "$runs$": run_ids_parameter(runs), "since": since, "version": 1}).result_rows]
    assert any("run_id in 300-element set" in line for line in plan), plan  # the key is used
    # The read's own line, "Parts: a | Granules: b", says what is read after every index.
    read = [int(m.group(1)) for line in plan if (m := re.search(r"Parts: \d+ \| Granules: (\d+)", line))]
    assert read and read[0] <= 2, plan
    assert get_run(store, runs[0])["step_count"] == 1


class _RecordingParameters(_Recording):
    """A client that also records each query's parameters."""

    def __init__(self, client, calls: list):
        super().__init__(client, [])
        self._calls = calls

    def query(self, sql, *args, **kwargs):
        self._calls.append((sql, kwargs.get("parameters")))
        return super().query(sql, *args, **kwargs)

    def command(self, sql, *args, **kwargs):
        self._calls.append((sql, kwargs.get("parameters")))
        return super().command(sql, *args, **kwargs)


@pytest.mark.parametrize("sole_writer", [True, False])
def test_the_sole_writer_reads_back_a_minute_not_an_hour(store, sole_writer):
    # 40,000 steps of other runs ingested ten minutes ago (five granules), as in a store that
    # is taking spans.  A run's second commit reads its steps back (duplicate check, recompute):
    # the sole writer from a minute before the run was first seen, so it skips those granules;
    # a receiver sharing a server keeps an hour for the others' writes in flight, and reads them.
    store.writer.close()
    store.command(
        "INSERT INTO steps (project_id, run_id, step_id, start_time, ingested_at) "
        "SELECT 'p', lower(hex(MD5(toString(number)))), 'ff', now64(9), now64(3) - INTERVAL 10 MINUTE "
        "FROM numbers(40000)")
    runs = [f"{i:032x}"[::-1] for i in range(1, 301)]
    calls = []
    writer = BatchWriter(lambda: _RecordingParameters(store.client(), calls), linger=0,
                         sole_writer=sole_writer).start()
    try:
        writer.write(batch_of([step("1", run_id=run) for run in runs]), timeout=30)
        writer.write(batch_of([step("2", "1", run_id=run) for run in runs]), timeout=30)
    finally:
        writer.close()
    reads = [(sql, parameters) for sql, parameters in calls if sql in (STORED_KEYS_SQL, RECOMPUTE_RUNS_SQL)]
    assert {sql for sql, _ in reads} == {STORED_KEYS_SQL, RECOMPUTE_RUNS_SQL}
    for sql, parameters in reads:
        select = sql[sql.index("SELECT"):] if sql == RECOMPUTE_RUNS_SQL else sql
        plan = [row[0] for row in store.query("EXPLAIN indexes = 1 " + select, parameters).result_rows]
        read = [int(m.group(1)) for line in plan if (m := re.search(r"Parts: \d+ \| Granules: (\d+)", line))]
        # The two commits' own granules, or those and the five older ones too.
        assert read and read[0] == (2 if sole_writer else 7), plan
    assert get_run(store, runs[0])["step_count"] == 2


def test_steps_merge_column_by_column_above_a_granule(store):
    """Migration 4: ClickHouse's default (row by row below 131,072 rows) costs up to ~2x the CPU."""
    ddl = store.query("SELECT create_table_query FROM system.tables "
                      "WHERE database = currentDatabase() AND name = 'steps'").result_rows[0][0]
    assert "vertical_merge_algorithm_min_rows_to_activate = 8192" in ddl


def test_a_new_run_split_over_two_batches_of_one_commit_gets_one_whole_row(store):
    # Each batch is its own Native block; the run-row view must see the commit as one block,
    # or the run would get two partial rows with the same version.
    writer = BatchWriter(lambda: store.client(), linger=0.3, sole_writer=True).start()
    try:
        first, second = writer.submit(batch_of(STEPS[:2])), writer.submit(batch_of(STEPS[2:]))
        first.result(30), second.result(30)
        assert writer.stats["commits"] == 1 and writer.stats["runs_from_commit"] == 1
    finally:
        writer.close()
    assert run_row(store)["step_count"] == len(STEPS)
    assert store.query("SELECT count() FROM runs WHERE run_id = {r:String}", {"r": RUN}).result_rows == [(1,)]


def test_steps_merge_about_twenty_parts_at_a_time(store):
    """Migration 5: ClickHouse's default (5) rewrote each span about twice as often while ingesting."""
    ddl = store.query("SELECT create_table_query FROM system.tables "
                      "WHERE database = currentDatabase() AND name = 'steps'").result_rows[0][0]
    assert "merge_selector_base = 20" in ddl


@pytest.mark.parametrize("sole_writer", [True, False])
def test_a_commit_of_many_one_span_runs_fits_in_its_queries(store, sole_writer):
    # One span per trace (a chat completion each) makes commits of many runs: 12,000 run ids
    # are more query text than ClickHouse takes by default (256 KiB), and their second spans
    # go through every query that names the runs (which are stored, duplicates, recompute).
    store.writer.close()
    runs = [f"{i:032x}" for i in range(12_000)]
    writer = BatchWriter(lambda: store.client(), linger=0, sole_writer=sole_writer).start()
    try:
        writer.write(batch_of([step("1", run_id=run) for run in runs]), timeout=120)
        second = writer.write(batch_of([step("2", "1", run_id=run) for run in runs] + [step("1", run_id=runs[0])]),
                              timeout=120)
    finally:
        writer.close()
    assert (second.accepted, second.duplicates) == (12_001, 1)
    counts = store.query("SELECT step_count, count() FROM runs FINAL GROUP BY step_count").result_rows
    assert counts == [(2, 12_000)]
