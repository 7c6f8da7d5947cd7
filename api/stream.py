"""``GET /v1/runs/stream``: new and changed runs as Server-Sent Events, for live run lists.

Every ``interval`` seconds the stream asks storage which runs had spans committed lately and
sends each one whose stored version it has not sent yet (and that matches the filters) as an
``event: run`` with the run list's JSON.  A run therefore arrives when it starts, again as
its steps arrive, and once more when it finishes.  A comment line every 15 seconds keeps
proxies from closing a quiet stream.  The stream ends when the client goes away or the server
stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.changes import current_runs, recent_versions

from .deps import get_store, project_scope, reader
from .errors import ApiError
from .params import text
from .run_list import RunFilters, run_filters, with_verdicts

router = APIRouter(tags=["runs"])
log = logging.getLogger("agenttrail")

# Spans are stamped on arrival and become visible at their commit, up to a few seconds later
# under load: each poll looks back this far so that late commits are still seen.
LOOKBACK_MS = 30_000
MAX_CHANGES = 1000      # runs examined per poll; more arrive on the next polls
MAX_STREAMS = 64        # open streams per server: each polls storage
KEEPALIVE_SECONDS = 15.0


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _poll(store: Store, projects, filters, since_ms: int, sent: dict) -> tuple[list[dict], dict]:
    """Runs changed since ``since_ms`` not yet sent at their current version, and the versions
    of every run in the window (what the next poll compares with)."""
    touched = recent_versions(store, projects, since_ms, MAX_CHANGES)
    versions = {(p, r): v for p, r, v, _ in touched}
    changed = [key for key, version in versions.items() if sent.get(key) != version]
    rows = current_runs(store, filters, changed)
    return (with_verdicts(store, rows) if rows else []), versions


@router.get("/v1/runs/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_runs(request: Request, project_id: str | None = text("Only this project."),
                      params: RunFilters = Depends(run_filters()),
                      interval: float = Query(1.0, ge=0.2, le=60, allow_inf_nan=False,
                                              description="Seconds between checks for changes (0.2–60)."),
                      store: Store = Depends(get_store), principal: Principal = Depends(reader)):
    """New and changed runs as Server-Sent Events (``text/event-stream``), with the run list's
    filters.  ``event: ready`` first, then ``event: run`` with a run's list JSON each time it
    starts, gains steps or finishes.  Only runs of projects your key may read are sent.

    ``curl -N -H 'x-api-key: …' 'http://localhost:8000/v1/runs/stream?status=error'``
    """
    state = request.app.state
    if state.open_streams >= MAX_STREAMS:
        raise ApiError(503, f"too many open run streams (at most {MAX_STREAMS})", headers={"Retry-After": "5"})
    projects = project_scope(principal, project_id)
    filters = params.restricted(projects)
    stopping = state.stopping

    async def events():
        # Counted from the generator's first step: a response that never started never ran
        # the ``finally`` that uncounts it.
        state.open_streams += 1
        try:
            opened_ms = int(time.time() * 1000)
            sent: dict = {}
            yield "retry: 2000\n\n" + _sse("ready", {"interval": interval})
            last_write = time.monotonic()
            while not stopping.is_set():
                now_ms = int(time.time() * 1000)
                # The first poll reaches back a little, so a run committed while the client read
                # its first page is not lost between the two requests.
                since_ms = max(opened_ms - 5_000, now_ms - LOOKBACK_MS)
                try:
                    runs, sent = await run_in_threadpool(_poll, store, projects, filters, since_ms, sent)
                except Exception:  # storage unreachable for a moment: the next poll tries again
                    log.warning("run stream poll failed", exc_info=True)
                    runs = []
                if runs:
                    yield "".join(_sse("run", run) for run in runs)
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                    yield ": keepalive\n\n"
                    last_write = time.monotonic()
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline and not stopping.is_set():
                    if await request.is_disconnected():
                        return
                    await asyncio.sleep(min(0.1, interval))
        finally:
            state.open_streams -= 1

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
