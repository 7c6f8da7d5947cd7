"""Background analysis jobs with progress (seed 002's RCA runs), held in memory.

A :class:`JobRegistry` runs each job's function on a small thread pool and keeps its progress
events — ``status``, ``step``, ``pct``, ``message``, ``updated_at`` — and its result, so a
client can poll the job or follow its events as they come (the API streams them as SSE).
Jobs live in this process only: they are recomputable from stored data, so a restart loses
nothing that cannot be asked for again.  The oldest finished jobs are forgotten beyond
``max_jobs``.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable

FINISHED = ("done", "failed")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Job:
    """One job: what it analyses, its progress events and, once done, its result."""

    def __init__(self, kind: str, project_id: str, subject: str):
        self.id = uuid.uuid4().hex
        self.kind, self.project_id, self.subject = kind, project_id, subject
        self.status = "queued"
        self.events: list[dict] = []
        self.result: dict | None = None
        self.error: str | None = None
        self.created_at = _now()
        self.changed = threading.Condition()

    def progress(self, step: str, pct: int, message: str | None = None, status: str = "running") -> None:
        """Record one progress event (what a stream of the job sends)."""
        with self.changed:
            self.status = status
            self.events.append({"status": status, "step": step, "pct": max(0, min(100, int(pct))),
                                "message": message or step, "updated_at": _now()})
            self.changed.notify_all()

    def events_after(self, index: int, timeout: float) -> list[dict]:
        """The events from ``index`` on, waiting up to ``timeout`` s for one when there are none yet."""
        with self.changed:
            if len(self.events) <= index and self.status not in FINISHED:
                self.changed.wait(timeout)
            return self.events[index:]

    @property
    def finished(self) -> bool:
        """Whether the job is done or failed: no event will follow."""
        return self.status in FINISHED

    def view(self) -> dict:
        """The job as the API shows it."""
        last = self.events[-1] if self.events else None
        return {"rca_run_id": self.id, "kind": self.kind, "project_id": self.project_id, "subject": self.subject,
                "status": self.status, "pct": last["pct"] if last else 0, "created_at": self.created_at,
                "updated_at": last["updated_at"] if last else self.created_at, "error": self.error,
                "report" if self.kind == "run" else "result": self.result}


class JobRegistry:
    """Starts jobs on ``workers`` threads and remembers up to ``max_jobs`` of them."""

    def __init__(self, workers: int = 2, max_jobs: int = 1000):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agenttrail-rca")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self.max_jobs = max_jobs

    def start(self, kind: str, project_id: str, subject: str, work: Callable[[Job], dict]) -> Job:
        """Queue ``work(job)``; its return value becomes the job's result."""
        job = Job(kind, project_id, subject)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.max_jobs:
                oldest = next((k for k, j in self._jobs.items() if j.finished), None)
                if oldest is None:
                    break
                del self._jobs[oldest]
        job.progress("Queued", 0, status="queued")
        self._pool.submit(self._run, job, work)
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], dict]) -> None:
        try:
            job.progress("Starting RCA", 5)
            job.result = work(job)
            job.progress("RCA complete", 100, status="done")
        except Exception as exc:  # the job reports it; the server carries on
            job.error = f"{type(exc).__name__}: {str(exc)[:500]}"
            job.progress("RCA failed", 100, job.error, status="failed")

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None when unknown or forgotten."""
        with self._lock:
            return self._jobs.get(job_id)

    def close(self) -> None:
        """Stop taking jobs; queued ones are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["FINISHED", "Job", "JobRegistry"]
