"""Finding the events webhooks announce, by reading what storage already holds.

``validation.failed``: a validation stored with status ``failed``, whoever stored it (the API,
automatic validation, the CLI).  ``failure.new_group``: the first failed step of a
(project, failure category, error fingerprint) group never seen before: a new fingerprint
of ``GET /v1/projects/{p}/failures?group_by=fingerprint``, or a known one in a new category.

:meth:`EventWatcher.tick` runs on a timer beside the server and reads only rows stored since
the previous tick (by ``created_at`` / ``ingested_at``, both indexed), re-reading an overlap
so that a row committed late (its time is set before its insert ends) is not missed; ids and
group keys already announced are remembered, so the overlap announces nothing twice.  At
the first tick nothing is announced: it notes where "now" is and loads the groups already
known, so a restart does not replay history.
"""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger(__name__)

_VALIDATIONS = """
SELECT validation_id, project_id, run_id, runbook_name, runbook_version, status, reasons, source,
       toUnixTimestamp64Milli(created_at) AS created_ms
FROM validations
WHERE created_at >= fromUnixTimestamp64Milli({since:Int64}) AND status = 'failed'{scope}
ORDER BY created_at LIMIT {limit:UInt32}"""

_KNOWN_GROUPS = """
SELECT DISTINCT project_id, toString(failure_category), error_fingerprint FROM steps
WHERE failure_category != ''{scope} LIMIT {limit:UInt32}"""

_NEW_GROUPS = """
SELECT project_id, toString(failure_category) AS category, error_fingerprint AS fingerprint, count() AS steps,
       toUnixTimestamp64Milli(min(ingested_at)) AS first_ms, argMin(run_id, ingested_at) AS run_id,
       argMin(step_id, ingested_at) AS step_id, argMin(tool_name, ingested_at) AS tool,
       argMin(toString(model), ingested_at) AS model, argMin(agent_name, ingested_at) AS agent,
       argMin(substring(status_message, 1, 500), ingested_at) AS message, min(start_time) AS first_started_at
FROM steps
WHERE ingested_at >= fromUnixTimestamp64Milli({since:Int64}) AND failure_category != ''{scope}
GROUP BY project_id, category, fingerprint
ORDER BY first_ms LIMIT {limit:UInt32}"""


def _iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class EventWatcher:
    """Publishes new failed validations and new failure groups to ``dispatcher``."""

    def __init__(self, store, dispatcher, *, overlap_seconds: float = 60.0, max_rows: int = 1000,
                 max_groups: int = 200_000):
        self.store, self.dispatcher = store, dispatcher
        self.overlap_ms = int(overlap_seconds * 1000)
        self.max_rows, self.max_groups = max_rows, max_groups
        hooks = dispatcher.webhooks
        self.events = {e for h in hooks for e in h.events}
        scoped = all(h.projects is not None for h in hooks)
        self.projects = sorted({p for h in hooks for p in h.projects}) if scoped else None
        self._cursor: dict[str, int] = {}
        self._announced: dict[str, int] = {}  # validation id -> created ms, within the overlap
        self._groups: set[tuple[str, str, str]] | None = None

    @property
    def started(self) -> bool:
        """True once the first tick has noted where "now" is: later rows are announced."""
        return bool(self._cursor)

    def _scope(self) -> tuple[str, dict]:
        if self.projects is None:
            return "", {}
        return " AND project_id IN {projects:Array(String)}", {"projects": self.projects}

    def tick(self, now: float | None = None) -> int:
        """One pass; returns how many events were published."""
        now_ms = int((time.time() if now is None else now) * 1000)
        if not self._cursor:
            self._start(now_ms)
            return 0
        published = 0
        if "validation.failed" in self.events:
            published += self._validations(now_ms)
        if "failure.new_group" in self.events and self._groups is not None:
            published += self._new_groups(now_ms)
        return published

    def _start(self, now_ms: int) -> None:
        self._cursor = {"validations": now_ms - self.overlap_ms, "groups": now_ms - self.overlap_ms}
        if "validation.failed" in self.events:  # those stored before the start are history
            self._validations(now_ms, publish=False)
        if "failure.new_group" not in self.events:
            return
        scope, params = self._scope()
        rows = self.store.query(_KNOWN_GROUPS.replace("{scope}", scope),
                                {**params, "limit": self.max_groups + 1}).result_rows
        if len(rows) > self.max_groups:
            log.warning("more than %d failure groups are stored: failure.new_group is not announced", self.max_groups)
            return
        self._groups = {tuple(r) for r in rows}

    def _validations(self, now_ms: int, publish: bool = True) -> int:
        scope, params = self._scope()
        rows = list(self.store.query(_VALIDATIONS.replace("{scope}", scope), {
            **params, "since": self._cursor["validations"], "limit": self.max_rows}).named_results())
        published = 0
        for row in rows:
            if row["validation_id"] in self._announced:
                continue
            self._announced[row["validation_id"]] = row["created_ms"]
            if publish:
                reasons = [{"rule": r.get("rule"), "message": r.get("message"), "step_ids": r.get("step_ids", [])[:20]}
                           for r in json.loads(row["reasons"] or "[]")[:20]]
                self.dispatcher.publish("validation.failed", row["project_id"], {
                    "validation_id": row["validation_id"], "run_id": row["run_id"], "status": row["status"],
                    "runbook_name": row["runbook_name"], "runbook_version": row["runbook_version"],
                    "source": row["source"], "created_at": _iso_ms(row["created_ms"]), "reasons": reasons})
                published += 1
        self._advance("validations", now_ms, rows, "created_ms")
        floor = self._cursor["validations"]
        self._announced = {k: v for k, v in self._announced.items() if v >= floor}
        return published

    def _new_groups(self, now_ms: int) -> int:
        scope, params = self._scope()
        rows = list(self.store.query(_NEW_GROUPS.replace("{scope}", scope), {
            **params, "since": self._cursor["groups"], "limit": self.max_rows}).named_results())
        published = 0
        for row in rows:
            key = (row["project_id"], row["category"], row["fingerprint"])
            if key in self._groups:
                continue
            if len(self._groups) >= self.max_groups:
                log.warning("more than %d failure groups known: failure.new_group stops here", self.max_groups)
                self._groups = None
                break
            self._groups.add(key)
            self.dispatcher.publish("failure.new_group", row["project_id"], {
                "category": row["category"], "fingerprint": row["fingerprint"], "steps": row["steps"],
                "first_seen": _iso_ms(row["first_ms"]), "run_id": row["run_id"], "step_id": row["step_id"],
                "tool": row["tool"] or None, "model": row["model"] or None, "agent": row["agent"] or None,
                "message": row["message"] or None})
            published += 1
        self._advance("groups", now_ms, rows, "first_ms")
        return published

    def _advance(self, name: str, now_ms: int, rows: list[dict], time_key: str) -> None:
        # A full page continues from its last row next time; otherwise everything up to now
        # was read, and the next read starts an overlap before now.
        if len(rows) >= self.max_rows:
            self._cursor[name] = max(self._cursor[name], rows[-1][time_key])
        else:
            self._cursor[name] = max(self._cursor[name], now_ms - self.overlap_ms)
