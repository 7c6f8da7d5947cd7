"""``GET /v1/sessions``: runs grouped by session / conversation, with totals."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from agenttrail.service.auth import Principal
from agenttrail.storage import Store
from agenttrail.storage.queries import RunFilter, list_sessions

from .deps import get_store, project_scope, reader
from .params import bad_parameter, decode_cursor, encode_cursor, limit_query, text, time_window
from .serialize import cost_value, iso

router = APIRouter(tags=["sessions"])


def _after(cursor: str | None):
    if cursor is None:
        return None
    payload = decode_cursor(cursor)
    after = payload.get("session")
    if not (isinstance(after, list) and len(after) == 3 and isinstance(after[0], int)
            and not isinstance(after[0], bool) and -2**63 <= after[0] < 2**63
            and all(isinstance(a, str) and len(a) <= 1024 for a in after[1:])):
        raise bad_parameter("cursor", "is not a sessions cursor returned by this API")
    return tuple(after)


def _session_json(row: dict) -> dict:
    return {
        "session_id": row["session_id"], "project_id": row["project_id"], "run_count": row["run_count"],
        "ok_runs": row["ok_runs"], "error_runs": row["error_runs"], "in_progress_runs": row["in_progress_runs"],
        "first_started_at": iso(row["first_started_at"]), "last_started_at": iso(row["last_started_at"]),
        "last_seen": iso(row["last_seen"]), "duration_ms": row["duration_ms"], "step_count": row["step_count"],
        "llm_calls": row["llm_calls"], "tool_calls": row["tool_calls"], "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"], "total_tokens": row["total_tokens"],
        "cost_usd": cost_value(row["cost_usd"]), "agents": sorted(a for a in row["agents"] if a),
        "run_ids": row["run_ids"],
    }


@router.get("/v1/sessions")
def sessions(project_id: str | None = text("Only this project."),
             agent: str | None = text("Only runs of this agent."),
             since: str | None = Query(None, max_length=64, description="Runs started at or after (ISO-8601)."),
             until: str | None = Query(None, max_length=64, description="Runs started before (ISO-8601)."),
             limit: int = limit_query(),
             cursor: str | None = Query(None, max_length=512, description="next_cursor of the previous page."),
             store: Store = Depends(get_store), principal: Principal = Depends(reader)) -> dict:
    """Sessions (runs sharing a session / conversation id), most recently active first.

    Each session carries run counts by status, first/last start, summed duration, steps,
    tokens and cost, the agents involved and up to 10 of its run ids.
    """
    since_ns, until_ns = time_window(since, until, None)
    filters = RunFilter(projects=project_scope(principal, project_id), agent=agent,
                        since_ns=since_ns, until_ns=until_ns)
    rows, last = list_sessions(store, filters, _after(cursor), limit)
    next_cursor = encode_cursor({"session": list(last)}) if last else None
    return {"sessions": [_session_json(r) for r in rows], "next_cursor": next_cursor}
