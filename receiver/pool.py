"""Where span mapping runs: one thread in this process, or a pool of worker processes.

Decoding, mapping and encoding steps for ClickHouse are pure Python (about half of ingest's
CPU: ``bench/ingest_bench.py`` prints the workers' share), so in one process they would share
the GIL with the writer and the transports and use one core at most.  With ``workers > 0`` the request bytes go to worker processes that decode and
map them, refuse the spans of projects the caller may not write to, and send back the steps
as a ClickHouse Native block (:class:`~agenttrail.storage.EncodedSteps`): bytes, which cost
nothing to unpickle, where per-row Python objects would cost the writer's process dearly.
Workers (:mod:`.workers`) are started with ``spawn`` so they never inherit the embedded
ClickHouse engine, and a worker that dies is replaced, the request it held answered "retry".
"""

from __future__ import annotations

import asyncio
import gc
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from agenttrail.proto import otlp
from agenttrail.storage import EncodedSteps, StepBatch, StorageUnavailable

from .mapping import MappingOptions, MappingResult, map_export_request
from .workers import WorkerLost, WorkerProcesses


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
# again.  So the collector waits until the request is mapped (docs/performance.md).
def _map_in_worker(body: bytes, encoding: str, project: str | None,
                   allows: Callable[[str], bool]) -> MappedRequest:
    gc.disable()  # a worker maps one request at a time: nothing else runs meanwhile
    try:
        return _encode(_map(body, encoding, project, allows, _worker_options))
    finally:
        gc.enable()


# When exports are answered only once committed, mapping workers run at a lower priority than
# the server's process: on a small machine they share the cores with the writer, whose commit
# every client is waiting on; reniced, the workers still take every cycle the server leaves.
# Measured by alternating niceness 0 and 10 under bench/ingest_bench.py --requests 1500
# --concurrency 32 --ack-after commit (docs/performance.md).  With the ingest journal the
# commit runs behind the answers and the mapping is what clients wait on: no renice.
WORKER_NICENESS = 10


class MappingPool:
    """Runs ``decode + map`` for export requests, off the event loop."""

    def __init__(self, options: MappingOptions, workers: int = 0, niceness: int = WORKER_NICENESS):
        if workers < 0:
            raise ValueError("workers must be 0 (map in-process) or a positive number of processes")
        self.options = options
        self.workers = workers
        # Processes start now: each takes ~1 s of CPU (a new interpreter, imports, the price
        # table, the warm-up), which must not land in the first exports' latency.
        self._processes = (WorkerProcesses(workers, _map_in_worker, _init_worker, (options,), niceness=niceness)
                           if workers else None)
        # One thread: more threads would only take turns on the GIL.
        self._thread = None if workers else ThreadPoolExecutor(max_workers=1, thread_name_prefix="agenttrail-map")

    async def start(self) -> None:
        """Join the worker processes to the running event loop (else the first :meth:`map` does)."""
        if self._processes is not None:
            await self._processes.start()

    @property
    def workers_lost(self) -> int:
        """Worker processes that died while serving and were replaced (0 when mapping in-process)."""
        return self._processes.lost if self._processes is not None else 0

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
        if self._processes is None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._map_here, request, encoding, project, allows)
        if encoding is None:  # gRPC hands us a parsed message; bytes are what crosses processes
            request, encoding = request.SerializeToString(), "protobuf"
        try:
            mapped = await self._processes.run(request, encoding, project, allows)
        except WorkerLost as exc:
            raise StorageUnavailable(f"{exc}; retry the export", retry_after=1) from None
        mapped.steps.rebuild = lambda: self._rebuild(request, encoding, project, allows)
        return mapped

    def close(self) -> None:
        """Stop the workers (or the thread); callable from any thread."""
        if self._processes is not None:
            self._processes.close()
        else:
            self._thread.shutdown(wait=True, cancel_futures=True)
