"""Which runs of an embedded store may already have a run row, kept in memory by its writer.

Before each commit the writer must know which of the commit's runs are already stored: those
are checked for duplicate spans and recomputed from ``steps``, the others get their rows from
the commit itself.  Asking ClickHouse has a fixed cost per commit whatever the answer (parsing
the run ids, reading the bloom index of every ``runs`` part; ``bench/commit_bench.py``), and
under load almost every run of a commit is new.  The embedded store has one writer (chDB binds its directory to one
process), so that writer can know the answer itself: it reads the keys of every stored run
once, at its first commit, and adds the runs of each commit it attempts.  Then only the runs
this filter says *may* be stored need the query, usually none.

A key is the first 8 bytes of ``MD5(project_id + '\\0' + run_id)``, computed the same way by
ClickHouse (for the stored runs) and by :func:`run_key` (for a commit's runs).  The filter
has no false negatives: a run with a row is always reported.  A false positive (a hash
collision, or a run that failed to commit, or one TTL has since removed) costs only the
query it would have cost anyway.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

log = logging.getLogger(__name__)

KEYS_SQL = "SELECT reinterpretAsUInt64(substring(MD5(concat(project_id, '\\0', run_id)), 1, 8)) FROM runs"
"""Every stored run's key (a run with several row versions appears more than once)."""

COUNT_SQL = "SELECT count() FROM runs"


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    # Not np.unique / np.union1d: with numpy 2.4 they took 5.8 s for 4M keys here, a sort 0.09 s.
    keys = np.sort(keys)
    if len(keys) > 1:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return keys


def run_key(project_id: str, run_id: str) -> int:
    """The key of one run: the same number :data:`KEYS_SQL` computes in ClickHouse."""
    digest = hashlib.md5(f"{project_id}\0{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def run_keys(runs) -> dict[tuple[str, str], int]:
    """The key of each (project, run) pair: computed once per commit, for both
    :meth:`KnownRuns.maybe_stored` and :meth:`KnownRuns.add`."""
    return {(p, r): run_key(p, r) for p, r in runs}


class KnownRuns:
    """A set of run keys: a sorted array loaded from ``runs``, plus the keys added since.

    ``max_rows`` bounds the memory (8 bytes a run): a store with more run rows than that
    gets no filter (:meth:`load` returns None) and the writer asks ClickHouse every time.
    """

    def __init__(self, stored: np.ndarray | None = None):
        self._stored = _sorted_unique(stored) if stored is not None else np.empty(0, dtype=np.uint64)
        self._added: set[int] = set()

    @classmethod
    def load(cls, client, max_rows: int = 10_000_000) -> "KnownRuns | None":
        """The keys of every run stored in ``client``'s database (None: more rows than ``max_rows``)."""
        rows = client.query(COUNT_SQL).result_rows[0][0]
        if rows > max_rows:
            log.info("%d run rows: more than the %d the writer keeps in memory; it will ask the store "
                     "which runs are known at every commit", rows, max_rows)
            return None
        data = client.raw_query(KEYS_SQL, fmt="RowBinary")
        return cls(np.frombuffer(data, dtype="<u8"))

    def __len__(self) -> int:
        return len(self._stored) + len(self._added)

    def add(self, keys) -> None:
        """Remember the runs of these keys (:func:`run_keys` values) as possibly stored."""
        self._added.update(keys)
        # Fold the added keys into the sorted array once they are many: a Python int in a set
        # costs ~70 bytes, and the fold's sort is paid once per eighth of the array's size.
        if len(self._added) > max(100_000, len(self._stored) // 8):
            added = np.fromiter(self._added, dtype=np.uint64, count=len(self._added))
            self._stored = _sorted_unique(np.concatenate([self._stored, added]))
            self._added = set()

    def maybe_stored(self, keyed: dict[tuple[str, str], int]) -> set[tuple[str, str]]:
        """The (project, run) pairs of ``keyed`` (:func:`run_keys`) that may have a run row; the
        others surely have none."""
        if not keyed:
            return set()
        runs, keys = list(keyed), list(keyed.values())
        found = np.zeros(len(keys), dtype=bool)
        if len(self._stored):
            wanted = np.array(keys, dtype=np.uint64)
            at = np.searchsorted(self._stored, wanted)
            inside = at < len(self._stored)
            found[inside] = self._stored[at[inside]] == wanted[inside]
        return {run for run, key, hit in zip(runs, keys, found) if hit or key in self._added}
