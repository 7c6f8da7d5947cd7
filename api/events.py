"""``POST /v1/events``: seed 000's event API for agents without OpenTelemetry.

Body ``{"events": [...]}`` with ``run.start``, ``step.start``, ``step.end``, ``run.end`` items
(see :mod:`.event_model`).  Answer ``{"ingested", "failed", "errors": [{"index", "reason"}],
"warnings", "run_ids"}``: bad events fail alone, out-of-order ones are applied with a warning;
``run_ids`` maps each run id sent to the stored 32-hex id.  The rows
go through the same storage writer as OTLP spans (see :mod:`.event_mapping`).
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from agenttrail.service.auth import Principal
from agenttrail.storage import StepBatch, Store, StorageUnavailable
from agenttrail.storage.events import delete_steps, load_steps, run_projects

from .deps import get_store, ingester
from .errors import ApiError
from .event_mapping import EventMerger
from .event_model import Event, parse_event, root_hex, run_hex, step_hex
from .body import inlined_schema, read_json

router = APIRouter(tags=["events"])

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_EVENTS = 1000
WRITE_TIMEOUT = 30.0
log = logging.getLogger(__name__)


async def _read_events(request: Request):
    payload = await read_json(request, MAX_BODY_BYTES)
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise ApiError(422, "events: must be a list of events",
                       details=[{"parameter": "events", "in": "body", "message": "must be a list"}])
    if len(events) > MAX_EVENTS:
        raise ApiError(413, f"at most {MAX_EVENTS} events per request, got {len(events)}",
                       details=[{"parameter": "events", "in": "body", "message": f"at most {MAX_EVENTS}"}])
    return events


def _ingest(store: Store, principal: Principal, items: list) -> dict:
    errors, parsed = [], []
    for index, item in enumerate(items):
        try:
            parsed.append((index, parse_event(item)))
        except ValueError as exc:
            errors.append({"index": index, "reason": str(exc)[:500]})
    projects = _projects(store, principal, parsed)
    accepted: list[tuple[int, Event, str, str]] = []
    for index, event in parsed:
        run = run_hex(event.run_id)
        project = event.project_id or projects.get(run)
        if project is None:
            errors.append({"index": index, "reason": "project_id: unknown for this run; send it on "
                                                     "run.start or use an API key bound to one project"})
        elif not principal.allows(project):
            errors.append({"index": index, "reason": f"this API key may not write to project {project!r}"})
        else:
            accepted.append((index, event, project, run))
    keys = {(p, r, root_hex(r) if e.type.startswith("run.") else step_hex(r, e.step_id))
            for _, e, p, r in accepted}
    keys |= {(p, r, root_hex(r)) for _, _, p, r in accepted}  # to copy run fields onto steps
    stored = load_steps(store, keys)
    merger = EventMerger(stored)
    for index, event, project, run in accepted:
        merger.apply(index, event, project, run)
    batch = merger.batch()
    rewritten = set(stored) & set(merger.rows)
    if rewritten:
        delete_steps(store, rewritten)
    try:
        store.writer.write(batch, timeout=WRITE_TIMEOUT)
    except Exception as exc:
        if rewritten:  # put back what was deleted, so that a failed request loses nothing
            restore_steps(store, [stored[key] for key in rewritten])
        if isinstance(exc, FutureTimeout):
            raise StorageUnavailable("storage did not confirm the write in time", retry_after=2) from None
        raise
    errors.sort(key=lambda e: e["index"])
    run_ids = {e.run_id: r for _, e, _, r in accepted}
    return {"ingested": len(accepted), "failed": len(errors), "errors": errors, "warnings": merger.warnings,
            "run_ids": run_ids}


def restore_steps(store: Store, rows: list[dict]) -> None:
    """Write back steps deleted for a replacement whose own write failed: the request fails,
    but the run it meant to replace is not lost."""
    batch = StepBatch()
    for row in rows:
        batch.append(**row)
    try:
        store.writer.write(batch, timeout=WRITE_TIMEOUT)
    except Exception:  # the original error is what the client needs to see
        log.warning("could not restore %d steps after a failed event write", len(rows))


def _projects(store: Store, principal: Principal, parsed: list) -> dict[str, str]:
    """Each run's project: from run.start (any event naming it), else the store, else the key."""
    found: dict[str, str] = {}
    for _, event in sorted(parsed, key=lambda p: p[1].type != "run.start"):
        if event.project_id:
            found.setdefault(run_hex(event.run_id), event.project_id)
    missing = sorted({run_hex(e.run_id) for _, e in parsed} - found.keys())
    found.update(run_projects(store, missing, principal.projects))
    if principal.single_project:
        for run in missing:
            found.setdefault(run, principal.single_project)
    return found


def _body_schema() -> dict:
    """OpenAPI schema of the body (read by hand so that one bad event cannot fail the batch)."""
    events = {"type": "array", "maxItems": MAX_EVENTS, "items": inlined_schema(Event)}
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["events"], "properties": {"events": events}}}}}


@router.post("/v1/events", openapi_extra={"requestBody": _body_schema()})
async def ingest_events(request: Request, store: Store = Depends(get_store),
                        principal: Principal = Depends(ingester)) -> dict:
    """Ingest a batch of up to 1000 events (4 MiB): ``run.start``, ``step.start``,
    ``step.end``, ``run.end``.  Needs the ``ingest`` scope.

    Ids may be UUIDs or any string: a 32-hex or UUID ``run_id`` is kept (dashes dropped),
    anything else maps to ``sha256("run:" + id)[:32]``; a 16-hex ``step_id`` is kept, anything
    else maps to ``sha256("step:" + run hex + ":" + id)[:16]``.  ``run_ids`` in the answer
    maps each run id sent to the stored one, for ``GET /v1/runs/{run_id}``.
    """
    items = await _read_events(request)
    return await run_in_threadpool(_ingest, store, principal, items)
