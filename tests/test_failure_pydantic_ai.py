"""Pydantic AI's own instrumentation, with a tool that asks for a retry (ModelRetry) and a tool
that raises: its spans land with the documented categories, retry chain and root cause."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic_ai")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from pydantic_ai import Agent, ModelRetry  # noqa: E402
from pydantic_ai.models.instrumented import InstrumentationSettings  # noqa: E402
from pydantic_ai.models.test import TestModel  # noqa: E402

from api_helpers import client  # noqa: E402


@pytest.fixture
def instrumented(server):
    provider = TracerProvider(resource=Resource.create({"service.name": "pai", "agenttrail.project": "pai"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.http_endpoint + "/v1/traces")))
    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    yield
    Agent.instrument_all(False)
    provider.shutdown()


def _run_ids(c) -> dict[str, dict]:
    runs = c.get("/v1/projects/pai/runs").json()["runs"]
    return {r["status"]: c.get(f"/v1/runs/{r['run_id']}").json() for r in runs}


def test_a_retried_tool_recovers_and_a_raising_tool_is_the_root_cause(server, instrumented):
    attempts = []
    retrying = Agent(TestModel(call_tools=["order_lookup"]), name="retrying-agent")

    @retrying.tool_plain
    def order_lookup(order_id: str) -> str:
        """Look up an order."""
        attempts.append(order_id)
        if len(attempts) == 1:
            raise ModelRetry("order id must look like A-1234")
        return "shipped"

    failing = Agent(TestModel(call_tools=["crm_write"]), name="failing-agent")

    @failing.tool_plain
    def crm_write(note: str) -> str:
        """Write a note to the CRM."""
        raise ConnectionError("CRM timed out after 30 s")

    retrying.run_sync("where is my order?")
    with pytest.raises(ConnectionError):
        failing.run_sync("log this")

    with client(server, None) as c:
        runs = _run_ids(c)
        rca = c.get(f"/v1/runs/{runs['error']['run_id']}/rca").json()
    ok, failed = runs["ok"], runs["error"]

    tools = [s for s in ok["steps"] if s["kind"] == "tool"]
    assert [(s["tool"], s["status"], s["failure_category"]) for s in tools] == [
        ("order_lookup", "error", "tool_schema_mismatch"), ("order_lookup", "unset", None)]
    assert ok["failure"]["category"] is None and ok["failure"]["root_cause_step_id"] is None
    (chain,) = ok["failure"]["retries"]
    assert chain["tool"] == "order_lookup" and chain["outcome"] == "recovered"

    (tool,) = [s for s in failed["steps"] if s["kind"] == "tool"]
    assert (tool["failure_category"], tool["failure_type"]) == ("timeout", "tool")
    assert failed["failure"]["category"] == "timeout"
    assert failed["failure"]["root_cause_step_id"] == tool["step_id"]  # deeper than the failed agent span
    assert rca["category"] == "timeout" and rca["hypotheses"][0]["evidence_ids"][0] == f"ev_step_{tool['step_id']}"
