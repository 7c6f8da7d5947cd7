"""``GET /health``: is the server up, can it reach its store, and is ingest spooling?"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from agenttrail.storage import Store

from .deps import get_store

router = APIRouter(tags=["health"])


@router.get("/health")
def health(store: Store = Depends(get_store)):
    """200 ``{"status": "ok", "storage": "ok", "spool": {...}}``; ``status`` is "degraded" while
    the spool holds batches ClickHouse has not taken yet (still 200: ingest is accepting);
    503 naming the problem when storage is down.  ``spool`` (when ingest has one) is its
    backlog: batches, spans, bytes, oldest_age_s and max_bytes."""
    spool = store.spool_status()
    extra = {"spool": spool} if spool is not None else {}
    if store.ping():
        status = "degraded" if spool and spool["batches"] else "ok"
        return {"status": status, "storage": "ok", **extra}
    return JSONResponse({"status": "degraded", "storage": "unreachable",
                         "message": f"cannot query agenttrail tables in ClickHouse at {store.target.dsn.split('@')[-1]}",
                         **extra},
                        status_code=503)
