"""Automatic validation: judge runs once they complete, and again when late spans change them.

A run is *complete* when its root span has arrived and no span has arrived for a quiet period
(``last_span_at`` older than ``quiet_seconds``).  Each :meth:`AutoValidator.tick` takes every
``auto`` runbook, finds the complete runs it applies to whose current state has no
validation yet (the ``input_hash`` is computed in SQL the same way :func:`.service.input_hash`
does in Python), and judges them with one compiled query per runbook.  A late span changes
the run's step count and ``last_span_at``, hence its ``input_hash``, so the run is judged again.

The service runs ``tick()`` every few seconds on a background thread; a tick never raises for
one bad runbook (it is logged and skipped) so one mistake does not stop the others.
"""

from __future__ import annotations

import logging
import time

from .compiler import Selection, compile_runbook
from .library import list_runbooks
from .parser import parse_runbook
from .patterns import compile_glob
from .service import RunbookInfo, judge, persist

log = logging.getLogger(__name__)

_CANDIDATES = """
SELECT run_id FROM runs FINAL
WHERE project_id = {p:String} AND root_missing = 0
  AND last_span_at < fromUnixTimestamp64Milli({cutoff:Int64})
  AND last_span_at >= fromUnixTimestamp64Milli({horizon:Int64})
  AND match(agent_name, {agent:String}) AND match(service_name, {service:String})
  AND lower(hex(SHA256(concat({h:String}, '|', toString(step_count), '|',
        toString(toUnixTimestamp64Milli(last_span_at)), '|1'))))
      NOT IN (SELECT input_hash FROM validations WHERE project_id = {p:String} AND runbook_hash = {h:String})
ORDER BY last_span_at
LIMIT {n:UInt32}"""


class AutoValidator:
    """Finds completed runs of projects with ``auto`` runbooks and validates them.

    ``lookback_seconds`` bounds how far back a tick looks for runs (older runs that changed
    are rare and would make every tick scan the whole history); ``max_runs_per_tick`` bounds
    one query, the rest waits for the next tick.
    """

    def __init__(self, store, *, quiet_seconds: float = 30.0, lookback_seconds: float = 86_400.0,
                 max_runs_per_tick: int = 10_000):
        if quiet_seconds < 0 or lookback_seconds <= 0 or max_runs_per_tick <= 0:
            raise ValueError("quiet_seconds >= 0, lookback_seconds > 0 and max_runs_per_tick > 0 are required")
        self.store = store
        self.quiet_seconds = quiet_seconds
        self.lookback_seconds = lookback_seconds
        self.max_runs_per_tick = max_runs_per_tick
        self._compiled: dict[str, object] = {}  # runbook hash -> CompiledRunbook

    def tick(self, now: float | None = None) -> dict:
        """One pass; returns ``{"runbooks": n, "validated": n, "failed": n, "errors": n}``."""
        now = time.time() if now is None else now
        stats = {"runbooks": 0, "validated": 0, "failed": 0, "errors": 0}
        projects = [r[0] for r in self.store.query(
            "SELECT DISTINCT project_id FROM runbooks FINAL WHERE auto = 1").result_rows]
        if not projects:
            return stats
        for record in list_runbooks(self.store, projects, auto_only=True):
            stats["runbooks"] += 1
            try:
                results = self._validate(record, now)
            except Exception:  # one broken runbook must not stop the others
                log.exception("automatic validation with runbook %s/%s failed", record["project_id"], record["name"])
                stats["errors"] += 1
                continue
            stats["validated"] += len(results)
            stats["failed"] += sum(r["status"] == "failed" for r in results)
        return stats

    def _validate(self, record: dict, now: float) -> list[dict]:
        compiled = self._compiled.get(record["hash"])
        if compiled is None:
            compiled = self._compiled[record["hash"]] = compile_runbook(parse_runbook(record["yaml"]))
        applies = record["applies_to"]
        run_ids = [r[0] for r in self.store.query(_CANDIDATES, {
            "p": record["project_id"], "h": record["hash"], "n": self.max_runs_per_tick,
            "cutoff": int((now - self.quiet_seconds) * 1000), "horizon": int((now - self.lookback_seconds) * 1000),
            "agent": compile_glob(applies.get("agent", "*")).anchored,
            "service": compile_glob(applies.get("service", "*")).anchored,
        }).result_rows]
        if not run_ids:
            return []
        results = judge(self.store, compiled, Selection(project=record["project_id"], run_ids=tuple(run_ids)))
        # Only what the candidate query promised: complete runs (a root arrived meanwhile is fine).
        results = [r for r in results if r["summary"]["root_arrived"]]
        info = RunbookInfo(record["name"], record["version"])
        return persist(self.store, results, compiled.runbook, info, source="auto")
