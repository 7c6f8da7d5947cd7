"""Failure analysis endpoints: a run's root-cause report and (per project) what fails most."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from agenttrail.analysis.rca import build_report
from agenttrail.analysis.runs import analyse_run
from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.failures import failure_groups

from .deps import get_store, project_scope, reader, run_id_path
from .errors import ApiError
from .params import time_window
from .projects import ProjectId
from .runs import read_run
from .serialize import iso, plain_json

router = APIRouter(tags=["failures"])


def run_report(row: dict, steps: list[dict]) -> dict:
    """The RCA report of a run row and its full steps (also used by the RCA jobs)."""
    return build_report(row, steps, analyse_run(row, steps))


@router.get("/v1/runs/{run_id}/rca")
async def run_rca(run_id: str = Depends(run_id_path), store: Store = Depends(get_store),
                  principal: Principal = Depends(reader)) -> dict:
    """Evidence-first root-cause report of one run (seed 002's shape): ``category``,
    ``insufficient_evidence`` and why, ``evidence_index``, ``hypotheses`` citing evidence ids,
    ``action_items``.  Deterministic: computed from the stored steps, no model involved."""
    row, steps, _ = await read_run(store, run_id, principal)
    return plain_json(run_report(row, steps))


def _iso_ns(value: int) -> str | None:
    return iso(datetime.fromtimestamp(value / 1e9, tz=timezone.utc))


def _hour(seconds: int) -> str | None:
    return iso(datetime.fromtimestamp(seconds, tz=timezone.utc))


@router.get("/v1/projects/{project_id}/failures")
async def project_failures(
        project_id: str = ProjectId,
        since: str | None = Query(None, max_length=64, description="Window start (ISO-8601); default: 24 h before until."),
        until: str | None = Query(None, max_length=64, description="Window end (ISO-8601); default: now."),
        group_by: Literal["category", "tool", "agent", "fingerprint", "model"] = Query(
            "category", description="Group failed steps by category, tool, agent, fingerprint or model."),
        limit: int = Query(50, ge=1, le=500, description="At most this many groups, 1-500."),
        store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """What fails most in one project over a window (default: the last 24 hours).

    Failed steps (``failure_category`` set) grouped by ``group_by``, the group seen last
    first: runs and steps affected, first/last seen, ``share_of_runs`` (runs of the group /
    runs started in the window), an hourly ``trend`` (hours with failures), example run ids,
    the categories in the group and its newest message.  One query over ``steps``.
    """
    if not project_scope(principal, project_id):
        raise ApiError(404, f"project {project_id} not found")
    since_ns, until_ns = time_window(since, until, 24)
    rows, total = await run_in_threadpool(failure_groups, store, project_id, since_ns, until_ns, group_by, limit)
    groups = [{
        "key": row["key"] or None,
        "run_count": row["run_count"], "step_count": row["step_count"],
        "share_of_runs": round(row["run_count"] / total, 6) if total else None,
        "first_seen": iso(row["first_seen"]), "last_seen": iso(row["last_seen"]),
        "trend": [{"hour": _hour(hour), "steps": steps} for hour, steps in row["trend"]],
        "example_run_ids": row["example_run_ids"],
        "categories": sorted(row["categories"]),
        "sample_message": row["sample_message"] or None,
    } for row in rows]
    return plain_json({"project_id": project_id, "group_by": group_by, "since": _iso_ns(since_ns),
                       "until": _iso_ns(until_ns), "total_runs": total, "groups": groups})
