"""Where span mapping runs: one thread in this process, or a pool of worker processes.

Decoding, mapping and encoding steps for ClickHouse are pure Python (~25 µs of CPU per
span), so in one process they share the GIL with the writer and the transports and use one
core at most.  With ``workers > 0`` the request bytes go to worker processes that decode and
map them, refuse the spans of projects the caller may not write to, and send back the steps
as a ClickHouse Native block (:class:`~agenttrail.storage.EncodedSteps`): bytes, which cost
nothing to unpickle, where per-row Python objects cost the writer's process ~7 µs per span.
Workers are started with ``spawn`` so they never inherit the embedded ClickHouse engine, and
a crashed pool is replaced, the requests it held answered "retry".
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable

from agenttrail.proto import otlp
from agenttrail.storage import EncodedSteps, StepBatch, StorageUnavailable

from .mapping import MappingOptions, MappingResult, map_export_request


@dataclass
class MappedRequest:
    """One export request's steps, encoded for the writer, and what was refused."""

    steps: EncodedSteps
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


_worker_options: MappingOptions | None = None


def _init_worker(options: MappingOptions) -> None:
    global _worker_options
    _worker_options = options
    # The first encode imports what clickhouse-connect checks inputs against (pandas, numpy:
    # ~1 s of CPU): pay it here, not in the first export's latency.
    warm_up = StepBatch()
    warm_up.append()
    EncodedSteps.of(warm_up, 0)
    # Modules, protobuf descriptors, pandas and the price table live as long as the worker:
    # left in the collector's oldest generation, every full collection walks them again
    # while a request's rows are mapped.
    gc.freeze()


def _started() -> bool:
    return True


def _map(request, encoding: str | None, project: str | None, allows: Callable[[str], bool],
         options: MappingOptions) -> MappingResult:
    if encoding is not None:
        request = otlp.decode_export(request, encoding, "traces")
    result = map_export_request(request, project=project, options=options)
    result.keep_projects(allows)
    return result


def _encode(result: MappingResult) -> MappedRequest:
    steps = EncodedSteps.of(result.batch, time.time_ns() // 1_000_000)
    return MappedRequest(steps, result.rejected, result.errors)


# Mapping allocates a few dozen containers per span, all freed by reference counting; yet
# while a request's rows are alive, each of the cyclic collector's passes walks them all
# again.  So the collector waits until the request is mapped: 8,192-span requests went from
# 22.8 to 20.8 µs per span, 512-span ones from 19.3–19.5 to 19.0–19.1 (two workers mapping the
# benchmark's requests, worker CPU from /proc; /tmp measurements, alternated).
def _map_in_worker(body: bytes, encoding: str, project: str | None,
                   allows: Callable[[str], bool]) -> MappedRequest:
    gc.disable()  # a worker maps one request at a time: nothing else runs meanwhile
    try:
        return _encode(_map(body, encoding, project, allows, _worker_options))
    finally:
        gc.enable()


class MappingPool:
    """Runs ``decode + map`` for export requests, off the event loop."""

    def __init__(self, options: MappingOptions, workers: int = 0):
        if workers < 0:
            raise ValueError("workers must be 0 (map in-process) or a positive number of processes")
        self.options = options
        self.workers = workers
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if not self.workers:
            # One thread: more threads would only take turns on the GIL.
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="agenttrail-map")
        executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker, initargs=(self.options,))
        # The pool starts a worker only when a task finds none idle, and starting one (a new
        # interpreter, imports, the price table, the warm-up) takes ~1 s of CPU: start them all
        # now rather than in the first exports' latency.
        for _ in range(self.workers):
            executor.submit(_started)
        return executor

    def _map_here(self, request, encoding: str | None, project: str | None,
                  allows: Callable[[str], bool]) -> MappedRequest:
        return _encode(_map(request, encoding, project, allows, self.options))

    def _rebuild(self, request, encoding: str | None, project: str | None,
                 allows: Callable[[str], bool]) -> StepBatch:
        # Only when the writer must drop some duplicates from an encoded batch: rare.
        return _map(request, encoding, project, allows, self.options).batch

    async def map(self, request, encoding: str | None, project: str | None,
                  allows: Callable[[str], bool]) -> MappedRequest:
        """Map ``request`` — a decoded message, or encoded bytes when ``encoding`` is given.

        Spans of projects ``allows`` says no to are refused (the caller's ``Principal.allows``).
        """
        loop = asyncio.get_running_loop()
        if not self.workers:
            return await loop.run_in_executor(self._executor, self._map_here, request, encoding, project, allows)
        if encoding is None:  # gRPC hands us a parsed message; bytes are what crosses processes
            request, encoding = request.SerializeToString(), "protobuf"
        executor = self._executor
        try:
            mapped = await asyncio.wrap_future(
                executor.submit(_map_in_worker, request, encoding, project, allows))
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = self._new_executor()
            raise StorageUnavailable("a mapping worker died; retry the export", retry_after=1) from None
        mapped.steps.rebuild = lambda: self._rebuild(request, encoding, project, allows)
        return mapped

    def close(self) -> None:
        """Stop the workers (or the thread)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
