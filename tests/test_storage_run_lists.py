"""Run lists read without FINAL (storage/queries.py): older row versions of a run never show.

A run gets a new row version at every commit that touches it, and ClickHouse merges them away
only eventually.  Merges of ``runs`` are stopped here, so that the versions stay; every page is
checked against the same list read through FINAL.
"""

from __future__ import annotations

import random

import pytest

from agenttrail.storage import queries
from agenttrail.storage.queries import Page, RunFilter, list_runs

from test_storage_writer import T0, batch_of, step

SECOND = 10**9


def _run(i: int) -> str:
    return f"{i:032x}"


@pytest.fixture(params=["bounded", "unbounded"])
def versions(store, request, monkeypatch):
    """A store whose ``runs`` and ``runs_by_start`` keep every row version until the test ends.

    ``unbounded``: the search for a page's first minute gives up at once, so the candidates
    are read without a start bound, as for a filter that few runs match.
    """
    if request.param == "unbounded":
        monkeypatch.setattr(queries, "START_MINUTE_READ_ROWS", 1)
    for table in ("runs", "runs_by_start"):
        store.command(f"SYSTEM STOP MERGES {store.options.database}.{table}")
    yield store
    for table in ("runs", "runs_by_start"):
        store.command(f"SYSTEM START MERGES {store.options.database}.{table}")


def _write(store, steps) -> None:
    store.writer.write(batch_of(steps), timeout=30)


def _final_order(store, where: str = "1", descending: bool = True) -> list[str]:
    direction = "DESC" if descending else "ASC"
    return [r[0] for r in store.query(
        f"SELECT run_id FROM runs FINAL WHERE {where} "
        f"ORDER BY toUnixTimestamp64Nano(started_at) {direction}, run_id {direction}").result_rows]


def _every_page(store, filters: RunFilter, limit: int, descending: bool = True) -> list[str]:
    listed, page = [], Page(descending=descending)
    while True:
        rows, last = list_runs(store, filters, page, limit)
        listed += [r["run_id"] for r in rows]
        assert all(set(r) >= {"run_id", "status", "sort_value"} and "version" not in r for r in rows)
        if last is None:
            return listed
        page = Page(descending=descending, after_value=last[0], after_run_id=last[1])


def _late_roots(store, count: int) -> list[str]:
    """``count`` runs whose first version starts late (a child step) and whose newest starts
    early (the root, sent after it), among 40 runs of one version each."""
    moved = [_run(1000 + i) for i in range(count)]
    for run in moved:
        _write(store, [step("2", "1", run_id=run, start_time=T0 + 500 * SECOND)])
    _write(store, [step("1", run_id=_run(i), start_time=T0 + (10 + i) * SECOND) for i in range(40)])
    for i, run in enumerate(moved):
        _write(store, [step("1", run_id=run, start_time=T0 + i * SECOND // 10)])
    return moved


def test_a_run_whose_start_moved_is_listed_once_at_its_newest_place(versions):
    moved = _late_roots(versions, 3)
    for table in ("runs", "runs_by_start"):  # older versions are there, under another minute in runs_by_start
        assert versions.query(f"SELECT uniqExact(toStartOfMinute(started_at)) FROM {table} WHERE run_id = {{r:String}}",
                              parameters={"r": moved[0]}).result_rows[0][0] == 2
    expected = _final_order(versions)
    assert expected[-3:] == moved[::-1]
    for limit in (1, 2, 7, 50):
        assert _every_page(versions, RunFilter(), limit) == expected
    assert _every_page(versions, RunFilter(), 5, descending=False) == _final_order(versions, descending=False)


def test_a_run_whose_older_version_matched_the_filter_is_not_listed(versions):
    moved = _late_roots(versions, 2)
    # Their first versions were in progress (no root yet); the newest are ok.
    assert _every_page(versions, RunFilter(status="in_progress"), 3) == []
    assert _every_page(versions, RunFilter(status="ok"), 4) == _final_order(versions, "status = 'ok'")
    assert set(moved) <= set(_every_page(versions, RunFilter(status="ok"), 4))


def test_a_page_of_many_versions_of_few_runs_is_still_right(versions):
    # One run gets 40 versions, each starting earlier than the last: the newest versions of the
    # other runs rank below every stale one, so the first read alone cannot fill a page.
    busy = _run(7777)
    for k in range(40):
        _write(versions, [step(f"{k + 2:x}", "1", run_id=busy, start_time=T0 + (900 - k) * SECOND)])
    _write(versions, [step("1", run_id=_run(i), start_time=T0 + (100 + i) * SECOND) for i in range(30)])
    assert versions.query("SELECT count() FROM runs WHERE run_id = {r:String}",
                          parameters={"r": busy}).result_rows[0][0] >= 40
    assert _every_page(versions, RunFilter(), 2) == _final_order(versions)
    assert _every_page(versions, RunFilter(status="in_progress"), 2) == [busy]


def test_shuffled_commits_list_as_final_does(versions):
    rng = random.Random(5)
    runs = [_run(2000 + i) for i in range(60)]
    spans = []
    for run in runs:
        for k in range(rng.randrange(1, 4)):
            status = rng.choice(["ok", "error"])
            spans.append(step(f"{k + 1:x}", "" if k == 0 else "1", run_id=run, status=status,
                              start_time=T0 + rng.randrange(10**6) * 1000,
                              failure_category=rng.choice(["timeout", "tool_error"]) if status == "error" else ""))
    rng.shuffle(spans)
    for at in range(0, len(spans), 7):
        _write(versions, spans[at:at + 7])
    for filters, where in ((RunFilter(), "1"), (RunFilter(has_errors=True), "error_count > 0"),
                           (RunFilter(status="in_progress"), "status = 'in_progress'"),
                           (RunFilter(failure_category="timeout"),
                            "(project_id, run_id) IN (SELECT project_id, run_id FROM steps WHERE failure_category = 'timeout')")):
        for limit in (1, 4, 25):
            assert _every_page(versions, filters, limit) == _final_order(versions, where)


def test_a_subquery_filter_is_read_from_runs_once(versions, monkeypatch):
    # The start-minute search would evaluate the steps subquery a second time.
    _late_roots(versions, 2)
    seen = []
    query = versions.query
    monkeypatch.setattr(versions, "query", lambda sql, *a, **k: seen.append(sql) or query(sql, *a, **k))
    rows, _ = list_runs(versions, RunFilter(validation_status="passed"), Page(), 10)
    assert rows == [] and seen and not any("runs_by_start" in sql for sql in seen)
    seen.clear()
    list_runs(versions, RunFilter(status="ok"), Page(), 10)
    assert any("runs_by_start" in sql for sql in seen)
