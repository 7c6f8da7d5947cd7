"""Failure analysis endpoints: a run's root-cause report and (per project) what fails most."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agenttrail.analysis.rca import build_report
from agenttrail.analysis.runs import analyse_run
from agenttrail.service.auth import Principal
from agenttrail.storage import Store

from .deps import get_store, reader, run_id_path
from .runs import _read_run
from .serialize import plain_json

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
    row, steps, _ = await _read_run(store, run_id, principal)
    return plain_json(run_report(row, steps))
