"""``GET /v1/projects/{project_id}/compare``: two cohorts of runs, with significance figures."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.compare import compare_cohorts

from .deps import get_store, reader
from .projects import ProjectId
from .run_list import RunFilters, run_filters
from .signals import readable_project, window_json, with_default_window

router = APIRouter(tags=["projects"])


def _cohort_json(filters: RunFilters, figures: dict) -> dict:
    given = {name: value for name, value in filters.values.items() if value is not None}
    return {"filters": given, **window_json(filters), **figures}


@router.get("/v1/projects/{project_id}/compare")
def compare(project_id: str = ProjectId,
            a: RunFilters = Depends(run_filters("a_", "Cohort A (the baseline): ")),
            b: RunFilters = Depends(run_filters("b_", "Cohort B: ")),
            alpha: float = Query(0.05, gt=0, lt=0.5, allow_inf_nan=False,
                                 description="Significance level of every test (0–0.5, default 0.05)."),
            store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Compare cohort A (the baseline) with cohort B: success rate, p50/p95 duration, tokens
    and cost per run, tool usage and failure categories, each with ``difference`` (B − A) and
    a significance figure — a two-proportion z-test for rates, a Mann–Whitney U test for
    per-run distributions — and ``significant`` (p < ``alpha``).

    Each cohort takes every run-list filter with an ``a_`` or ``b_`` prefix (``a_agent_version``,
    ``b_model``, ``a_since`` …); a cohort's window defaults to the 24 hours before its ``until``
    (default: now).  ``prompt_regression.detected`` is true when a failure category rose
    significantly from A to B (Bonferroni-corrected over the categories compared).
    """
    scope = readable_project(principal, project_id)
    a, b = with_default_window(a, "a_"), with_default_window(b, "b_")
    body = compare_cohorts(store, a.restricted(scope), b.restricted(scope), alpha)
    return {"project_id": project_id, "alpha": alpha, "a": _cohort_json(a, body.pop("a")),
            "b": _cohort_json(b, body.pop("b")), **body}
