"""Run endpoints: the filtered list, one run, its steps and its timeline."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from agenttrail.analysis.runs import analyse_run
from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.runs import get_run, get_run_steps, get_steps
from agenttrail.validator.service import latest_validations, validations_of_run

from .deps import get_store, project_scope, reader, run_id_path, visible_projects
from .errors import ApiError
from .params import text
from .run_list import RunListParams, run_list
from .run_report import render_report
from .signals import run_signals
from .serialize import plain_json, run_json, step_json
from .timeline import build_timeline

router = APIRouter(tags=["runs"])


@router.get("/v1/runs")
def list_runs(project_id: str | None = text("Only this project."),
              params: RunListParams = Depends(), store: Store = Depends(get_store),
              principal: Principal = Depends(reader)) -> dict:
    """Runs, newest first, filtered; ``next_cursor`` fetches the next page (null on the last).

    Pages are keyset-paginated on (sort value, run id): runs arriving while you page do not
    shift or repeat rows.  Only runs of projects your key may read are listed.
    """
    return run_list(store, project_scope(principal, project_id), params)


def _row_and_validation(store: Store, run_id: str, projects, with_validation: bool):
    row = get_run(store, run_id, projects)
    if row is None or not with_validation:
        return row, None
    return row, latest_validations(store, row["project_id"], [run_id]).get(run_id)


async def read_run(store: Store, run_id: str, principal: Principal, *, with_validation: bool = False):
    """The visible run row, its steps in execution order and (when asked) its latest validation.

    The steps are read side by side with the run row rather than after it: each read is
    mostly ClickHouse's fixed per-query cost, and one after the other they added up.
    """
    projects = visible_projects(principal)
    (row, validation), steps = await asyncio.gather(
        run_in_threadpool(_row_and_validation, store, run_id, projects, with_validation),
        run_in_threadpool(get_run_steps, store, run_id, projects))
    if row is None:
        raise ApiError(404, f"run {run_id} not found")
    if not steps or any(step["project_id"] != row["project_id"] for step in steps):
        # The two reads picked different rows (the same trace id arrived under another
        # project in between): read the steps of the row being returned.
        steps = await run_in_threadpool(get_steps, store, row["project_id"], run_id)
    return row, steps, validation


@router.get("/v1/runs/{run_id}")
async def run_detail(run_id: str = Depends(run_id_path), store: Store = Depends(get_store),
                     principal: Principal = Depends(reader)) -> dict:
    """One run with its totals, its steps in execution order, its latest validation, and the
    decisions and quality signals its steps recorded (``agenttrail.decision`` /
    ``agenttrail.quality_signal`` events), in time order.

    ``run_id`` is the trace id (32 hex) or its UUID form.  ``validation`` is null until the
    run has been validated against a runbook.  ``failure`` (null when nothing failed, was
    retried or looped) names the category, the root-cause step, the failed steps, retry
    chains and loops (docs/failures.md).
    """
    row, steps, validation = await read_run(store, run_id, principal, with_validation=True)
    body = run_json(row)
    body["steps"] = [step_json(s) for s in steps]
    body["validation"] = validation
    body["failure"] = analyse_run(row, steps)
    body["decisions"], body["quality_signals"] = run_signals(steps)
    return plain_json(body)


@router.get("/v1/runs/{run_id}/steps")
async def run_steps(run_id: str = Depends(run_id_path),
                    kind: Literal["llm", "tool", "agent", "retrieval", "embedding", "workflow", "guardrail",
                                  "other"] | None = Query(None, description="Only steps of this kind."),
                    status: Literal["ok", "error", "unset"] | None = Query(None, description="Only steps with this status."),
                    store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """The steps of one run in execution order (``index`` counts over all steps, before filtering)."""
    row, steps, _ = await read_run(store, run_id, principal)
    selected = [s for s in steps if (kind is None or s["kind"] == kind)
                and (status is None or s["status"] == status)]
    return plain_json({"run_id": run_id, "project_id": row["project_id"], "steps": [step_json(s) for s in selected]})


@router.get("/v1/runs/{run_id}/timeline")
async def run_timeline(run_id: str = Depends(run_id_path), store: Store = Depends(get_store),
                       principal: Principal = Depends(reader)) -> dict:
    """The step tree of one run with each step's ``offset_ms`` (from the first step's start),
    ``duration_ms`` and ``failure_category``, and the run's ``failure`` block — what a waterfall
    chart needs."""
    row, steps, _ = await read_run(store, run_id, principal)
    body = build_timeline(row, steps)
    body["failure"] = analyse_run(row, steps)  # marks the root cause and retries on the waterfall
    return plain_json(body)


@router.get("/v1/runs/{run_id}/report", response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}},
                             "description": "The report, as Markdown."}})
async def run_report(run_id: str = Depends(run_id_path), store: Store = Depends(get_store),
                     principal: Principal = Depends(reader)) -> PlainTextResponse:
    """One run as a Markdown report (seed 001's run_report.md): headline, steps by kind, tool
    calls, retry attempts and outcomes, failure classification, validations (up to 20, newest
    first), decisions and quality signals, terminal status."""
    row, steps, _ = await read_run(store, run_id, principal)
    validations = await run_in_threadpool(validations_of_run, store, row["project_id"], row["run_id"])
    decisions, signals = run_signals(steps)
    text = render_report(run_json(row), steps, analyse_run(row, steps), validations, decisions, signals)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
