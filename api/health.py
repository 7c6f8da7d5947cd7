"""``GET /health``: is the server up, can it reach its store, and is ingest spooling?"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from agenttrail.storage import Store

from .deps import get_store

router = APIRouter(tags=["health"])

JOURNAL_LAG_S = 30.0
"""Seconds the ingest journal's oldest batch may wait for its commit before /health says so."""


def _backlogged(spool: dict) -> bool:
    # Quarantined records are spans outside the store until a restart retries them.
    if spool["failing"] or spool["quarantined_batches"]:
        return True
    return spool["batches"] > 0 and (not spool["journal"] or spool["oldest_age_s"] > JOURNAL_LAG_S)


@router.get("/health")
def health(store: Store = Depends(get_store)):
    """200 ``{"status": "ok", "storage": "ok", "spool": {...}}``; ``status`` is "degraded" while
    the spool holds batches ClickHouse cannot take (still 200: ingest is accepting) — as the
    ingest journal it always holds the latest ones for a moment, so there it is degraded when
    draining fails or its oldest batch waited more than ``JOURNAL_LAG_S``, and it is degraded
    while records ClickHouse refused are set aside in the spool's quarantine; 503 naming the
    problem when storage is down.  ``spool`` (when ingest has one) is its backlog: batches,
    spans, bytes, oldest_age_s, max_bytes, quarantined_batches, quarantined_spans, journal and
    failing."""
    spool = store.spool_status()
    extra = {"spool": spool} if spool is not None else {}
    if store.ping():
        status = "degraded" if spool and _backlogged(spool) else "ok"
        return {"status": status, "storage": "ok", **extra}
    return JSONResponse({"status": "degraded", "storage": "unreachable",
                         "message": f"cannot query agenttrail tables in ClickHouse at {store.target.dsn.split('@')[-1]}",
                         **extra},
                        status_code=503)
