"""Test data and clients for the REST API tests: runs written through the real storage writer."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from agenttrail.storage import StepBatch

READ_A, READ_B, ADMIN, INGEST_A = "read-key-a-123", "read-key-b-456", "admin-key-789", "ingest-key-a-1"
KEYS = (
    {"key": READ_A, "scopes": ["read"], "projects": ["proj-a"]},
    {"key": READ_B, "scopes": ["read"], "projects": ["proj-b"]},
    {"key": ADMIN, "scopes": ["admin"], "projects": ["*"]},
    {"key": INGEST_A, "scopes": ["ingest", "read"], "projects": ["proj-a"]},
)
_span = itertools.count(1)


def ns(value: datetime) -> int:
    """Nanoseconds since the epoch."""
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def add_run(store, project: str, start: datetime, *, status: str = "ok", agent: str = "support-agent",
            session: str = "", tools=(("order_lookup", "ok", 40),), model: str = "gpt-4o-mini",
            tokens=(100, 20), cost: float | None = 0.002, root: bool = True, service: str = "svc",
            run_id: str | None = None, root_attributes: dict | None = None, root_events=()) -> str:
    """Write one run (root agent step, one llm step, the given tool steps); return its run id.

    A tool is (name, status, latency ms) or (…, failure category).  ``root_attributes`` and ``root_events`` ((name, attributes) pairs, as stored: str → str)
    go on the root step."""
    run_id = run_id or uuid.uuid4().hex
    root_id = f"{next(_span):016x}"
    batch = StepBatch()
    common = dict(project_id=project, run_id=run_id, service_name=service, agent_name=agent, session_id=session)
    offset = 10
    llm_start = start + timedelta(milliseconds=offset)
    batch.append(**common, step_id=f"{next(_span):016x}", parent_step_id=root_id, name=f"chat {model}",
                 kind="llm", model=model, provider="openai", status="ok", start_time=ns(llm_start),
                 end_time=ns(llm_start + timedelta(milliseconds=200)), duration_ns=200_000_000,
                 input_tokens=tokens[0], output_tokens=tokens[1], total_tokens=sum(tokens), cost_usd=cost)
    offset += 210
    for tool, tool_status, latency, *category in tools:
        t = start + timedelta(milliseconds=offset)
        batch.append(**common, step_id=f"{next(_span):016x}", parent_step_id=root_id, name=f"execute_tool {tool}",
                     kind="tool", tool_name=tool, status=tool_status, start_time=ns(t),
                     error_type="TimeoutError" if tool_status == "error" else "",
                     failure_category=category[0] if category else "",
                     end_time=ns(t + timedelta(milliseconds=latency)), duration_ns=latency * 1_000_000,
                     tool_arguments='{"id": 1}')
        offset += latency + 5
    if root:
        batch.append(**common, step_id=root_id, name=f"invoke_agent {agent}", kind="agent", status=status,
                     start_time=ns(start), end_time=ns(start + timedelta(milliseconds=offset)),
                     duration_ns=offset * 1_000_000, attributes=dict(root_attributes or {}),
                     **{"events.time": [ns(start) + i for i in range(len(root_events))],
                        "events.name": [name for name, _ in root_events],
                        "events.attributes": [dict(attrs) for _, attrs in root_events]})
    store.writer.write(batch)
    return run_id


def hours_ago(hours: float) -> datetime:
    """Now minus ``hours``, UTC."""
    return datetime.now(timezone.utc) - timedelta(hours=hours)


def client(server, key: str | None = ADMIN) -> httpx.Client:
    """An HTTP client for the server's REST API, sending ``key``."""
    headers = {"x-api-key": key} if key else {}
    return httpx.Client(base_url=server.api_url, headers=headers, timeout=30)
