"""End to end: SDK spans → OTLP request → mapping → writer → steps and runs rows in ClickHouse."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import Status, StatusCode

from agenttrail.receiver.mapping import MappingOptions, map_export_request
from mapping_helpers import Recorder


def _record_run():
    rec = Recorder({"agenttrail.project": "e2e", "deployment.environment.name": "staging"})
    with rec.span("invoke_agent support", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
        "gen_ai.conversation.id": "conv-1", "gen_ai.aggregated_usage.input_tokens": 3000,
        # OTel allows usage on agent spans too: it must not be added to the run again
        "gen_ai.usage.input_tokens": 3000, "gen_ai.usage.output_tokens": 300,
    }) as root:
        with rec.span("chat gpt-4o", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.input.messages": "x" * 100,
        }):
            pass
        with rec.span("execute_tool refund", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund",
            "gen_ai.tool.call.arguments": json.dumps({"amount": 30}), "blob": "é" * 100,
        }) as tool:
            tool.record_exception(PermissionError("over the refund limit"))
            tool.set_status(Status(StatusCode.ERROR, "declined"))
        with rec.span("chat claude", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-3-5-haiku-20241022",
            "gen_ai.usage.input_tokens": 2000, "gen_ai.usage.output_tokens": 200,
            "llm.cost.total": 0.01,
        }):
            pass
        root.set_status(Status(StatusCode.ERROR, "refund failed"))
    return rec.request(), format(root.get_span_context().trace_id, "032x")


def test_mapped_batch_is_stored_and_summarised(store):
    request, run_id = _record_run()
    result = map_export_request(request, options=MappingOptions(max_value_bytes=64))
    assert (result.rejected, len(result.batch)) == (0, 4)
    written = store.writer.write(result.batch, timeout=30)
    assert written.accepted == 4

    (run,) = store.query(
        "SELECT status, status_message, agent_name, session_id, environment, input_tokens, output_tokens, "
        "cache_read_tokens, total_tokens, cost_usd, llm_calls, tool_calls, error_count, tools, root_missing "
        "FROM runs FINAL WHERE project_id = {project:String} AND run_id = {run:String}",
        {"project": "e2e", "run": run_id},
    ).named_results()
    assert (run["status"], run["status_message"], run["agent_name"]) == ("error", "refund failed", "support")
    assert (run["session_id"], run["environment"]) == ("conv-1", "staging")
    # llm steps only: 1000 + 2000, never the agent span's 3000
    assert (run["input_tokens"], run["output_tokens"], run["cache_read_tokens"], run["total_tokens"]) == (
        3000, 300, 200, 3300)
    gpt4o = (800 * 2.5 + 200 * 1.25 + 100 * 10) / 1e6
    assert run["cost_usd"] == pytest.approx(gpt4o + 0.01)
    assert (run["llm_calls"], run["tool_calls"], run["error_count"], run["tools"], run["root_missing"]) == (
        2, 1, 2, ["refund"], 0)

    steps = {row["name"]: row for row in store.query(
        "SELECT name, kind, tool_arguments, attributes, truncated, cost_source, start_time, duration_ns, "
        "error_type, events.name AS event_names, events.attributes AS event_attributes "
        "FROM steps FINAL WHERE project_id = {project:String} AND run_id = {run:String}",
        {"project": "e2e", "run": run_id},
    ).named_results()}
    tool = steps["execute_tool refund"]
    assert json.loads(tool["tool_arguments"]) == {"amount": 30}
    assert tool["attributes"]["blob"] == "é" * 32 and tool["truncated"] == 1
    assert (tool["error_type"], tool["event_names"]) == ("PermissionError", ["exception"])
    assert tool["event_attributes"][0]["exception.message"] == "over the refund limit"
    assert "gen_ai.input.messages" not in steps["chat gpt-4o"]["attributes"]
    assert steps["chat claude"]["cost_source"] == "attribute"
    assert steps["chat gpt-4o"]["cost_source"] == "price_table"
    assert steps["invoke_agent support"]["attributes"]["gen_ai.aggregated_usage.input_tokens"] == "3000"
    assert all(row["duration_ns"] >= 0 and row["start_time"].year >= 2024 for row in steps.values())
