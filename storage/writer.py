"""Group-committing writer: batches from concurrent requests become one ClickHouse insert.

A producer calls :meth:`BatchWriter.submit` and waits on the returned future; the future
resolves only after the steps are inserted and their runs recomputed, so a receiver that
acknowledges on completion never acknowledges data that is not stored.  When too many spans
are already waiting, ``submit`` raises :class:`Overloaded` at once (memory stays bounded);
when a commit fails, every future in it gets :class:`StorageUnavailable` and nothing is
half-acknowledged — a client retry is deduplicated by span identity.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager

from .errors import Overloaded, StorageUnavailable, is_outage
from .known_runs import KnownRuns, run_keys
from .model import StepBatch, WriteResult
from .native import INSERT_COLUMN_TYPES, INSERT_COLUMNS, EncodedSteps, NativeBlock, encode_block
from .native_merge import merge_blocks
from .runs_sql import (COMMIT_INSERT_SETTINGS, COMMIT_RECOMPUTED, COMMIT_VIEW_DDL, COMMIT_VIEW_DROP,
                       RECOMPUTE_RUNS_SQL, WRITER_MARKER)
from .drain import SpoolDrainer
from .spool import Spool
from .spooled import batch_to_record

Steps = StepBatch | EncodedSteps

STORED_KEYS_SQL = (
    "SELECT project_id, run_id, step_id FROM steps "
    "WHERE project_id IN {projects:Array(String)} AND run_id IN splitByChar(',', $runs$) "
    "AND ingested_at >= fromUnixTimestamp64Milli({since:Int64})"
)
"""The identities already stored for the runs of a commit (``since``: see :class:`BatchWriter`)."""

KNOWN_RUNS_SQL = (
    "SELECT project_id, run_id, toUnixTimestamp64Milli(min(first_seen_at)) FROM runs "
    "WHERE project_id IN {projects:Array(String)} AND run_id IN splitByChar(',', $runs$) "
    "GROUP BY project_id, run_id"
)
"""Which runs of a commit have a run row, with their earliest ``first_seen_at``."""

RECOMPUTED_INSERT_SQL = (
    f"INSERT INTO {COMMIT_RECOMPUTED} SELECT tupleElement(pair, 1), tupleElement(pair, 2) "
    "FROM (SELECT arrayJoin(arrayZip({projects:Array(String)}, splitByChar(',', $runs$))) AS pair)"
)
"""The runs a commit recomputes, for its view to leave out (``projects``: each run's, in order)."""

# A commit's run ids (~1,000 under load) are bound three times.  As Array(String) values
# clickhouse-connect escapes them character by character in Python, so they travel as one
# comma-separated value in its binary binding ($runs$: spliced in as a heredoc string, which
# ClickHouse reads raw); the run_id set, and so the index analysis, is the same.  Stored run
# ids are hex (storage/ids.py): none is empty or holds the separator or the heredoc's "$".


# The ids are part of the query's text, and ClickHouse refuses a query of more than 256 KiB by
# default: a commit of more than ~7,900 runs (one span each, say) failed.  A group holds
# 50,000 spans at most, so its ids fit in a few MB.
ID_LIST_SETTINGS = {"max_query_size": 32 << 20}


def run_ids_parameter(run_ids: list[str]) -> bytes:
    """``run_ids`` as the ``$runs$`` parameter of the writer's queries."""
    joined = ",".join(run_ids)
    if "$" in joined or joined.count(",") != len(run_ids) - 1 or not all(run_ids):
        raise ValueError("a run id must not be empty or contain ',' or '$' (stored run ids are hex)")
    return joined.encode()


def _runs_parameters(runs) -> dict:
    """The ``projects`` and ``$runs$`` parameters that select the (project, run) pairs ``runs``."""
    return {"projects": sorted({p for p, _ in runs}), "$runs$": run_ids_parameter(sorted({r for _, r in runs}))}


# A ReplacingMergeTree insert first collapses rows of equal key within the block, by default:
# a sort-and-merge pass that can find nothing here, since the writer never sends two rows of
# one span (docs/performance.md).
INSERT_SETTINGS = {"optimize_on_insert": 0}

log = logging.getLogger(__name__)

_UNSETTLED_LIMIT = 100_000
_SOLE_WRITER_INSERT_SETTINGS = {**INSERT_SETTINGS, **COMMIT_INSERT_SETTINGS}


class BatchWriter:
    """One background thread that commits queued step batches in groups.

    ``max_pending_spans`` bounds memory and ``max_group_spans`` one insert.  A commit has a
    fixed cost (``bench/commit_bench.py``), so under load the thread lets ``min_group_spans``
    gather, but only while producers announce batches on their way (:meth:`expecting`), and
    for ``busy_linger`` at most.  It reads ``steps`` only for runs that may have stored steps,
    and only those ingested since the run was first seen, less ``ingest_margin`` (other
    receivers' writes in flight).  With ``sole_writer`` (the embedded store) it keeps the stored
    runs and their first sightings in memory (:mod:`.known_runs`, up to ``max_known_runs``)
    rather than asking ClickHouse which are stored, computes new runs' rows from the commit
    itself, and, there being no other receiver, takes ``sole_margin`` instead, and the stamps
    of its own failed commits; after an unclean stop it checks every run for duplicates and
    recomputes it from ``steps`` for ``settle`` seconds, and keeps ``ingest_margin`` for as
    long as that margin.
    Why each of these: docs/performance.md, "Why the writer is shaped as it is".

    With a ``spool`` (:class:`~.spool.Spool`), a commit that fails because the store is
    unreachable or refuses writes (:func:`~.errors.is_outage`) appends its batches to the spool
    (fsync'd) and resolves them as spooled; while the spool holds anything, new groups go behind
    it, so batches reach ClickHouse in the order they were accepted. A drainer thread
    (:mod:`.drain`) commits the oldest records through the same commit path, always with the
    duplicate check, and releases them only once stored. Only a full spool fails futures again.

    With ``journal`` as well, the spool is the ingest journal: every group is appended to it
    and acknowledged once fsync'd, and the drainer commits behind it — under load, in groups of
    ``journal_group_spans`` or what ``journal_linger`` seconds gathered (:mod:`.drain`) — so
    an export waits for a disk write rather than for a ClickHouse commit.
    Acknowledged still means durable; stored follows within a commit, which readers wait for
    (:meth:`visibility_mark`).  While the store takes writes, more than ``max_pending_spans``
    queued or journaled is overload, as without a journal.
    """

    def __init__(self, client_factory, *, max_pending_spans: int = 200_000,
                 max_group_spans: int = 50_000, linger: float = 0.005,
                 busy_linger: float = 0.2, min_group_spans: int = 12288, busy_grace: float = 0.02,
                 ingest_margin: float = 3600.0, sole_margin: float = 60.0, sole_writer: bool = False,
                 settle: float = 600.0,
                 max_known_runs: int = 10_000_000, spool: Spool | None = None, journal: bool = False,
                 journal_group_spans: int = 50_000, journal_linger: float = 0.5,
                 drain_retry: float = 0.5, max_drain_retry: float = 10.0):
        if journal and spool is None:
            raise ValueError("a journal needs a spool to write to")
        self.journal = journal
        self._client_factory = client_factory
        self._client = None
        self.max_pending_spans = max_pending_spans
        self.max_group_spans = max_group_spans
        self.linger = linger
        self.busy_linger = busy_linger
        self.busy_grace = busy_grace
        self.min_group_spans = min_group_spans
        self._expected = 0  # batches producers are preparing (expecting())
        self.ingest_margin_ms = int(ingest_margin * 1000)
        self.sole_margin_ms = int(sole_margin * 1000)
        self._full_margin_until: float | None = None  # monotonic; set at the sole writer's first commit
        self._busy = False
        self._queue: deque[tuple[Steps, Future]] = deque()
        self._pending_spans = 0
        self._cond = threading.Condition()
        self._closed = False
        self._last_version = 0
        # Runs a failed commit may have inserted steps of, before their run rows existed, with the
        # earliest stamp (ms) those steps can carry; bounded (past the bound every run is checked
        # again, as if nothing were known, from the earliest stamp of all).
        self._unsettled: dict[tuple[str, str], int] = {}
        self._check_every_run = False
        self._every_run_since: int | None = None
        self.sole_writer = sole_writer
        self.max_known_runs = max_known_runs
        self._known_filter: KnownRuns | None = None
        self._known_filter_loaded = False
        self.settle = settle
        self._stage_from: float | None = None  # monotonic time from which new runs are staged
        self._recomputed_marked = True  # the Set of recomputed runs may hold some: empty it first
        self._thread = threading.Thread(target=self._run, name="agenttrail-writer", daemon=True)
        self.spool = spool
        self._commit_lock = threading.Lock()  # the writer thread and the drainer share the commit state
        self._drain_client = None
        # Read by the server's /metrics: commits, spans inserted, spans skipped as already
        # stored, failed commits, spans refused because the queue was full, commit seconds, and
        # run rows written from the commit alone (new runs, staged) or recomputed from steps.
        self.stats = {"commits": 0, "spans_written": 0, "duplicates": 0, "failures": 0, "rejected": 0,
                      "commit_seconds": 0.0, "runs_from_commit": 0, "runs_from_steps": 0,
                      # The spool: spans (and batches) appended and drained, spans refused because
                      # it was full or could not be written, failed drain attempts, spans of
                      # records that could not be decoded (its quarantine counts itself).
                      "spooled_spans": 0, "spooled_batches": 0, "drained_spans": 0, "drained_batches": 0,
                      "spool_refused": 0, "drain_failures": 0, "spool_unreadable": 0,
                      # With a journal: spans (and batches) acknowledged once journaled.
                      "journaled_spans": 0, "journaled_batches": 0}
        self.drainer = (SpoolDrainer(spool, self._commit_spooled, self.stats, max_group_spans=max_group_spans,
                                     retry=drain_retry, max_retry=max_drain_retry,
                                     max_cached_spans=max_pending_spans,
                                     min_group_spans=journal_group_spans if journal else 0,
                                     linger=journal_linger)
                        if spool is not None else None)

    def start(self) -> "BatchWriter":
        """Start the commit thread (and the spool's drainer, which replays what a previous
        process left in the spool)."""
        self._thread.start()
        if self.drainer is not None:
            self.drainer.start()
        return self

    def prepare(self) -> None:
        """Do now what the sole writer's first commit does before its insert: find out whether
        the last process stopped cleanly, create the commit view, and load the filter of
        stored runs (2.2 s at 6.8M runs).  A server calls this before it takes spans: at the
        first commit, under the load of clients that held their spans through a restart, the
        stall let the journal fill and clients were refused as overloaded.  On a ClickHouse
        server there is nothing to do; if the store cannot be reached, the first commit tries."""
        if not self.sole_writer:
            return
        with self._commit_lock:
            try:
                if self._client is None:
                    self._client = self._client_factory()
                if self._stage_from is None:
                    self._start_sole_writer(self._client)
                started = time.monotonic()
                self._filter_keys(self._client, set())
                if self._known_filter is not None:
                    log.info("the writer knows %d stored runs (loaded in %.1f s)", len(self._known_filter),
                             time.monotonic() - started)
            except Exception as exc:
                self._client = None
                log.warning("could not prepare the writer, its first commit will: %s", exc)

    def wrap_clients(self, wrapper) -> None:
        """Open every later ClickHouse client as ``wrapper(client)`` and drop the open ones: the
        hook tests use to make the store fail (or recover) under a running writer."""
        factory = self._client_factory
        self._client_factory = lambda: wrapper(factory())
        self._client = None
        self._drain_client = None

    def spool_status(self) -> dict | None:
        """The spool's backlog (:meth:`~.spool.Spool.status`), whether it is the ingest
        ``journal`` and whether draining it is ``failing``; None without a spool."""
        if self.spool is None:
            return None
        return {**self.spool.status(), "journal": self.journal, "failing": self.drainer.failing}

    @property
    def pending_spans(self) -> int:
        """Spans accepted into the queue and not yet committed."""
        return self._pending_spans

    @property
    def settling(self) -> bool:
        """Whether the writer recomputes every run from steps after an unclean stop (see the class)."""
        return self._stage_from is not None and time.monotonic() < self._stage_from

    def submit(self, batch: Steps) -> Future:
        """Queue ``batch``; the future resolves to a :class:`WriteResult` once it is stored.

        ``batch`` is a :class:`StepBatch` (encoded here) or steps already encoded where they
        were mapped (:class:`EncodedSteps`, which must be able to rebuild its rows).  A run id
        the writer's queries cannot carry (:func:`run_ids_parameter`) is refused here, before
        it can fail a commit.
        """
        if isinstance(batch, EncodedSteps) and batch.rebuild is None:
            raise ValueError("EncodedSteps needs a rebuild to drop duplicates from")
        future: Future = Future()
        if not len(batch):
            future.set_result(WriteResult(accepted=0))
            return future
        run_ids_parameter(list({run for _, run in batch.runs()}))
        # Journaled but not committed counts as waiting, unless the store is down: then the
        # journal is the outage spool, bounded by its bytes.
        backlog = self.spool.spans if self.journal and not self.drainer.failing else 0
        with self._cond:
            if self._closed:
                raise StorageUnavailable("the writer is shutting down", retry_after=5)
            if self._pending_spans + backlog + len(batch) > self.max_pending_spans and (self._queue or backlog):
                self.stats["rejected"] += len(batch)
                raise Overloaded(
                    f"{self._pending_spans + backlog} spans are waiting to be written", retry_after=1
                )
            self._queue.append((batch, future))
            self._pending_spans += len(batch)
            self._cond.notify()
        return future

    @contextmanager
    def expecting(self):
        """Announce a batch being prepared for :meth:`submit` (say, an export request being
        mapped) for as long as the block runs: under load the writer waits for it to join the
        next group rather than commit without it."""
        with self._cond:
            self._expected += 1
        try:
            yield
        finally:
            with self._cond:
                self._expected -= 1
                self._cond.notify()

    def write(self, batch: Steps, timeout: float | None = None) -> WriteResult:
        """Submit and wait until the batch is stored: the synchronous form for scripts, tests
        and the event API, which read what they wrote.  With a journal that is its commit, not
        its append; should the commit not come within ``timeout`` (the store is down), the
        result says ``spooled``: durable, and stored once ClickHouse takes it."""
        started = time.monotonic()
        result = self.submit(batch).result(timeout)
        if self.journal and result.spooled:
            left = 60.0 if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            if self.flush(left, through_failures=False):  # this batch's record and those before it
                result = WriteResult(accepted=result.accepted, duplicates=result.duplicates)
        return result

    def flush(self, timeout: float = 60.0, through_failures: bool = True) -> bool:
        """Wait until what was acknowledged so far is in ClickHouse (committed, not only in the
        journal or the outage spool); False if that did not happen within ``timeout`` — or, unless ``through_failures``, as
        soon as a commit fails (the store is down)."""
        if self.spool is None:
            return True
        mark = self.spool.appended
        self.drainer.hurry()
        return self.drainer.wait_released(mark, timeout, through_failures)

    def visibility_mark(self) -> int | None:
        """With a journal, a mark of everything acknowledged so far, for :meth:`visible`, and a
        request to commit it without gathering more; None when nothing acknowledged is waiting
        for its commit (or the store is down, when waiting would not help).  A reader that
        waits for its mark reads its own writes."""
        if not self.journal or self.spool.empty or self.drainer.failing:
            return None
        self.drainer.hurry()
        return self.spool.appended

    def visible(self, mark: int) -> bool:
        """Whether what was acknowledged before ``mark`` was taken is stored (or will not be
        soon: the store is down, or the writer is stopping)."""
        return self.spool.released >= mark or self.drainer.failing or self._closed

    def close(self, timeout: float = 30.0) -> None:
        """Commit (or spool) what is queued, then stop the threads.  With a journal, what is
        journaled is committed first, for up to ``timeout``.  What is still spooled stays on
        disk for the next start."""
        deadline = time.monotonic() + timeout
        if self.drainer is not None and not self.journal:  # its commit may use the view the writer drops at exit
            self.drainer.stop(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        if self.journal:
            self.drainer.finish(max(0.1, deadline - time.monotonic()))
            self._drop_commit_view()
        if self.spool is not None and not self._thread.is_alive():
            self.spool.close()

    # -- the commit thread -------------------------------------------------------------------

    def _take_group(self) -> list[tuple[Steps, Future]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return []
            if self._busy:  # commits are the bottleneck: let a larger group gather
                now = time.monotonic()
                deadline, grace = now + self.busy_linger, now + self.busy_grace
                while self._pending_spans < self.min_group_spans and not self._closed:
                    now = time.monotonic()
                    # Nothing on its way once the grace is over (the clients just answered
                    # have had time to send again): waiting longer only delays this group.
                    until = deadline if self._expected else min(grace, deadline)
                    if now >= until:
                        break
                    self._cond.wait(until - now)
        if not self._busy and self.linger:
            time.sleep(self.linger)  # let concurrent requests join this commit
        with self._cond:
            group, size = [], 0
            while self._queue and (not group or size + len(self._queue[0][0]) <= self.max_group_spans):
                batch, future = self._queue.popleft()
                if future.set_running_or_notify_cancel():
                    group.append((batch, future))
                    size += len(batch)
                else:  # the producer gave up waiting and answered "retry": nothing to acknowledge
                    self._pending_spans -= len(batch)
            return group

    def _run(self) -> None:
        while True:
            group = self._take_group()
            if not group:
                if self._closed and not self._queue:
                    if not self.journal:  # with one, close() drops it once the journal is drained
                        self._drop_commit_view()
                    return
                continue
            spans = sum(len(b) for b, _ in group)
            try:
                if self.journal or (self.spool is not None and not self.spool.empty):
                    self._to_spool(group)  # the journal, or a backlog: in order behind it
                else:
                    self._commit_group(group, spans)
            finally:
                with self._cond:
                    self._pending_spans -= spans
                    self._busy = bool(self._queue) and not self.journal  # appends need no gathering

    def _commit_group(self, group: list[tuple[Steps, Future]], spans: int) -> None:
        started = time.perf_counter()
        try:
            with self._commit_lock:
                if self._client is None:
                    self._client = self._client_factory()
                results = self._commit([b for b, _ in group], self._client)
        except Exception as exc:  # any failure: nothing in this group is stored
            log.warning("commit of %d spans failed: %s", spans, exc)
            self.stats["failures"] += 1
            self._client = None  # reconnect next time
            if self.spool is not None and is_outage(exc):
                self._to_spool(group)
                return
            error = StorageUnavailable(f"storage write failed: {exc}", retry_after=2)
            for _, future in group:
                future.set_exception(error)
        else:
            for (_, future), result in zip(group, results):
                future.set_result(result)
        finally:
            self.stats["commit_seconds"] += time.perf_counter() - started

    def _to_spool(self, group: list[tuple[Steps, Future]]) -> None:
        """Append the group to the spool: the batches that fit are acknowledged as spooled, the
        rest refused as retryable."""
        now = time.time_ns() // 1_000_000
        # Stamped now, as the record is, so that a drain from memory stores what a replay would.
        batches = [b if isinstance(b, EncodedSteps) else EncodedSteps.of(b, now) for b, _ in group]
        what = "the ingest journal" if self.journal and not self.drainer.failing else \
            "storage is unavailable and the spool"
        records, reason = [], f"{what} is full"
        try:
            records = self.spool.append_records([(batch_to_record(batch, now), len(batch)) for batch in batches])
        except Exception as exc:  # a disk error (or a batch that cannot be encoded): acknowledge nothing
            log.error("could not write to the spool %s: %s", self.spool.directory, exc)
            reason = f"{what} cannot be written: {getattr(exc, 'strerror', None) or exc}"
        kind = "journaled" if self.journal else "spooled"
        for i, (batch, future) in enumerate(group):
            if i < len(records):
                self.stats[f"{kind}_spans"] += len(batch)
                self.stats[f"{kind}_batches"] += 1
                future.set_result(WriteResult(accepted=len(batch), spooled=True))
            else:
                self.stats["spool_refused"] += len(batch)
                future.set_exception(StorageUnavailable(reason, retry_after=5))
        if records:
            if self.journal:  # drained right away, as a rule: no need to read them back
                self.drainer.remember(records, batches)
            self.drainer.wake()

    def _commit_spooled(self, batches: list[EncodedSteps], replayed: bool) -> None:
        """The drainer's commit: the writer's, on a client of its own.  A batch whose commit
        failed in this process had its runs marked for the duplicate check then; a ``replayed``
        one (left by a previous process) may have been partly stored by a drain a crash
        interrupted before its release, so its runs are checked too."""
        with self._commit_lock:
            try:
                if self._drain_client is None:
                    self._drain_client = self._client_factory()
                if replayed:
                    self._unsettle(set().union(*(b.runs() for b in batches)), min(b.ingested_ms for b in batches))
                self._commit(batches, self._drain_client)
            except BaseException:
                self._drain_client = None  # reconnect next time
                raise

    def _next_version(self) -> int:
        self._last_version = max(time.time_ns(), self._last_version + 1)
        return self._last_version

    def _filter_keys(self, client, touched: set[tuple[str, str]]) -> dict | None:
        """The keys of the ``touched`` runs in the sole writer's filter (loaded on first use);
        None when there is no filter."""
        if self.sole_writer and not self._known_filter_loaded:
            self._known_filter = KnownRuns.load(client, self.max_known_runs)
            self._known_filter_loaded = True
        return run_keys(touched) if self._known_filter is not None else None

    def _known_runs(self, client, keyed: dict | None,
                    parameters: dict) -> tuple[set[tuple[str, str]], int | None]:
        """Which of the touched runs have a run row, and their earliest ``first_seen_at``
        (ms; None: none).

        ``first_seen_at`` is the earliest ingest of a run's steps at its last recompute; the
        minimum over every stored version of the row is never later than the newest one's.
        The sole writer's filter (``keyed``) knows both itself, so nothing is asked; its runs
        may include a few without a row, which costs them only a check that finds nothing.
        """
        if keyed is not None:
            stored = self._known_filter.stored_since(keyed)
            return set(stored), min(stored.values(), default=None)
        rows = client.query(KNOWN_RUNS_SQL, parameters=parameters, settings=ID_LIST_SETTINGS).result_rows
        return {(project, run) for project, run, _ in rows}, min((row[2] for row in rows), default=None)

    @staticmethod
    def _stored_keys(client, checked: set[tuple[str, str]], since: int) -> set[tuple[str, str, str]]:
        """The stored identities of the ``checked`` runs."""
        if not checked:
            return set()
        parameters = {**_runs_parameters(checked), "since": since}
        return {tuple(row) for row in
                client.query(STORED_KEYS_SQL, parameters=parameters, settings=ID_LIST_SETTINGS).result_rows}

    def _start_sole_writer(self, client) -> None:
        """At the sole writer's first commit: find out whether the last process stopped cleanly,
        and create the marker and the commit view."""
        # The marker lives from a writer's first commit to its clean stop: found at start, the
        # last process died, perhaps between a commit's steps and its run rows — or after it
        # stored steps a client never heard about, and retries: their stamps are older than any
        # this process knows of, so for ``ingest_margin`` the reads go back that far.
        unclean = client.query("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                               "AND name = {table:String}", parameters={"table": WRITER_MARKER}).result_rows[0][0]
        for statement in COMMIT_VIEW_DDL:
            client.command(statement)
        now = time.monotonic()
        self._stage_from = now + (self.settle if unclean else 0.0)
        self._full_margin_until = now + (self.ingest_margin_ms / 1000 if unclean else 0.0)

    def _mark_recomputed(self, client, recomputed: list[tuple[str, str]]) -> None:
        """Make the commit view's Set hold ``recomputed`` and nothing else (runs_sql.COMMIT_RECOMPUTED)."""
        if self._recomputed_marked:
            client.command(f"TRUNCATE TABLE {COMMIT_RECOMPUTED}")
            self._recomputed_marked = False
        if recomputed:
            client.command(RECOMPUTED_INSERT_SQL, parameters={
                "projects": [p for p, _ in recomputed], "$runs$": run_ids_parameter([r for _, r in recomputed])},
                settings=ID_LIST_SETTINGS)
            self._recomputed_marked = True

    def _may_stage(self) -> bool:
        """Whether new runs' rows may be computed from the commit alone (see the class)."""
        return self.sole_writer and time.monotonic() >= self._stage_from

    def _margin_ms(self) -> int:
        """How long before a run was first seen its stored steps may have been stamped (see the class)."""
        if self.sole_writer and time.monotonic() >= self._full_margin_until:
            return self.sole_margin_ms
        return self.ingest_margin_ms

    def _drop_commit_view(self) -> None:
        """A clean stop: the next writer may stage new runs at once."""
        if self._stage_from is None:
            return
        try:
            client = self._client or self._client_factory()
            for statement in COMMIT_VIEW_DROP:
                client.command(statement)
        except Exception as exc:  # the next start will take the careful path for a while
            log.warning("could not drop %s at stop: %s", WRITER_MARKER, exc)

    def _unsettle(self, touched: set[tuple[str, str]], stamped_from: int) -> None:
        """Mark ``touched`` for the duplicate check: some of their steps, stamped ``stamped_from``
        (ms) or later, may be stored without their run rows."""
        for run in touched:
            self._unsettled[run] = min(stamped_from, self._unsettled.get(run, stamped_from))
        if len(self._unsettled) > _UNSETTLED_LIMIT:
            log.warning("more than %d runs with failed commits: checking every run for duplicates", _UNSETTLED_LIMIT)
            earliest = min(self._unsettled.values())
            if self._every_run_since is None or earliest < self._every_run_since:
                self._every_run_since = earliest
            self._check_every_run, self._unsettled = True, {}

    def _commit(self, batches: list[Steps], client) -> list[WriteResult]:
        if self.sole_writer and self._stage_from is None:
            self._start_sole_writer(client)
        touched = set().union(*(b.runs() for b in batches))
        touched_parameters = _runs_parameters(touched)
        ingested = time.time_ns() // 1_000_000
        # The earliest stamp this commit's steps can carry: encoded batches keep their own.
        earliest = min([ingested, *(b.ingested_ms for b in batches if isinstance(b, EncodedSteps))])
        keyed = self._filter_keys(client, touched)
        known, first_seen = self._known_runs(client, keyed, touched_parameters)
        # The earliest stamp a stored step of these runs can carry, less a margin (see the class).
        bounds = [earliest, *(self._unsettled[run] for run in touched if run in self._unsettled)]
        if self._check_every_run:
            bounds.append(self._every_run_since)
        if first_seen is not None:
            bounds.append(first_seen)
        since = min(bounds) - self._margin_ms()
        # After an unclean stop the last process may have stored steps of runs that have no row
        # yet, and clients retry what it never answered: while settling, every run is checked.
        every_run = self._check_every_run or self.settling
        maybe_stored = touched if every_run else touched & (known | self._unsettled.keys())
        stored = self._stored_keys(client, maybe_stored, since)
        if not stored and _distinct_steps(batches):  # the usual case: nothing to drop
            blocks = [_native(batch, ingested) for batch in batches]
            results = [WriteResult(accepted=len(batch)) for batch in batches]
        else:
            blocks, results = _drop_stored(batches, stored, ingested)
        written = sum(r.accepted - r.duplicates for r in results)
        # Runs whose every stored step is in this commit (a run id in two projects counts as
        # possibly stored if it is in either); the others are recomputed from ``steps``.
        staged = ({r for _, r in touched} - {r for _, r in maybe_stored}
                  if blocks and self._may_stage() else set())
        recomputed = [(p, r) for p, r in touched if r not in staged]
        version = self._next_version()
        if keyed is not None:  # from here on these runs may have rows
            self._known_filter.add(keyed.values(), earliest)
        try:
            if self._stage_from is not None:  # the sole writer's view: not for runs recomputed below
                self._mark_recomputed(client, recomputed if blocks else [])
            if blocks:  # with the sole writer's view, also the rows of every run in the commit
                client.raw_insert("steps", INSERT_COLUMNS, insert_block=_one_block(blocks), fmt="Native",
                                  settings=_SOLE_WRITER_INSERT_SETTINGS if self.sole_writer else INSERT_SETTINGS)
            if recomputed:
                runs = _runs_parameters(recomputed) if staged else touched_parameters
                client.command(RECOMPUTE_RUNS_SQL, parameters={**runs, "since": since, "version": version},
                               settings=ID_LIST_SETTINGS)
        except BaseException:
            self._unsettle(touched, earliest)  # some steps may be stored, their run rows not yet
            raise
        for run in touched:
            self._unsettled.pop(run, None)
        self.stats["commits"] += 1
        self.stats["runs_from_commit"] += len(touched) - len(recomputed)
        self.stats["runs_from_steps"] += len(recomputed)
        self.stats["spans_written"] += written
        self.stats["duplicates"] += sum(r.duplicates for r in results)
        return results


def _native(batch: Steps, ingested_ms: int) -> NativeBlock:
    return batch.block if isinstance(batch, EncodedSteps) else encode_block(batch, ingested_ms)


def _one_block(blocks: list[NativeBlock]) -> bytes:
    """The commit's blocks as one (ClickHouse reads each block at a fixed cost: native_merge.py)."""
    if len(blocks) > 1 and all(block.column_spans is not None for block in blocks):
        try:
            return merge_blocks(blocks, INSERT_COLUMN_TYPES)
        except (ValueError, IndexError, KeyError) as exc:  # never expected; the blocks still insert as they are
            log.warning("could not merge %d Native blocks, inserting them one by one: %s", len(blocks), exc)
    return b"".join(block.data for block in blocks)


def _drop_stored(batches: list[Steps], stored: set, ingested_ms: int) -> tuple[list[NativeBlock], list[WriteResult]]:
    """The Native blocks of the spans not in ``stored`` (each span once), and each batch's result."""
    blocks, results = [], []
    for batch in batches:
        fresh = []
        for key in batch.keys():
            if key not in stored:  # also drops a repeat of a key earlier in this group
                stored.add(key)
                fresh.append(key)
        results.append(WriteResult(accepted=len(batch), duplicates=len(batch) - len(fresh)))
        if len(fresh) == len(batch):
            blocks.append(_native(batch, ingested_ms))
        elif fresh:
            blocks.append(encode_block(_only(batch, fresh), ingested_ms))
    return blocks, results


def _distinct_steps(batches: list[Steps]) -> bool:
    """Whether no span id repeats in the group: then no identity repeats, and building
    every (project, run, span) key in the writer's thread can be skipped."""
    ids = [i for b in batches for i in b.step_ids]
    return len(set(ids)) == len(ids)


def _only(batch: Steps, keys: list[tuple[str, str, str]]) -> StepBatch:
    """The rows of ``batch`` with the given identities, each once.

    Rows are picked by identity, not position: an encoded batch's rebuild maps its spans
    again, and must not be trusted to give the same rows in the same places.
    """
    rows = batch.rebuild() if isinstance(batch, EncodedSteps) else batch
    wanted, keep = set(keys), []
    for i, key in enumerate(rows.keys()):
        if key in wanted:
            wanted.discard(key)
            keep.append(i)
    if wanted:  # never acknowledge a span that is not written: fail the commit instead
        raise RuntimeError(f"{len(wanted)} spans were missing when their batch was rebuilt")
    return rows.select(keep)
