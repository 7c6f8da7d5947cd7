"""Project endpoints: the visible projects, one project's summary and its runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.queries import list_projects
from agenttrail.storage.series import run_series
from agenttrail.storage.summary import project_summary

from .deps import get_store, project_scope, reader
from .errors import ApiError
from .params import MAX_TEXT, time_window
from .run_list import RunListParams, run_list
from .serialize import iso

router = APIRouter(tags=["projects"])

ProjectId = Path(..., min_length=1, max_length=MAX_TEXT, description="The project id.")


@router.get("/v1/projects")
def projects(store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Every project your key may read that has runs, with run count and first/last activity."""
    rows = list_projects(store, project_scope(principal))
    return {"projects": [{"project_id": r["project_id"], "run_count": r["run_count"],
                          "first_seen": iso(r["first_seen"]), "last_seen": iso(r["last_seen"])}
                         for r in rows]}


def _readable(principal: Principal, project_id: str) -> None:
    if not project_scope(principal, project_id):
        raise ApiError(404, f"project {project_id} not found")


@router.get("/v1/projects/{project_id}/summary")
def summary(project_id: str = ProjectId,
            since: str | None = Query(None, max_length=64,
                                      description="Window start (ISO-8601); default: 24 h before until."),
            until: str | None = Query(None, max_length=64, description="Window end (ISO-8601); default: now."),
            store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Health of one project over a window (default: the last 24 hours).

    Runs, success and error rates (over finished runs, 0–1), p50/p95 run duration, p50/p95
    step latency (root spans excluded), tokens, cost, top tools, top failing tools, models used
    and — once runs are validated — the validation pass rate.
    """
    _readable(principal, project_id)
    since_ns, until_ns = time_window(since, until, 24)
    body = project_summary(store, project_id, since_ns, until_ns)
    return {"project_id": project_id, "since": _iso_ns(since_ns), "until": _iso_ns(until_ns), **body}


@router.get("/v1/projects/{project_id}/timeseries")
def timeseries(project_id: str = ProjectId,
               since: str | None = Query(None, max_length=64,
                                         description="Window start (ISO-8601); default: 24 h before until."),
               until: str | None = Query(None, max_length=64, description="Window end (ISO-8601); default: now."),
               buckets: int = Query(24, ge=1, le=500, description="Equal time buckets the window is cut into (1–500)."),
               store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Run figures of one project per time bucket (by run start): runs by status, success
    rate, p50/p95 run duration, tokens and cost — the summary's run figures over time.
    Every bucket is listed, empty ones with zero runs."""
    _readable(principal, project_id)
    since_ns, until_ns = time_window(since, until, 24)
    width, rows = run_series(store, project_id, since_ns, until_ns, buckets)
    rows = [{"start": _iso_ns(row.pop("start_ns")), **row} for row in rows]
    return {"project_id": project_id, "since": _iso_ns(since_ns), "until": _iso_ns(until_ns),
            "bucket_seconds": width / 1e9, "buckets": rows}


@router.get("/v1/projects/{project_id}/runs")
def project_runs(project_id: str = ProjectId, params: RunListParams = Depends(),
                 store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """The run list of ``GET /v1/runs`` for one project (same filters, order and cursor)."""
    _readable(principal, project_id)
    return run_list(store, project_scope(principal, project_id), params)


def _iso_ns(value: int) -> str:
    from datetime import datetime, timezone

    return iso(datetime.fromtimestamp(value / 1e9, tz=timezone.utc))
