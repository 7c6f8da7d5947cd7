"""The mapping workers' process pool (receiver/workers.py): jobs over socket pairs, crashes."""

from __future__ import annotations

import asyncio
import os

import pytest

import worker_jobs
from agenttrail.receiver.workers import WorkerLost, WorkerProcesses


def _pool(count=1, handler=worker_jobs.echo, niceness=0):
    return WorkerProcesses(count, handler, worker_jobs.remember, (b">",), niceness=niceness)


def _run(coroutine, closing: WorkerProcesses | None = None):
    """Run ``coroutine`` (two minutes at most), then close the pool ``closing``, if given."""
    try:
        return asyncio.run(asyncio.wait_for(coroutine, 120))
    finally:
        if closing is not None:
            closing.close()


def test_results_come_back_in_full_for_each_caller_and_large_ones_too():
    pool = _pool(2)

    async def go():
        bodies = [bytes([i]) * (i * 1000) for i in range(40)]
        small = await asyncio.gather(*(pool.run(body, 1) for body in bodies))
        assert small == [b">" + body for body in bodies]
        big = await pool.run(b"0123456789abcdef", 1 << 20)  # 16 MiB, past the 4 MiB buffer
        assert big == b">" + b"0123456789abcdef" * (1 << 20)
        assert await pool.run(b"x", 3) == b">xxx"  # the stream is still in step afterwards

    _run(go(), closing=pool)


def test_an_exception_crosses_and_the_worker_keeps_serving():
    pool = _pool(1, worker_jobs.fail)

    async def go():
        with pytest.raises(ValueError, match="bad body"):
            await pool.run(b"x", "bad body")
        with pytest.raises(ValueError, match="again"):
            await pool.run(b"x", "again")

    _run(go(), closing=pool)


def test_an_exception_that_cannot_be_pickled_is_named():
    pool = _pool(1, worker_jobs.fail_unpicklably)

    async def go():
        with pytest.raises(RuntimeError, match="Unpicklable: hidden"):
            await pool.run(b"x")

    _run(go(), closing=pool)


def test_a_dead_worker_fails_its_job_and_is_replaced():
    pool = _pool(1, worker_jobs.where)

    async def go():
        first_pid, _ = await pool.run(b"")
        os.kill(first_pid, 9)
        with pytest.raises(WorkerLost):
            for _ in range(100):  # until the loop has seen the worker go
                await pool.run(b"")
                await asyncio.sleep(0.05)
        for _ in range(600):  # the replacement attaches, then maps as before
            try:
                pid, _ = await pool.run(b"")
                break
            except WorkerLost:
                await asyncio.sleep(0.05)
        assert pid != first_pid

    _run(go(), closing=pool)


def test_a_job_that_kills_its_worker_is_answered_not_lost():
    pool = WorkerProcesses(1, worker_jobs.die, worker_jobs.remember, (b"",))

    async def go():
        with pytest.raises(WorkerLost):
            await pool.run(b"x")

    _run(go(), closing=pool)


def test_workers_run_at_the_given_niceness_and_stop_on_close():
    pool = _pool(2, worker_jobs.where, niceness=5)

    async def go():
        return await asyncio.gather(*(pool.run(b"") for _ in range(8)))

    answers = _run(go())
    assert {nice for _, nice in answers} == {os.nice(0) + 5}
    processes = [w.process for w in pool._workers]
    pool.close()
    assert all(p.exitcode == 0 for p in processes)  # they read EOF and returned


def test_a_caller_that_gave_up_does_not_disturb_the_others():
    pool = _pool(1)

    async def go():
        waiting = [asyncio.ensure_future(pool.run(b"a", 1 << 22)) for _ in range(3)]
        await asyncio.sleep(0)
        waiting[1].cancel()
        done = await asyncio.gather(*waiting, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        assert done[0] == done[2] == b">" + b"a" * (1 << 22)

    _run(go(), closing=pool)


def test_closed_pool_refuses_work():
    pool = _pool(1)
    pool.close()
    with pytest.raises(WorkerLost):
        _run(pool.run(b"x", 1))


def test_count_must_be_positive():
    with pytest.raises(ValueError):
        WorkerProcesses(0, worker_jobs.echo, worker_jobs.remember)
