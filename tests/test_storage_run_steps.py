"""A run's steps read beside its row (storage.runs.get_run_steps), bounded by the row's step times."""

from __future__ import annotations

from agenttrail.storage.queries import Page, RunFilter, list_runs
from agenttrail.storage.runs import get_run, get_run_steps, get_steps, steps_of_runs

from test_storage_writer import RUN, T0, batch_of, step

DAY = 86_400 * 10**9


def _ids(steps) -> list[str]:
    return [s["step_id"] for s in steps]


def test_steps_that_started_on_different_days_are_all_read(store):
    spans = [step("1", start_time=T0), step("2", "1", start_time=T0 + DAY), step("3", "1", start_time=T0 + 3 * DAY)]
    store.writer.write(batch_of(spans), timeout=30)
    days = store.query("SELECT uniqExact(_partition_id) FROM steps WHERE run_id = {r:String}", parameters={"r": RUN})
    assert days.result_rows == [(3,)]  # three daily partitions
    assert _ids(get_run_steps(store, RUN)) == ["1" * 16, "2" * 16, "3" * 16]
    assert get_run(store, RUN)["step_count"] == 3


def test_a_row_stored_before_schema_v8_reads_its_steps_unbounded(store):
    store.writer.write(batch_of([step("1"), step("2", "1")]), timeout=30)
    row = get_run(store, RUN)
    # As migration 8 left older rows: no step times (the epoch), in a newer version.
    store.command("INSERT INTO runs (project_id, run_id, status, step_count, version) "
                  "VALUES ({p:String}, {r:String}, 'ok', 2, {v:UInt64})",
                  parameters={"p": row["project_id"], "r": RUN, "v": 2**63})
    assert get_run(store, RUN)["first_step_at"].year == 1970
    assert _ids(get_run_steps(store, RUN)) == ["1" * 16, "2" * 16]


def test_a_span_stored_twice_is_read_once(store):
    store.writer.write(batch_of([step("1"), step("2", "1")]), timeout=30)
    store.command("INSERT INTO steps SELECT * FROM steps WHERE run_id = {r:String} AND step_id = {s:String}",
                  parameters={"r": RUN, "s": "2" * 16})  # as two receivers racing on a server could
    assert store.query("SELECT count() FROM steps WHERE run_id = {r:String}", parameters={"r": RUN}).result_rows == [(3,)]
    assert _ids(get_run_steps(store, RUN)) == ["1" * 16, "2" * 16]


def test_the_steps_are_those_of_the_project_the_row_comes_from(store):
    store.writer.write(batch_of([step("1", project_id="a", start_time=T0),
                                 step("2", project_id="b", start_time=T0 + DAY)]), timeout=30)
    assert {s["project_id"] for s in get_run_steps(store, RUN, projects={"a"})} == {"a"}
    assert _ids(get_run_steps(store, RUN, projects={"b"})) == ["2" * 16]
    assert get_run_steps(store, RUN, projects={"c"}) == []
    assert get_run_steps(store, "f" * 32) == []


def test_the_steps_of_many_runs_are_read_in_one_query_as_one_by_one(store):
    runs = [f"{i:032x}" for i in range(1, 6)]
    spans = [step(f"{k + 1:x}", "" if k == 0 else "1", run_id=run, start_time=T0 + i * DAY + k * 10**6)
             for i, run in enumerate(runs) for k in range(i + 1)]
    store.writer.write(batch_of(spans), timeout=30)
    rows, _ = list_runs(store, RunFilter(), Page(), 10)
    queries = []
    query = store.query
    store.query = lambda sql, *a, **k: queries.append(sql) or query(sql, *a, **k)
    try:
        grouped = steps_of_runs(store, rows)
    finally:
        del store.query
    assert len(queries) == 1
    assert sorted(grouped) == [("p", run) for run in runs]
    for run in runs:
        one_by_one = get_steps(store, "p", run)
        assert [{k: s[k] for k in one_by_one[0]} for s in grouped[("p", run)]] == one_by_one
    assert steps_of_runs(store, []) == {}
