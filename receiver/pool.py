"""Where span mapping runs: one thread in this process, or a pool of worker processes.

Decoding and mapping are pure Python (~35 µs of CPU per span), so in one process they share
the GIL with the writer and the transports and use one core at most.  With ``workers > 0``
the encoded request bytes go to worker processes that decode and map them and send back the
step columns; the server then uses every core.  Workers are started with ``spawn`` so they
never inherit the embedded ClickHouse engine, and a crashed pool is replaced, the requests
it held answered "retry".
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from agenttrail.proto import otlp
from agenttrail.storage import StorageUnavailable

from .mapping import MappingOptions, MappingResult, map_export_request

_worker_options: MappingOptions | None = None


def _init_worker(options: MappingOptions) -> None:
    global _worker_options
    _worker_options = options


def _map_encoded(body: bytes, encoding: str, project: str | None) -> MappingResult:
    request = otlp.decode_export(body, encoding, "traces")
    return map_export_request(request, project=project, options=_worker_options)


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
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.options,))

    def _map_here(self, request, encoding: str | None, project: str | None) -> MappingResult:
        if encoding is not None:
            request = otlp.decode_export(request, encoding, "traces")
        return map_export_request(request, project=project, options=self.options)

    async def map(self, request, encoding: str | None, project: str | None) -> MappingResult:
        """Map ``request`` — a decoded message, or encoded bytes when ``encoding`` is given."""
        loop = asyncio.get_running_loop()
        if not self.workers:
            return await loop.run_in_executor(self._executor, self._map_here, request, encoding, project)
        if encoding is None:  # gRPC hands us a parsed message; bytes are what crosses processes
            request, encoding = request.SerializeToString(), "protobuf"
        executor = self._executor
        try:
            return await asyncio.wrap_future(executor.submit(_map_encoded, request, encoding, project))
        except BrokenProcessPool:
            if self._executor is executor:
                self._executor = self._new_executor()
            raise StorageUnavailable("a mapping worker died; retry the export", retry_after=1) from None

    def close(self) -> None:
        """Stop the workers (or the thread)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
