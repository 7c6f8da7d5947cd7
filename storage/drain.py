"""The spool's drainer: a thread that commits spooled batches, oldest first, once the store is back.

It reads the spool's oldest records (a group of up to ``max_group_spans``), turns them back
into batches and hands them to ``commit`` — the writer's own commit path, duplicate check
included — and releases them from the spool only when that returned.  While the store stays
down it retries after ``retry`` seconds, doubling up to ``max_retry``.  It starts with
whatever a previous process left in the spool, which is how a crash's backlog is replayed.

A commit has a fixed cost whatever its size, so while records keep arriving (the spool is the
ingest journal, under load) the drainer lets a group of ``min_group_spans`` gather, for
``linger`` seconds at most; once nothing has arrived for ``grace`` seconds it commits what
there is, so a lone export is readable a moment after it was answered; and when a reader
waits for what is spooled (:meth:`hurry`), it commits at once.

A record that ClickHouse refuses for good (an error waiting cannot fix, :func:`~.errors.is_outage`)
would hold up every record behind it.  So after such a refusal the drainer commits records one
at a time; a record refused alone is quarantined (:meth:`~.spool.Spool.quarantine`: set aside
on disk, retried at the next start) once the record after it commits, which shows that the
store takes writes and the refusal is the record's own.  When every record is refused (a table
missing, say) nothing is set aside and the drain retries, as for an outage.

Batches the writer appended in this process are also handed over in memory (:meth:`remember`,
up to ``max_cached_spans``), so that the usual drain — right after the append, when the spool
is the ingest journal — neither reads them back nor decodes them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .errors import is_outage
from .native import EncodedSteps
from .spool import Spool, SpoolRecord
from .spooled import record_to_batch

log = logging.getLogger(__name__)


class SpoolDrainer:
    """Drains ``spool`` through ``commit``; counts into ``stats`` (the writer's, read by /metrics)."""

    def __init__(self, spool: Spool, commit: Callable[[list[EncodedSteps], bool], object], stats: dict, *,
                 max_group_spans: int, retry: float = 0.5, max_retry: float = 10.0,
                 max_cached_spans: int = 200_000, min_group_spans: int = 0, linger: float = 0.5,
                 grace: float = 0.05):
        self.spool = spool
        self._commit = commit  # commit(batches, replayed): replayed batches may be partly stored
        self.stats = stats
        self.max_group_spans = max_group_spans
        self.min_group_spans, self.linger, self.grace = min(min_group_spans, max_group_spans), linger, grace
        self._last_append = 0.0  # monotonic time of the last wake()
        self._hurried = False  # a reader waits: commit without gathering
        self.retry, self.max_retry = retry, max_retry
        self.max_cached_spans = max_cached_spans
        self._cached: dict[SpoolRecord, object] = {}
        self._cached_spans = 0
        self._cond = threading.Condition()
        self._stop = False
        self.failing = False  # the last attempt failed: the store is down or refuses writes
        self._isolating = 0  # after a refusal: records still to commit one at a time
        self._set_aside: set[SpoolRecord] = set()  # undecodable records already dealt with, until released
        self._thread = threading.Thread(target=self._run, name="agenttrail-spool-drainer", daemon=True)

    def start(self) -> None:
        """Start draining (at once if the spool already holds records)."""
        self._thread.start()

    def wake(self) -> None:
        """Records were appended: drain them (when not already waiting out a retry delay)."""
        with self._cond:
            self._last_append = time.monotonic()
            self._cond.notify()

    def hurry(self) -> None:
        """Someone waits to read what is spooled: commit it without gathering more."""
        with self._cond:
            self._hurried = True
            self._cond.notify_all()

    def wait_released(self, mark: int, timeout: float, through_failures: bool = False) -> bool:
        """Wait until the spool has released its first ``mark`` records; False if that took
        longer than ``timeout``, draining stopped, or it is failing (unless ``through_failures``:
        then the drain is retried until the timeout)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self.spool.released < mark:
                remaining = end - time.monotonic()
                if (self.failing and not through_failures) or self._stop or remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def remember(self, records: list[SpoolRecord], batches: list) -> None:
        """Keep the batches just appended as ``records`` in memory for their drain, while the
        cache holds fewer than ``max_cached_spans`` spans (the rest are read back from disk)."""
        with self._cond:
            for record, batch in zip(records, batches):
                if self._cached_spans + record.spans > self.max_cached_spans:
                    break
                self._cached[record] = batch
                self._cached_spans += record.spans

    def finish(self, timeout: float) -> None:
        """Drain what is spooled, for up to ``timeout`` seconds unless the store is failing,
        then stop."""
        end = time.monotonic() + timeout
        while (not self.spool.empty and not self.failing and self._thread.is_alive()
               and time.monotonic() < end):
            time.sleep(0.01)
        self.stop(max(0.1, end - time.monotonic()))

    def stop(self, timeout: float) -> None:
        """Stop after the attempt under way; what is left stays spooled."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()  # also readers waiting in wait_released
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
                self._gather()
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

    def _gather(self) -> None:
        """While records keep arriving, wait for ``min_group_spans`` of them (see the module).
        Called holding the condition."""
        deadline = time.monotonic() + self.linger
        while not self._stop and not self._hurried and self.spool.spans < self.min_group_spans:
            now = time.monotonic()
            quiet_at = self._last_append + self.grace
            if now >= quiet_at or now >= deadline:
                return
            self._cond.wait(min(quiet_at, deadline) - now)

    def _drain_once(self, delay: float) -> bool:
        """Commit and release the oldest records; False if the commit failed."""
        with self._cond:
            self._hurried = False  # what it waits for was appended before this read
            cached = dict(self._cached)
        records = self.spool.read(self.max_group_spans, cached, max_records=2 if self._isolating else None)
        replay = self.spool.replay_through
        items = []  # (record, batch, replayed)
        for record, payload in records:
            batch = cached[record] if payload is None else self._decoded(record, payload)
            items.append((record, batch, replay is not None and record <= replay))
        if self._isolating:
            return self._drain_alone(items, delay)
        batches = [batch for _, batch, _ in items if batch is not None]
        try:
            self._timed_commit(batches, any(replayed for *_, replayed in items))
        except Exception as exc:
            self._failed(sum(len(b) for b in batches), delay, exc)
            if not is_outage(exc):
                self._isolating = max(2, len(items))
                log.warning("the store refused %d spooled records with an error waiting cannot fix; committing "
                            "them one at a time to find the one it refuses", len(items))
            return False
        self._released(items, records[-1][0])
        return True

    def _drain_alone(self, items: list, delay: float) -> bool:
        """The oldest record on its own; when refused, the next one too, and if that one is
        taken, the first is quarantined (see the module)."""
        (record, batch, replayed), rest = items[0], items[1:]
        try:
            self._timed_commit([batch], replayed)
        except Exception as exc:
            if is_outage(exc) or not rest:
                self._failed(record.spans, delay, exc)
                return False
            refusal = exc
        else:
            self._isolating -= 1
            self._released(items[:1], record)
            return True
        following, next_batch, next_replayed = rest[0]
        try:
            self._timed_commit([next_batch], next_replayed)
        except Exception as exc:  # the store refuses this one too: nothing is the record's own fault
            self._failed(record.spans + following.spans, delay, exc)
            return False
        path = self.spool.quarantine(record)
        log.error("the store refuses the spooled record at segment %d, byte %d (%d spans) and takes the "
                  "record after it: set aside in %s, to be retried at the next start. The refusal: %s",
                  record.segment, record.offset, record.spans, path, refusal)
        self._isolating = max(0, self._isolating - 2)
        self._released([(record, None, replayed), rest[0]], following)
        return True

    def _decoded(self, record: SpoolRecord, payload: bytes):
        """The batch a record holds; None when it cannot be decoded (set aside, or reported
        and dropped when its segment has gone)."""
        if record in self._set_aside:  # a retry of the group it was read with
            return None
        try:
            return record_to_batch(payload)
        except ValueError as exc:
            if not payload:  # its segment has gone: there is nothing left to keep
                log.error("spool record at segment %d, byte %d cannot be read (%s): dropping its %d spans",
                          record.segment, record.offset, exc, record.spans)
            else:  # its checksum held, so this is a version or a bug: keep it and say so
                path = self.spool.quarantine(record)  # should this fail, nothing is released: retried
                log.error("spool record at segment %d, byte %d cannot be decoded (%s): its %d spans are set "
                          "aside in %s", record.segment, record.offset, exc, record.spans, path)
            self._set_aside.add(record)
            self.stats["spool_unreadable"] += record.spans
            return None

    def _timed_commit(self, batches: list, replayed: bool) -> None:
        """Commit ``batches`` (None: a record set aside, skipped), adding the time to the stats."""
        batches = [batch for batch in batches if batch is not None]
        started = time.perf_counter()
        try:
            if batches:
                self._commit(batches, replayed)
        finally:
            self.stats["commit_seconds"] += time.perf_counter() - started

    def _failed(self, spans: int, delay: float, exc: Exception) -> None:
        self.stats["drain_failures"] += 1
        with self._cond:
            self.failing = True
            self._cond.notify_all()  # readers waiting for these records: they will not come soon
        log.warning("draining %d spooled spans failed, retrying in %.1f s: %s", spans, delay, exc)

    def _released(self, items: list, through: SpoolRecord) -> None:
        """The records of ``items`` are stored (or set aside): release the spool through ``through``."""
        self.failing = False
        stored = [batch for _, batch, _ in items if batch is not None]
        self.stats["drained_spans"] += sum(len(b) for b in stored)
        self.stats["drained_batches"] += len(stored)
        self.spool.release(through)
        self._set_aside = {record for record in self._set_aside if record > through}
        with self._cond:
            for record, *_ in items:
                if self._cached.pop(record, None) is not None:
                    self._cached_spans -= record.spans
            self._cond.notify_all()  # readers waiting for them (wait_released)


__all__ = ["SpoolDrainer"]
