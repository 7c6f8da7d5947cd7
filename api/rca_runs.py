"""Seed 002's RCA job flow: start an analysis, poll it, or follow its progress as SSE.

``POST /v1/runs/{run_id}/rca-runs`` analyses one run; ``POST /v1/projects/{p}/rca-runs``
analyses every failed run of a project in a window and groups them by category.  Both answer
``{"rca_run_id"}`` at once (202); ``GET /v1/rca-runs/{id}`` gives status and, when done, the
report (one run) or the grouped result (batch); ``GET /v1/rca-runs/{id}/stream`` sends the
progress events (``status``, ``step``, ``pct``, ``message``, ``updated_at``) as Server-Sent
Events, ending with the ``done`` (or ``failed``) event.  Jobs live in the server's memory
(:mod:`agenttrail.analysis.jobs`).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from agenttrail.analysis.jobs import Job, JobRegistry
from agenttrail.analysis.rca import build_report
from agenttrail.analysis.runs import analyse_run
from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.queries import Page, RunFilter, list_runs
from agenttrail.storage.runs import get_run, steps_of_runs

from .deps import get_store, project_scope, reader, run_id_path, visible_projects
from .errors import ApiError
from .params import time_window
from .projects import ProjectId

router = APIRouter(tags=["failures"])
MAX_BATCH_RUNS = 1000
STREAM_LIMIT_S = 600
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_registry_lock = threading.Lock()


def _registry(request: Request) -> JobRegistry:
    state = request.app.state
    with _registry_lock:
        if getattr(state, "rca_jobs", None) is None:
            state.rca_jobs = JobRegistry()
        return state.rca_jobs


def _run_job(store: Store, project: str, run_id: str):
    def work(job: Job) -> dict:
        job.progress("Collecting evidence", 30)
        row = get_run(store, run_id, frozenset({project}))
        if row is None:
            raise LookupError(f"run {run_id} is no longer stored")
        steps = steps_of_runs(store, [row]).get((row["project_id"], row["run_id"]), [])
        job.progress("Classifying failure", 55)
        failure = analyse_run(row, steps)
        job.progress("Generating report", 85)
        return build_report(row, steps, failure)
    return work


def _batch_job(store: Store, project: str, since_ns: int, until_ns: int, max_runs: int):
    def work(job: Job) -> dict:
        job.progress("Finding failed runs", 10)
        filters = RunFilter(projects=frozenset({project}), since_ns=since_ns, until_ns=until_ns, has_errors=True)
        rows, _ = list_runs(store, filters, Page(), max_runs)
        job.progress("Reading their steps", 20, f"{len(rows)} runs")
        steps_by_run = steps_of_runs(store, rows)  # one query, not one per run
        groups: dict[str, dict] = {}
        runs = []
        for n, row in enumerate(rows, 1):
            steps = steps_by_run.get((row["project_id"], row["run_id"]), [])
            report = build_report(row, steps, analyse_run(row, steps))
            category = report["category"]
            group = groups.setdefault(category, {"category": category, "run_count": 0, "run_ids": [],
                                                 "insufficient_evidence_runs": 0})
            group["run_count"] += 1
            group["insufficient_evidence_runs"] += report["insufficient_evidence"]
            if len(group["run_ids"]) < 10:
                group["run_ids"].append(row["run_id"])
            runs.append({"run_id": row["run_id"], "status": row["status"], "category": category,
                         "insufficient_evidence": report["insufficient_evidence"],
                         "root_cause_step_id": report["root_cause_step_id"]})
            if n % 10 == 0 or n == len(rows):
                job.progress("Analysing runs", 20 + 75 * n // max(len(rows), 1), f"{n} of {len(rows)} runs analysed")
        ordered = sorted(groups.values(), key=lambda g: (-g["run_count"], g["category"]))
        return {"project_id": project, "runs_analysed": len(runs), "truncated": len(rows) >= max_runs,
                "groups": ordered, "runs": runs}
    return work


@router.post("/v1/runs/{run_id}/rca-runs", status_code=202)
async def start_run_rca(request: Request, run_id: str = Depends(run_id_path), store: Store = Depends(get_store),
                        principal: Principal = Depends(reader)) -> dict:
    """Start the root-cause analysis of one run; ``rca_run_id`` names the job."""
    row = await run_in_threadpool(get_run, store, run_id, visible_projects(principal))
    if row is None:
        raise ApiError(404, f"run {run_id} not found")
    job = _registry(request).start("run", row["project_id"], run_id, _run_job(store, row["project_id"], run_id))
    return {"rca_run_id": job.id}


@router.post("/v1/projects/{project_id}/rca-runs", status_code=202)
async def start_batch_rca(request: Request, project_id: str = ProjectId,
                          since: str | None = Query(None, max_length=64, description="Window start (ISO-8601); default: 24 h before until."),
                          until: str | None = Query(None, max_length=64, description="Window end (ISO-8601); default: now."),
                          max_runs: int = Query(200, ge=1, le=MAX_BATCH_RUNS, description="Analyse at most this many failed runs, newest first."),
                          store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Analyse every failed run (a failed step or a failed root) of a project started in the
    window, newest first, and group them by category; ``rca_run_id`` names the job."""
    if not project_scope(principal, project_id):
        raise ApiError(404, f"project {project_id} not found")
    since_ns, until_ns = time_window(since, until, 24)
    job = _registry(request).start("batch", project_id, f"{since_ns}-{until_ns}",
                                   _batch_job(store, project_id, since_ns, until_ns, max_runs))
    return {"rca_run_id": job.id}


def _job(request: Request, principal: Principal, rca_run_id: str) -> Job:
    if not _JOB_ID.match(rca_run_id):
        raise ApiError(422, "rca_run_id: must be 32 lowercase hex characters")
    job = _registry(request).get(rca_run_id)
    if job is None or not principal.allows(job.project_id):
        raise ApiError(404, f"RCA run {rca_run_id} not found")
    return job


JobId = Path(..., max_length=64, description="The rca_run_id a POST returned.")


@router.get("/v1/rca-runs/{rca_run_id}")
def rca_run(request: Request, rca_run_id: str = JobId, principal: Principal = Depends(reader)) -> dict:
    """Status of an RCA job and, once ``done``, its ``report`` (one run) or ``result`` (batch)."""
    return _job(request, principal, rca_run_id).view()


@router.get("/v1/rca-runs/{rca_run_id}/stream")
async def rca_run_stream(request: Request, rca_run_id: str = JobId,
                         principal: Principal = Depends(reader)) -> StreamingResponse:
    """The job's progress events as Server-Sent Events (``data: {...}``), from the first,
    ending after the ``done`` or ``failed`` event."""
    job = _job(request, principal, rca_run_id)

    async def events():
        sent, deadline = 0, time.monotonic() + STREAM_LIMIT_S
        while time.monotonic() < deadline:
            fresh = await run_in_threadpool(job.events_after, sent, 1.0)
            for event in fresh:
                yield f"data: {json.dumps(event)}\n\n"
            sent += len(fresh)
            if job.finished and sent >= len(job.events):
                return
            if await request.is_disconnected():
                return
            if not fresh:
                await asyncio.sleep(0)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
