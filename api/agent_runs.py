"""``POST /v1/agent-runs``: seed 002's structured run document, stored as a run with steps.

Upsert by ``run_id``: posting the same run again replaces its steps.  The project is the
document's ``project_id``, else the ``project_id`` query parameter, else the API key's single
project, else ``default``.  Needs the ``ingest`` scope.  The mapping is in :mod:`.agent_run_model`.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from agenttrail.service.auth import Principal
from agenttrail.storage import Store, StorageUnavailable
from agenttrail.storage.events import delete_steps, load_steps

from .agent_run_model import AgentRun, to_steps
from .deps import get_store, ingester
from .errors import ApiError
from .events import restore_steps
from .body import inlined_schema, read_json

router = APIRouter(tags=["agent-runs"])
MAX_BODY_BYTES = 4 * 1024 * 1024
WRITE_TIMEOUT = 30.0
DEFAULT_PROJECT = "default"


async def _document(request: Request) -> AgentRun:
    payload = await read_json(request, MAX_BODY_BYTES)
    if not isinstance(payload, dict):
        raise ApiError(422, "body: must be a JSON object (an agent run document)")
    try:
        return AgentRun.model_validate(payload)
    except ValidationError as exc:
        details = [{"parameter": ".".join(str(p) for p in e["loc"]), "in": "body", "message": e["msg"]}
                   for e in exc.errors()[:20]]
        first = details[0] if details else {"parameter": "body", "message": "invalid"}
        raise ApiError(422, f"{first['parameter']}: {first['message']}", details=details) from None


def _store_run(store: Store, doc: AgentRun, project: str) -> dict:
    run, batch = to_steps(doc, project)
    ids = store.query("SELECT DISTINCT step_id FROM steps WHERE project_id = {p:String} AND run_id = {r:String}",
                      parameters={"p": project, "r": run}).result_rows
    stored = load_steps(store, {(project, run, row[0]) for row in ids}) if ids else {}
    if stored:  # an upsert: the new document replaces every step of the old one
        delete_steps(store, set(stored))
    try:
        store.writer.write(batch, timeout=WRITE_TIMEOUT)
    except Exception as exc:
        if stored:  # put the old run back: a failed request loses nothing
            restore_steps(store, list(stored.values()))
        if isinstance(exc, FutureTimeout):
            raise StorageUnavailable("storage did not confirm the write in time", retry_after=2) from None
        raise
    return {"run_id": run, "source_run_id": doc.run_id, "project_id": project, "steps": len(batch),
            "replaced": bool(stored)}


def _body_schema() -> dict:
    """OpenAPI schema of the body (read by hand, to bound its size before parsing)."""
    return {"required": True, "content": {"application/json": {"schema": inlined_schema(AgentRun)}}}


@router.post("/v1/agent-runs", status_code=201, openapi_extra={"requestBody": _body_schema()})
async def ingest_agent_run(request: Request,
                           project_id: str | None = Query(None, min_length=1, max_length=256,
                                                          description="Project, when the document has none."),
                           store: Store = Depends(get_store), principal: Principal = Depends(ingester)) -> dict:
    """Store one agent run document (seed 002): its steps, tool calls (under their step) and
    guardrail events (as guardrail steps) become steps, classified like spans.  ``run_id`` in
    the answer is the stored id for ``GET /v1/runs/{run_id}`` and ``/rca``."""
    doc = await _document(request)
    project = doc.project_id or project_id or principal.single_project or DEFAULT_PROJECT
    if not principal.allows(project):
        raise ApiError(403, f"this API key may not write to project {project!r}")
    return await run_in_threadpool(_store_run, store, doc, project)
