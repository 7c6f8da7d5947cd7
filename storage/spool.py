"""The spool: acknowledged batches that ClickHouse has not taken yet, kept on local disk.

When a commit fails because the store is unreachable or refuses writes, the writer appends
the batches here and the exports are acknowledged; a drainer commits them later, in order, and
releases them only once ClickHouse has them.  So the spool must survive a crash:

* records are appended to segment files (``seg-<n>.spool``), each one length-prefixed and
  checksummed, and fsync'd before :meth:`Spool.append` returns (before any acknowledgement);
* the first unreleased record is named by a small ``head`` file, replaced atomically, so a
  restart replays only what was not released (a replayed record is harmless anyway: the
  writer's duplicate check keeps a span stored once);
* on open, a damaged record (torn by a crash mid-append, or corrupted on disk) ends its
  segment: it and what follows in that segment were never acknowledged or cannot be read,
  are logged and cut off; records before it, and later segments, are kept.

A record that ClickHouse refuses for good, or that this version cannot decode, is set aside in
``quarantine/`` (:meth:`Spool.quarantine`, one record per file, in the segment format) so that it
no longer holds up the records behind it; nothing is dropped.  At the next open those files
become segments again, behind the others, so a restart retries them.

The spool is bounded by ``max_bytes`` of unreleased and quarantined records; past it
:meth:`append` takes no more, and the caller answers "retry later".  One process owns a spool directory (a lock file);
:meth:`Spool.claim` gives each process sharing a parent directory (replicas on one volume) a
slot of its own, and a process that starts takes over a slot a stopped one left, spool and all.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import deque
from typing import NamedTuple

from .errors import StorageError

log = logging.getLogger(__name__)

MAGIC = b"ATS1"
_HEADER = struct.Struct("<4sIIQI")  # magic, payload length, spans, written (ms), crc32
_SEGMENT = re.compile(r"^seg-(\d{12})\.spool$")
QUARANTINE_DIR = "quarantine"
_QUARANTINED = re.compile(r"^q-(\d{12})-(\d{12})\.spool$")


class SpoolError(StorageError):
    """The spool directory cannot be used (unwritable, taken by another process, bad size)."""


class SpoolBusy(SpoolError):
    """Another process holds this spool directory."""


class SpoolRecord(NamedTuple):
    """Where one spooled batch lies, and what it holds."""

    segment: int
    offset: int
    size: int  # header + payload
    spans: int
    written_ms: int


def _segment_name(seq: int) -> str:
    return f"seg-{seq:012d}.spool"


class Spool:
    """A bounded, crash-safe FIFO of batches on disk (see the module).  Thread-safe: the writer
    appends, the drainer reads and releases, ``/health`` and ``/metrics`` read :meth:`status`."""

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int = 64 * 1024 * 1024):
        if max_bytes <= 0:
            raise SpoolError(f"spool size must be positive, not {max_bytes}")
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._records: deque[SpoolRecord] = deque()
        self._bytes = self._spans = 0
        self._tail_file = None
        self._lock_file = None
        self.damaged_bytes = 0  # cut off on open (torn or corrupted records)
        # Records ever appended and released (both count what was found on open as appended):
        # a reader that noted ``appended`` knows its records are committed once ``released``
        # reaches it.  ``replay_through``: the last record found on open, if any — a previous
        # process may have committed part of it.
        self.appended = self.released = 0
        self.replay_through: SpoolRecord | None = None
        # Set aside since open; their bytes count against max_bytes (the disk they hold).
        self.quarantined_batches = self.quarantined_spans = self.quarantined_bytes = 0
        try:
            os.makedirs(self.directory, exist_ok=True)
            self._lock_file = open(os.path.join(self.directory, "lock"), "a+b")
        except OSError as exc:
            raise SpoolError(f"spool directory {self.directory}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise SpoolBusy(f"spool directory {self.directory} is in use by another agenttrail process "
                             "(each receiver needs its own)") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            self.close()
            raise SpoolError(f"spool directory {self.directory} is not writable")
        try:
            self._requeue_quarantined()
            self._tail = self._load()  # appends go to the last segment there is
            self.appended = len(self._records)
            self.replay_through = self._records[-1] if self._records else None
        except OSError as exc:
            self.close()
            raise SpoolError(f"spool directory {self.directory}: cannot read what it holds: "
                             f"{exc.strerror or exc}") from None

    @classmethod
    def claim(cls, parent: str, max_bytes: int, slots: int = 64) -> "Spool":
        """The first free slot (``parent/0``, ``parent/1``, …) as this process's spool, so
        that replicas given one directory each get their own."""
        for slot in range(slots):
            try:
                return cls(os.path.join(parent, str(slot)), max_bytes)
            except SpoolBusy:
                continue
        raise SpoolError(f"all {slots} spool slots under {os.path.abspath(parent)} are in use")

    # -- opening -----------------------------------------------------------------------------

    def _load(self) -> int:
        """Index what the directory holds; returns the segment to append to."""
        head_seq, head_offset = self._read_head()
        last = head_seq
        for name in sorted(os.listdir(self.directory)):
            match = _SEGMENT.match(name)
            if not match:
                continue
            seq, path = int(match.group(1)), os.path.join(self.directory, name)
            if seq < head_seq:  # released; its unlink did not happen before a stop
                os.unlink(path)
                continue
            self._scan(seq, path, head_offset if seq == head_seq else 0)
            last = max(last, seq)
        return last

    def _requeue_quarantined(self) -> None:
        """Turn the records set aside in ``quarantine/`` into segments behind the last one, so that
        they are replayed (with the duplicate check) after the others: each file holds one record
        in the segment format, and a rename moves it whole."""
        quarantine = os.path.join(self.directory, QUARANTINE_DIR)
        try:
            names = sorted(name for name in os.listdir(quarantine) if _QUARANTINED.match(name))
        except FileNotFoundError:
            return
        if not names:
            return
        segments = [int(m.group(1)) for m in map(_SEGMENT.match, os.listdir(self.directory)) if m]
        last = max([self._read_head()[0], *segments])
        for seq, name in enumerate(names, last + 1):
            os.replace(os.path.join(quarantine, name), os.path.join(self.directory, _segment_name(seq)))
        _fsync_dir(self.directory)
        _fsync_dir(quarantine)
        log.warning("spool %s: retrying %d quarantined records", self.directory, len(names))

    def _read_head(self) -> tuple[int, int]:
        try:
            with open(os.path.join(self.directory, "head"), "rb") as fh:
                seq, offset, crc = fh.read(64).decode("ascii").split()
            if zlib.crc32(f"{seq} {offset}".encode()) != int(crc):
                raise ValueError("checksum mismatch")
            return int(seq), int(offset)
        except FileNotFoundError:
            return 0, 0
        except (OSError, ValueError, UnicodeDecodeError) as exc:  # replay everything: duplicates are dropped
            log.warning("spool %s: unreadable head file (%s); replaying every segment", self.directory, exc)
            return 0, 0

    def _scan(self, seq: int, path: str, offset: int) -> None:
        """Index the records of one segment from ``offset``; cut it at the first damaged one."""
        with open(path, "r+b") as fh:
            data = fh.read()
            problem = None
            while offset < len(data):
                if len(data) - offset < _HEADER.size:
                    problem = "torn record header"
                    break
                magic, length, spans, written, crc = _HEADER.unpack_from(data, offset)
                end = offset + _HEADER.size + length
                if magic != MAGIC:
                    problem = "bad record marker"
                elif end > len(data):
                    problem = "torn record"
                elif zlib.crc32(data[offset + 4:offset + 20] + data[offset + _HEADER.size:end]) != crc:
                    problem = "checksum mismatch"
                if problem:
                    break
                self._add(SpoolRecord(seq, offset, end - offset, spans, written))
                offset = end
            if problem:
                self.damaged_bytes += len(data) - offset
                log.error("spool %s: %s at byte %d of %s; dropping its last %d bytes (%d records before it "
                          "are kept)", self.directory, problem, offset, os.path.basename(path),
                          len(data) - offset, sum(r.segment == seq for r in self._records))
                fh.truncate(offset)
                os.fsync(fh.fileno())

    def _add(self, record: SpoolRecord) -> None:
        self._records.append(record)
        self._bytes += record.size
        self._spans += record.spans

    # -- the writer's side ---------------------------------------------------------------------

    def append(self, payloads: list[tuple[bytes, int]]) -> int:
        """Append ``(payload, spans)`` records in order and fsync once; returns how many were
        appended (fewer when the spool is full: the rest must be refused).  Raises OSError when
        the disk fails, in which case none of them may be acknowledged."""
        return len(self.append_records(payloads))

    def append_records(self, payloads: list[tuple[bytes, int]]) -> list[SpoolRecord]:
        """:meth:`append`, returning the records appended (the first ones of ``payloads``)."""
        with self._lock:
            fitting = []
            room = self.max_bytes - self._bytes - self.quarantined_bytes
            for payload, spans in payloads:
                if _HEADER.size + len(payload) > room:
                    break
                room -= _HEADER.size + len(payload)
                fitting.append((payload, spans))
            if not fitting:
                return []
            fh = self._segment_for_append()
            offset, written = fh.tell(), time.time_ns() // 1_000_000
            records, chunks = [], []
            for payload, spans in fitting:
                header = _HEADER.pack(MAGIC, len(payload), spans, written, 0)
                crc = zlib.crc32(header[4:20] + payload)
                chunks += [_HEADER.pack(MAGIC, len(payload), spans, written, crc), payload]
                records.append(SpoolRecord(self._tail, offset, _HEADER.size + len(payload), spans, written))
                offset += _HEADER.size + len(payload)
            try:
                fh.write(b"".join(chunks))
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                self._close_tail(truncate_to=records[0].offset)  # nothing of it may be replayed
                raise
            for record in records:
                self._add(record)
            self.appended += len(records)
            return records

    def _segment_for_append(self):
        if self._tail_file is not None and self._tail_file.tell() >= self.segment_bytes:
            self._close_tail()
            self._tail += 1
        if self._tail_file is None:
            self._tail_file = open(os.path.join(self.directory, _segment_name(self._tail)), "ab")
            _fsync_dir(self.directory)
        return self._tail_file

    def _close_tail(self, truncate_to: int | None = None) -> None:
        fh, self._tail_file = self._tail_file, None
        if fh is None:
            return
        try:
            if truncate_to is not None:
                fh.truncate(truncate_to)
            fh.close()
        except OSError as exc:
            log.warning("spool %s: closing a segment failed: %s", self.directory, exc)

    # -- the drainer's side ----------------------------------------------------------------------

    def read(self, max_spans: int, cached=frozenset(),
             max_records: int | None = None) -> list[tuple[SpoolRecord, bytes | None]]:
        """The oldest records (at least one, if any; then up to ``max_spans`` spans and
        ``max_records`` records) with their payloads; records in ``cached`` (held in memory by
        the caller) come with None instead.  A record whose segment file has gone comes back
        with an empty payload (which is no record: the drainer reports and drops it rather
        than wait for it forever)."""
        with self._lock:
            picked, spans = [], 0
            for record in self._records:
                if picked and (spans + record.spans > max_spans or len(picked) == max_records):
                    break
                picked.append(record)
                spans += record.spans
        out, handles = [], {}
        try:
            for record in picked:
                if record in cached:
                    out.append((record, None))
                    continue
                if record.segment not in handles:
                    try:
                        handles[record.segment] = open(os.path.join(self.directory, _segment_name(record.segment)), "rb")
                    except FileNotFoundError:
                        log.error("spool %s: %s has gone", self.directory, _segment_name(record.segment))
                        handles[record.segment] = None
                fh = handles[record.segment]
                if fh is None:
                    out.append((record, b""))
                    continue
                fh.seek(record.offset + _HEADER.size)
                out.append((record, fh.read(record.size - _HEADER.size)))
        finally:
            for fh in handles.values():
                if fh is not None:
                    fh.close()
        return out

    def quarantine(self, record: SpoolRecord) -> str:
        """Copy ``record`` from its segment into ``quarantine/`` (fsync'd) and return the file's
        path; the caller then releases it as usual.  The next open retries it (see the module)."""
        with open(os.path.join(self.directory, _segment_name(record.segment)), "rb") as fh:
            fh.seek(record.offset)
            data = fh.read(record.size)
        if len(data) != record.size or data[:4] != MAGIC:
            raise SpoolError(f"spool {self.directory}: record at segment {record.segment}, byte "
                             f"{record.offset} cannot be read back to quarantine it")
        quarantine = os.path.join(self.directory, QUARANTINE_DIR)
        os.makedirs(quarantine, exist_ok=True)
        path = os.path.join(quarantine, f"q-{record.segment:012d}-{record.offset:012d}.spool")
        with open(path + ".tmp", "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(path + ".tmp", path)
        _fsync_dir(quarantine)
        with self._lock:
            self.quarantined_batches += 1
            self.quarantined_spans += record.spans
            self.quarantined_bytes += record.size
        return path

    def release(self, through: SpoolRecord) -> None:
        """Forget every record up to and including ``through`` (ClickHouse has them)."""
        with self._lock:
            while self._records and self._records[0] <= through:
                record = self._records.popleft()
                self.released += 1
                self._bytes -= record.size
                self._spans -= record.spans
            if self._records:
                head = self._records[0]
                self._write_head(head.segment, head.offset)
            else:  # drained: start afresh in a new segment
                self._close_tail()
                self._tail += 1
                self._write_head(self._tail, 0)
            for name in os.listdir(self.directory):
                match = _SEGMENT.match(name)
                if match and int(match.group(1)) < (self._records[0].segment if self._records else self._tail):
                    os.unlink(os.path.join(self.directory, name))

    def _write_head(self, seq: int, offset: int) -> None:
        text = f"{seq} {offset}"
        tmp = os.path.join(self.directory, "head.tmp")
        with open(tmp, "wb") as fh:
            fh.write(f"{text} {zlib.crc32(text.encode())}\n".encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.directory, "head"))
        _fsync_dir(self.directory)

    # -- reporting and stopping -------------------------------------------------------------------

    def status(self) -> dict:
        """The backlog: batches, spans, bytes, the oldest record's age in seconds, the bound, and
        what was quarantined since open."""
        with self._lock:
            oldest = self._records[0].written_ms if self._records else None
            return {"batches": len(self._records), "spans": self._spans, "bytes": self._bytes,
                    "oldest_age_s": round(max(0.0, time.time() - oldest / 1000), 3) if oldest else 0.0,
                    "max_bytes": self.max_bytes, "quarantined_batches": self.quarantined_batches,
                    "quarantined_spans": self.quarantined_spans}

    @property
    def spans(self) -> int:
        """Spans in the unreleased records."""
        return self._spans

    @property
    def empty(self) -> bool:
        """True when nothing waits to be committed."""
        return not self._records

    def close(self) -> None:
        """Close the files and give up the directory (what is spooled stays for the next start)."""
        with self._lock:
            self._close_tail()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None


def _fsync_dir(path: str) -> None:
    """Make a file's creation or rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["Spool", "SpoolBusy", "SpoolError", "SpoolRecord"]
