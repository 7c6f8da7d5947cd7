"""``GET /v1/metrics/overview``: headline figures over the last N hours."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.summary import overview

from .deps import get_store, project_scope, reader
from .params import text, time_window

router = APIRouter(tags=["metrics"])


@router.get("/v1/metrics/overview")
def metrics_overview(hours: int = Query(24, ge=1, le=24 * 366, description="Window length in hours (1–8784)."),
                     project_id: str | None = text("Only this project (default: every project your key reads)."),
                     store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Total runs, success rate (0–1, finished runs), top failing tools, p95 step latency,
    p95 run duration, tokens and cost over the last ``hours`` hours."""
    since_ns, until_ns = time_window(None, None, hours)
    body = overview(store, project_scope(principal, project_id), since_ns, until_ns)
    return {"hours": hours, "project_id": project_id, **body}
