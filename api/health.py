"""``GET /health``: is the server up, and can it reach its store?"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from agenttrail.storage import Store

from .deps import get_store

router = APIRouter(tags=["health"])


@router.get("/health")
def health(store: Store = Depends(get_store)):
    """200 ``{"status": "ok", "storage": "ok"}``; 503 naming the problem when storage is down."""
    if store.ping():
        return {"status": "ok", "storage": "ok"}
    return JSONResponse({"status": "degraded", "storage": "unreachable",
                         "message": f"cannot query agenttrail tables in ClickHouse at {store.target.dsn.split('@')[-1]}"},
                        status_code=503)
