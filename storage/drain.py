"""The spool's drainer: a thread that commits spooled batches, oldest first, once the store is back.

It reads the spool's oldest records (a group of up to ``max_group_spans``), turns them back
into batches and hands them to ``commit`` — the writer's own commit path, duplicate check
included — and releases them from the spool only when that returned.  While the store stays
down it retries after ``retry`` seconds, doubling up to ``max_retry``.  It starts with
whatever a previous process left in the spool, which is how a crash's backlog is replayed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .native import EncodedSteps
from .spool import Spool
from .spooled import record_to_batch

log = logging.getLogger(__name__)


class SpoolDrainer:
    """Drains ``spool`` through ``commit``; counts into ``stats`` (the writer's, read by /metrics)."""

    def __init__(self, spool: Spool, commit: Callable[[list[EncodedSteps]], object], stats: dict, *,
                 max_group_spans: int, retry: float = 0.5, max_retry: float = 10.0):
        self.spool = spool
        self._commit = commit
        self.stats = stats
        self.max_group_spans = max_group_spans
        self.retry, self.max_retry = retry, max_retry
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="agenttrail-spool-drainer", daemon=True)

    def start(self) -> None:
        """Start draining (at once if the spool already holds records)."""
        self._thread.start()

    def wake(self) -> None:
        """Records were appended: drain them (when not already waiting out a retry delay)."""
        with self._cond:
            self._cond.notify()

    def stop(self, timeout: float) -> None:
        """Stop after the attempt under way; what is left stays spooled."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.retry
        while True:
            with self._cond:
                while self.spool.empty and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            try:
                drained = self._drain_once(delay)
            except Exception:  # the spool's own files failed (or a bug): keep trying, never end the thread
                log.exception("draining the spool %s failed", self.spool.directory)
                drained = False
            if drained:
                delay = self.retry
                continue
            with self._cond:
                if not self._stop:
                    self._cond.wait(delay)
            delay = min(delay * 2, self.max_retry)

    def _drain_once(self, delay: float) -> bool:
        """Commit and release the oldest records; False if the commit failed."""
        records = self.spool.read(self.max_group_spans)
        batches = []
        for record, payload in records:
            try:
                batches.append(record_to_batch(payload))
            except ValueError as exc:  # its checksum held, so this is a version or a bug: say so
                log.error("spool record at segment %d, byte %d cannot be read (%s): dropping its %d spans",
                          record.segment, record.offset, exc, record.spans)
                self.stats["spool_unreadable"] += record.spans
        spans = sum(len(b) for b in batches)
        started = time.perf_counter()
        try:
            if batches:
                self._commit(batches)
        except Exception as exc:
            self.stats["drain_failures"] += 1
            log.warning("draining %d spooled spans failed, retrying in %.1f s: %s", spans, delay, exc)
            return False
        finally:
            self.stats["commit_seconds"] += time.perf_counter() - started
        self.stats["drained_spans"] += spans
        self.stats["drained_batches"] += len(batches)
        self.spool.release(records[-1][0])
        return True


__all__ = ["SpoolDrainer"]
