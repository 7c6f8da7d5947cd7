"""Worker processes fed from the event loop over socket pairs.

Each worker is a ``spawn``-ed process joined to the server by a Unix socket pair.  The event
loop writes a job — a small pickled call and the request body as it came, unpickled — and
reads back one pickled result.  ``concurrent.futures.ProcessPoolExecutor`` did the same job
with two helper threads in the server (a queue feeder that pickles every body, a manager
that waits for results), both competing with the event loop for the GIL; this way the
server's Python threads spend about a third less CPU per span (``bench/ingest_bench.py``
prints them; docs/performance.md).

A worker that dies fails the job it held with :class:`WorkerLost` (the caller answers "retry")
and is replaced.  A worker exits when its socket closes, so workers never outlive the server.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
from collections import deque
from typing import Any, Callable

log = logging.getLogger(__name__)

# A job: length of the pickled call, length of the body.  A result: length of the pickled
# outcome, and whether it is an exception (1) or a return value (0).
_FRAME = struct.Struct("<QQ")
_BUFFER_BYTES = 4 << 20  # the reading buffer kept between results; a larger one is dropped after use


class WorkerLost(Exception):
    """The worker process mapping a job died before answering."""


def _serve(sock: socket.socket, initializer: Callable, initargs: tuple, handler: Callable,
           niceness: int) -> None:
    """A worker's life: run the initializer, then answer jobs until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which closes us
    if niceness:
        os.nice(niceness)
    initializer(*initargs)
    incoming = sock.makefile("rb", buffering=1 << 20)
    try:
        while _answer_one(sock, incoming, handler):
            pass
    except OSError:  # the server went away mid-job
        pass


def _answer_one(sock: socket.socket, incoming, handler: Callable) -> bool:
    """Read one job, run it and send its outcome; False once the server has closed the socket."""
    head = incoming.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return False
    call_bytes, body_bytes = _FRAME.unpack(head)
    args = pickle.loads(incoming.read(call_bytes))
    body = incoming.read(body_bytes)
    if len(body) < body_bytes:
        return False
    try:
        outcome, failed = pickle.dumps(handler(body, *args), protocol=pickle.HIGHEST_PROTOCOL), 0
    except Exception as exc:  # the caller's to raise (a malformed body, …)
        try:
            outcome = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that cannot cross: say what it was
            outcome = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        failed = 1
    sock.sendall(_FRAME.pack(len(outcome), failed))
    sock.sendall(outcome)
    return True


class _Worker(asyncio.BufferedProtocol):
    """The server's end of one worker: its process, its connection, and the job it holds."""

    def __init__(self, pool: "WorkerProcesses", process, sock: socket.socket):
        self.pool = pool
        self.process = process
        self.sock = sock
        self.transport: asyncio.Transport | None = None
        self.job: asyncio.Future | None = None
        self._buffer = bytearray(_BUFFER_BYTES)
        self._filled = 0
        self._need = 0

    def send(self, job: asyncio.Future, call: bytes, body: bytes) -> None:
        self.job = job
        self.transport.write(_FRAME.pack(len(call), len(body)) + call)
        self.transport.write(body)  # sent as it is: no copy when the socket takes it at once

    # -- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        # Grown here, never in buffer_updated: asyncio still holds the view it read into then,
        # and a bytearray with a view on it cannot change size.
        want = max(self._need, self._filled + 65536)
        if len(self._buffer) < want:
            self._buffer.extend(bytes(want - len(self._buffer)))
        return memoryview(self._buffer)[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        while self._filled >= _FRAME.size:
            size, failed = _FRAME.unpack_from(self._buffer)
            end = _FRAME.size + size
            if self._filled < end:
                self._need = end  # room for the whole result at the next read
                return
            with memoryview(self._buffer) as view:
                outcome = pickle.loads(view[_FRAME.size:end])
            rest = self._filled - end  # nothing, as a worker holds one job at a time
            self._buffer[:rest] = self._buffer[end:self._filled]
            self._filled, self._need = rest, 0
            if len(self._buffer) > _BUFFER_BYTES and not rest:
                self._buffer = bytearray(_BUFFER_BYTES)  # a new one: the old may still be viewed
            job, self.job = self.job, None
            if job is not None and not job.done():
                if failed:
                    job.set_exception(outcome)
                else:
                    job.set_result(outcome)
            self.pool._idle(self)

    def connection_lost(self, exc) -> None:
        self.pool._lost(self)


class WorkerProcesses:
    """``count`` processes that run ``handler(body, *args)`` for jobs submitted from one event loop.

    ``initializer(*initargs)`` runs in each worker first; the handler, the initializer and
    every argument must be picklable (module-level functions).  Workers run ``niceness``
    below this process's priority.  Processes start here; they are joined to the event loop
    by :meth:`start` (or the first :meth:`run`).
    """

    def __init__(self, count: int, handler: Callable, initializer: Callable, initargs: tuple = (),
                 niceness: int = 0):
        if count <= 0:
            raise ValueError("count must be positive")
        self._context = multiprocessing.get_context("spawn")
        self._handler, self._initializer, self._initargs = handler, initializer, initargs
        self._niceness = niceness
        self._closed = False
        self._workers: list[_Worker] = []
        self._free: list[_Worker] = []
        self._waiting: deque[tuple[asyncio.Future, bytes, bytes]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: asyncio.Task | None = None
        self._replacing = 0  # workers started to replace lost ones, not yet attached
        self.lost = 0  # workers that died while serving (read by /metrics)
        self._unattached = [self._spawn() for _ in range(count)]

    def _spawn(self) -> tuple[Any, socket.socket]:
        ours, theirs = socket.socketpair()
        process = self._context.Process(target=_serve, daemon=True,
                                        args=(theirs, self._initializer, self._initargs, self._handler,
                                              self._niceness))
        process.start()
        theirs.close()
        return process, ours

    async def start(self) -> None:
        """Join the started processes to the running event loop (idempotent)."""
        if self._started is None:
            self._loop = asyncio.get_running_loop()
            self._started = self._loop.create_task(self._attach_all())
        await asyncio.shield(self._started)

    async def _attach_all(self) -> None:
        while self._unattached:
            process, sock = self._unattached.pop()
            await self._attach(process, sock)

    async def _attach(self, process, sock: socket.socket) -> None:
        worker = _Worker(self, process, sock)
        try:
            await self._loop.create_connection(lambda: worker, sock=sock)
        except BaseException:
            process.kill()
            sock.close()
            raise
        self._workers.append(worker)
        self._idle(worker)

    async def run(self, body: bytes, *args) -> Any:
        """``handler(body, *args)`` in the next free worker; its result, or its exception."""
        if self._closed:
            raise WorkerLost("the worker processes are shutting down")
        if self._started is None or not self._started.done():
            await self.start()
        if not self._workers and not self._replacing:
            raise WorkerLost("no mapping worker is running")
        job = self._loop.create_future()
        call = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        if self._free:
            self._free.pop().send(job, call, body)
        else:
            self._waiting.append((job, call, body))
        return await job

    def _idle(self, worker: _Worker) -> None:
        while self._waiting:
            job, call, body = self._waiting.popleft()
            if not job.done():  # its caller may have given up meanwhile
                worker.send(job, call, body)
                return
        self._free.append(worker)

    def _lost(self, worker: _Worker) -> None:
        if worker in self._free:
            self._free.remove(worker)
        if worker in self._workers:
            self._workers.remove(worker)
        if worker.job is not None and not worker.job.done():
            worker.job.set_exception(WorkerLost("a mapping worker died"))
        worker.sock.close()
        self._loop.run_in_executor(None, worker.process.join, 5)  # reap it off the loop
        if self._closed:
            return
        self.lost += 1
        log.warning("mapping worker %s exited; starting another", worker.process.pid)
        try:
            process, sock = self._spawn()
        except Exception:
            log.exception("could not start a mapping worker")
            self._fail_waiting()
            return
        self._replacing += 1
        self._loop.create_task(self._attach(process, sock)).add_done_callback(self._replaced)

    def _replaced(self, task: asyncio.Task) -> None:
        self._replacing -= 1
        if task.cancelled() or task.exception():
            log.error("could not attach a mapping worker", exc_info=None if task.cancelled() else task.exception())
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        """With no worker left and none starting, nobody will take the waiting jobs: fail them."""
        while self._waiting and not self._workers and not self._replacing:
            job = self._waiting.popleft()[0]
            if not job.done():
                job.set_exception(WorkerLost("no mapping worker is running"))

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker (callable from any thread: it only closes sockets and waits)."""
        self._closed = True
        workers = [(w.process, w.sock) for w in self._workers] + self._unattached
        for _, sock in workers:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the worker reads EOF and returns
            except OSError:
                pass
        for process, _ in workers:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)


__all__ = ["WorkerLost", "WorkerProcesses"]
