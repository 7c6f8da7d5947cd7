"""Which runs of an embedded store may have a run row, and since when: kept in memory by its writer.

Before each commit the writer must know which of the commit's runs are already stored: those
are checked for duplicate spans and recomputed from ``steps``, the others get their rows from
the commit itself.  For the stored ones it also needs the earliest ingest time of their steps,
which bounds what it reads back.  Asking ClickHouse has a cost per commit that grows with the
store: the run ids are spread over every granule of ``runs`` (docs/performance.md, "Which runs
are stored").  The embedded store has one writer (chDB binds its directory to one process), so
that writer can know the answer itself: it reads every stored run's key and earliest
``first_seen_at`` once, at its first commit, and adds the runs of each commit it attempts, with
that commit's earliest stamp.  Then nothing is asked.

A key is the first 8 bytes of ``MD5(project_id + '\\0' + run_id)``, computed the same way by
ClickHouse (for the stored runs) and by :func:`run_key` (for a commit's runs).  The filter
has no false negatives: a run with a row is always reported, with a time no later than any of
its stored steps' ingest (kept in whole seconds, rounded down).  A false positive (a hash
collision, a run that failed to commit, or one TTL has since removed) costs a duplicate check
and a recompute that find nothing more.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

log = logging.getLogger(__name__)

KEYS_SQL = (
    "SELECT reinterpretAsUInt64(substring(MD5(concat(project_id, '\\0', run_id)), 1, 8)) AS key, "
    "toUInt32(min(toUnixTimestamp(first_seen_at))) FROM runs GROUP BY key ORDER BY key"
)
"""Every stored run's key, once, with the earliest ``first_seen_at`` of its row versions (s)."""

COUNT_SQL = "SELECT uniq(project_id, run_id) FROM runs"
"""About how many runs are stored: rows count each row version until merges collapse them."""

_ROW = np.dtype([("key", "<u8"), ("seen", "<u4")])


def run_key(project_id: str, run_id: str) -> int:
    """The key of one run: the same number :data:`KEYS_SQL` computes in ClickHouse."""
    digest = hashlib.md5(f"{project_id}\0{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def run_keys(runs) -> dict[tuple[str, str], int]:
    """The key of each (project, run) pair: computed once per commit, for both
    :meth:`KnownRuns.stored_since` and :meth:`KnownRuns.add`."""
    return {(p, r): run_key(p, r) for p, r in runs}


class KnownRuns:
    """Run keys with the earliest ingest of their steps (s): sorted arrays loaded from ``runs``,
    plus the keys added since.

    ``max_runs`` bounds the memory (12 bytes a run): a store with more runs than that gets no
    filter (:meth:`load` returns None) and the writer asks ClickHouse every time.
    """

    def __init__(self, keys: np.ndarray | None = None, seen: np.ndarray | None = None):
        """``keys`` sorted and unique, ``seen`` the time of each (s)."""
        self._keys = keys if keys is not None else np.empty(0, dtype=np.uint64)
        self._seen = seen if seen is not None else np.empty(0, dtype=np.uint32)
        self._added: dict[int, int] = {}

    @classmethod
    def load(cls, client, max_runs: int = 10_000_000) -> "KnownRuns | None":
        """The keys of every run stored in ``client``'s database (None: more runs than ``max_runs``)."""
        runs = client.query(COUNT_SQL).result_rows[0][0]
        if runs > max_runs:
            log.info("about %d runs: more than the %d the writer keeps in memory; it will ask the store "
                     "which runs are known at every commit", runs, max_runs)
            return None
        data = np.frombuffer(client.raw_query(KEYS_SQL, fmt="RowBinary"), dtype=_ROW)
        return cls(data["key"].copy(), data["seen"].copy())

    def __len__(self) -> int:
        return len(self._keys) + len(self._added)

    def add(self, keys, ingested_ms: int) -> None:
        """Remember the runs of these keys (:func:`run_keys` values) as possibly stored, with
        steps ingested no earlier than ``ingested_ms``."""
        seen = ingested_ms // 1000
        for key in keys:
            self._added[key] = min(seen, self._added.get(key, seen))
        # Fold the added keys into the sorted arrays once they are many: a Python dict entry
        # costs ~100 bytes, and the fold is paid once per eighth of the arrays' size.
        if len(self._added) > max(100_000, len(self._keys) // 8):
            self._fold()

    def _fold(self) -> None:
        keys = np.fromiter(self._added.keys(), dtype=np.uint64, count=len(self._added))
        seen = np.fromiter(self._added.values(), dtype=np.uint32, count=len(self._added))
        self._added = {}
        at = np.searchsorted(self._keys, keys)
        present = at < len(self._keys)
        present[present] = self._keys[at[present]] == keys[present]
        # Keys already held keep the earlier time; the others are inserted in order.
        np.minimum.at(self._seen, at[present], seen[present])
        keys, seen = keys[~present], seen[~present]
        order = np.argsort(keys)
        keys, seen = keys[order], seen[order]
        at = np.searchsorted(self._keys, keys)
        self._keys, self._seen = np.insert(self._keys, at, keys), np.insert(self._seen, at, seen)

    def stored_since(self, keyed: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        """The (project, run) pairs of ``keyed`` (:func:`run_keys`) that may have a run row, each
        with a time (ms) no later than the ingest of any of its stored steps; the others surely
        have none."""
        if not keyed:
            return {}
        runs, keys = list(keyed), list(keyed.values())
        seen = np.full(len(keys), -1, dtype=np.int64)
        if len(self._keys):
            wanted = np.array(keys, dtype=np.uint64)
            at = np.minimum(np.searchsorted(self._keys, wanted), len(self._keys) - 1)
            hit = self._keys[at] == wanted
            seen[hit] = self._seen[at[hit]]
        found = {}
        for run, key, held in zip(runs, keys, seen.tolist()):  # held: -1 when not in the arrays
            added = self._added.get(key)
            if added is not None and (held < 0 or added < held):
                held = added
            if held >= 0:
                found[run] = held * 1000
        return found
