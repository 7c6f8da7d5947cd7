"""Mapping of spans from real instrumentations' attribute sets to step columns."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from agenttrail.receiver.mapping import MappingOptions, map_export_request
from mapping_helpers import Recorder, map_one, rows


def test_otel_genai_agent_run_maps_every_step():
    rec = Recorder({"deployment.environment.name": "prod"})
    with rec.span("invoke_agent support", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
        "gen_ai.conversation.id": "conv-9", "user.id": "u-1",
    }, kind=SpanKind.INTERNAL) as root:
        with rec.span("chat gpt-4o", {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_read.input_tokens": 400, "gen_ai.usage.reasoning.output_tokens": 50,
            "gen_ai.response.finish_reasons": ("tool_calls",),
        }, kind=SpanKind.CLIENT):
            pass
        with rec.span("execute_tool lookup", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
            "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": '{"order": "A-1"}',
        }):
            pass
        with rec.span("retrieval kb", {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}):
            pass
        with rec.span("embeddings text-embedding-3-small", {
            "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 500,
        }):
            pass
    result = map_export_request(rec.request())
    assert (result.rejected, result.errors, result.unmapped_usage_keys) == (0, [], set())
    steps = {row["name"]: row for row in rows(result)}
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")

    agent = steps["invoke_agent support"]
    assert (agent["run_id"], agent["step_id"], agent["parent_step_id"]) == (trace_id, root_id, "")
    assert (agent["kind"], agent["operation"], agent["agent_name"]) == ("agent", "invoke_agent", "support")
    assert (agent["session_id"], agent["user_id"], agent["environment"]) == ("conv-9", "u-1", "prod")
    assert (agent["project_id"], agent["service_name"]) == ("svc", "svc")
    assert (agent["scope_name"], agent["scope_version"], agent["span_kind"]) == ("tests.scope", "1.2.3", "INTERNAL")
    assert agent["duration_ns"] == agent["end_time"] - agent["start_time"] > 0

    chat = steps["chat gpt-4o"]
    assert chat["parent_step_id"] == root_id and chat["run_id"] == trace_id
    assert (chat["kind"], chat["model"], chat["provider"], chat["span_kind"]) == (
        "llm", "gpt-4o-2024-08-06", "openai", "CLIENT")
    assert (chat["input_tokens"], chat["output_tokens"], chat["cache_read_tokens"],
            chat["reasoning_tokens"], chat["total_tokens"]) == (1000, 200, 400, 50, 1200)
    # 600 uncached x 2.50 + 400 cached x 1.25 + 200 output x 10.00, per million
    assert chat["cost_source"] == "price_table"
    assert chat["cost_usd"] == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6)
    assert chat["finish_reasons"] == ["tool_calls"]
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == '["tool_calls"]'

    tool = steps["execute_tool lookup"]
    assert (tool["kind"], tool["tool_name"], tool["tool_call_id"]) == ("tool", "lookup", "call_1")
    assert json.loads(tool["tool_arguments"]) == {"order": "A-1"}
    assert (tool["cost_usd"], tool["cost_source"]) == (None, "")

    assert steps["retrieval kb"]["kind"] == "retrieval"
    embedding = steps["embeddings text-embedding-3-small"]
    assert embedding["kind"] == "embedding"
    assert embedding["cost_usd"] == pytest.approx(500 * 0.02 / 1e6)


def test_deprecated_genai_names():
    row = map_one({
        "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-3-5-sonnet-20241022",
        "gen_ai.usage.prompt_tokens": 300, "gen_ai.usage.completion_tokens": 30,
        "gen_ai.usage.cache_read_input_tokens": 100, "gen_ai.usage.cache_creation_input_tokens": 50,
    })
    assert (row["provider"], row["model"]) == ("anthropic", "claude-3-5-sonnet-20241022")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_creation_tokens"], row["total_tokens"]) == (300, 30, 100, 50, 330)
    assert row["cost_usd"] == pytest.approx((150 * 3 + 100 * 0.3 + 50 * 3.75 + 30 * 15) / 1e6)


def test_openinference_llm_tool_and_chain():
    rec = Recorder({"openinference.project.name": "phoenix-proj"})
    with rec.span("ChatOpenAI", {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
        "llm.system": "openai", "llm.token_count.prompt": 120, "llm.token_count.completion": 12,
        "llm.token_count.total": 132, "llm.token_count.prompt_details.cache_read": 20,
        "llm.token_count.completion_details.reasoning": 4, "llm.cost.total": 0.5,
        "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "hi",
        "input.value": '{"messages": ["hi"]}', "session.id": "s-1", "user.id": "u-2",
    }):
        pass
    with rec.span("get_weather", {
        "openinference.span.kind": "TOOL", "tool.name": "get_weather", "tool.id": "call_9",
        "tool.parameters": '{"type": "object"}', "input.value": '{"city": "Paris"}',
        "output.value": "sunny",
    }):
        pass
    for kind in ("CHAIN", "RETRIEVER", "RERANKER", "EMBEDDING", "AGENT", "GUARDRAIL", "EVALUATOR", "PROMPT"):
        with rec.span(kind.lower(), {"openinference.span.kind": kind}):
            pass
    steps = {row["name"]: row for row in rows(map_export_request(rec.request()))}
    llm = steps["ChatOpenAI"]
    assert llm["project_id"] == "phoenix-proj"
    assert (llm["kind"], llm["operation"], llm["model"], llm["provider"]) == ("llm", "llm", "gpt-4o-mini", "openai")
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"], llm["cache_read_tokens"],
            llm["reasoning_tokens"]) == (120, 12, 132, 20, 4)
    assert (llm["cost_usd"], llm["cost_source"]) == (0.5, "attribute")  # explicit cost wins
    assert (llm["session_id"], llm["user_id"]) == ("s-1", "u-2")
    assert "input.value" not in llm["attributes"]
    assert "llm.input_messages.0.message.content" not in llm["attributes"]
    tool = steps["get_weather"]
    assert (tool["kind"], tool["tool_name"], tool["tool_call_id"]) == ("tool", "get_weather", "call_9")
    assert json.loads(tool["tool_arguments"]) == {"city": "Paris"}
    assert tool["attributes"]["input.value"] == '{"city": "Paris"}'  # a tool's arguments are kept
    assert "output.value" not in tool["attributes"]
    kinds = {name: steps[name]["kind"] for name in
             ("chain", "retriever", "reranker", "embedding", "agent", "guardrail", "evaluator", "prompt")}
    assert kinds == {"chain": "workflow", "retriever": "retrieval", "reranker": "retrieval",
                     "embedding": "embedding", "agent": "agent", "guardrail": "guardrail",
                     "evaluator": "other", "prompt": "other"}


def test_openllmetry_workflow_task_agent_tool_and_llm():
    rec = Recorder()
    props = "traceloop.association.properties."
    with rec.span("plan.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "plan",
                                    props + "session_id": "sess-3", props + "user_id": "user-3"}):
        with rec.span("fetch.task", {"traceloop.span.kind": "task", "traceloop.entity.name": "fetch"}):
            pass
        with rec.span("planner.agent", {"traceloop.span.kind": "agent", "traceloop.entity.name": "planner"}):
            pass
        with rec.span("weather.tool", {
            "traceloop.span.kind": "tool", "traceloop.entity.name": "weather",
            "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"city": "Oslo"}}),
            "traceloop.entity.output": '"rain"',
        }):
            pass
        with rec.span("openai.chat", {
            "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 5, "llm.usage.total_tokens": 55,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hello",
            "gen_ai.completion.0.content": "hi", "gen_ai.completion.0.finish_reason": "stop",
        }):
            pass
    steps = {row["name"]: row for row in rows(map_export_request(rec.request()))}
    assert steps["plan.workflow"]["kind"] == "workflow"
    assert (steps["plan.workflow"]["session_id"], steps["plan.workflow"]["user_id"]) == ("sess-3", "user-3")
    assert (steps["fetch.task"]["kind"], steps["fetch.task"]["operation"]) == ("workflow", "task")
    assert (steps["planner.agent"]["kind"], steps["planner.agent"]["agent_name"]) == ("agent", "planner")
    tool = steps["weather.tool"]
    assert (tool["kind"], tool["tool_name"]) == ("tool", "weather")
    assert json.loads(tool["tool_arguments"]) == {"city": "Oslo"}  # @tool wrapper unwrapped
    assert "traceloop.entity.output" not in tool["attributes"]
    llm = steps["openai.chat"]
    assert (llm["kind"], llm["operation"], llm["provider"], llm["model"]) == (
        "llm", "chat", "openai", "gpt-4o-mini-2024-07-18")
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (50, 5, 55)
    assert llm["finish_reasons"] == ["stop"]
    assert llm["cost_usd"] == pytest.approx((50 * 0.15 + 5 * 0.6) / 1e6)
    assert not any(k.startswith(("gen_ai.prompt.0", "gen_ai.completion.0.content")) for k in llm["attributes"])
    assert llm["attributes"]["gen_ai.completion.0.finish_reason"] == "stop"


def test_pydantic_ai_aggregated_usage_stays_on_the_agent_attributes():
    rec = Recorder()
    with rec.span("invoke_agent weather_agent", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather_agent",
        "gen_ai.aggregated_usage.input_tokens": 900, "gen_ai.aggregated_usage.output_tokens": 90,
        "final_result": "It is sunny", "pydantic_ai.all_messages": "[]",
    }):
        with rec.span("chat gpt-4o", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 90,
            "gen_ai.usage.details.cache_read_tokens": 100, "gen_ai.usage.details.reasoning_tokens": 10,
            "gen_ai.usage.details.accepted_prediction_tokens": 3, "operation.cost": 0.0123,
        }):
            pass
    result = map_export_request(rec.request())
    steps = {row["kind"]: row for row in rows(result)}
    agent, llm = steps["agent"], steps["llm"]
    assert (agent["input_tokens"], agent["output_tokens"], agent["total_tokens"]) == (0, 0, 0)
    assert agent["attributes"]["gen_ai.aggregated_usage.input_tokens"] == "900"
    assert agent["unmapped_usage"] == {}
    assert "final_result" not in agent["attributes"] and "pydantic_ai.all_messages" not in agent["attributes"]
    assert (llm["input_tokens"], llm["cache_read_tokens"], llm["reasoning_tokens"]) == (900, 100, 10)
    assert (llm["cost_usd"], llm["cost_source"]) == (0.0123, "attribute")
    assert llm["unmapped_usage"] == {"gen_ai.usage.details.accepted_prediction_tokens": "3"}
    assert result.unmapped_usage_keys == {"gen_ai.usage.details.accepted_prediction_tokens"}


def test_kind_precedence_and_fallthrough():
    assert map_one({"gen_ai.operation.name": "chat", "openinference.span.kind": "TOOL"})["kind"] == "llm"
    unknown_op = map_one({"gen_ai.operation.name": "call_llm", "openinference.span.kind": "TOOL"})
    assert (unknown_op["kind"], unknown_op["operation"]) == ("tool", "call_llm")
    assert map_one({"openinference.span.kind": "WEIRD", "traceloop.span.kind": "tool"})["kind"] == "other"
    assert map_one({"llm.request.type": "rerank"})["kind"] == "retrieval"
    assert map_one({"llm.request.type": "embedding"})["kind"] == "embedding"
    assert (map_one({})["kind"], map_one({})["operation"]) == ("other", "")
    assert map_one({"gen_ai.operation.name": "create_agent"})["kind"] == "agent"
    assert map_one({"gen_ai.operation.name": "invoke_workflow"})["kind"] == "workflow"
    assert map_one({"gen_ai.operation.name": "generate_content"})["kind"] == "llm"
    assert map_one({"agenttrail.step.type": "guardrail"})["kind"] == "guardrail"
    assert map_one({"agenttrail.step.type": "decide"})["kind"] == "other"


def test_status_error_type_and_exception_event():
    rec = Recorder()
    with rec.span("typed", {"error.type": "RateLimitError"}) as span:
        span.set_status(Status(StatusCode.ERROR, "429 from provider"))
    with rec.span("raised", record_exception=True, set_status_on_exception=True):
        try:
            raise KeyError("missing")
        except KeyError as exc:
            import opentelemetry.trace as trace_api
            trace_api.get_current_span().record_exception(exc)
            trace_api.get_current_span().set_status(Status(StatusCode.ERROR, "missing key"))
    with rec.span("untyped") as span:
        span.set_status(Status(StatusCode.ERROR))
    with rec.span("fine") as span:
        span.set_status(Status(StatusCode.OK))
    with rec.span("unset"):
        pass
    steps = {row["name"]: row for row in rows(map_export_request(rec.request()))}
    assert (steps["typed"]["status"], steps["typed"]["status_message"], steps["typed"]["error_type"]) == (
        "error", "429 from provider", "RateLimitError")
    raised = steps["raised"]
    assert (raised["status"], raised["error_type"]) == ("error", "KeyError")
    assert raised["events.name"] == ["exception"]
    assert raised["events.attributes"][0]["exception.type"] == "KeyError"
    assert (steps["untyped"]["status"], steps["untyped"]["error_type"]) == ("error", "error")
    assert (steps["fine"]["status"], steps["fine"]["error_type"]) == ("ok", "")
    assert (steps["unset"]["status"], steps["unset"]["error_type"]) == ("unset", "")


def test_events_and_links():
    rec = Recorder()
    with rec.span("first") as first:
        pass
    ctx = first.get_span_context()
    with rec.span("second", links=[Link(ctx, {"link.kind": "follows", "n": 2})]) as span:
        span.add_event("checkpoint", {"step": 3, "ok": True})
    second = {row["name"]: row for row in rows(map_export_request(rec.request()))}["second"]
    assert second["links.trace_id"] == [format(ctx.trace_id, "032x")]
    assert second["links.span_id"] == [format(ctx.span_id, "016x")]
    assert second["links.attributes"] == [{"link.kind": "follows", "n": "2"}]
    assert second["events.name"] == ["checkpoint"]
    assert second["events.attributes"] == [{"step": "3", "ok": "true"}]
    assert second["start_time"] <= second["events.time"][0] <= second["end_time"]


def test_attribute_values_are_rendered_as_text():
    rec = Recorder()
    with rec.span("values", {"s": "plain", "i": -42, "f": 0.25, "b": False, "arr": ("a", "b"),
                             "ints": (1, 2), "unicode": "żółw 🐢"}):
        pass
    request = rec.request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    kv = span.attributes.add()  # the SDK cannot make these; OTLP clients in other languages can
    kv.key = "kv"
    inner = kv.value.kvlist_value.values.add()
    inner.key, inner.value.int_value = "x", 1
    raw = span.attributes.add()
    raw.key, raw.value.bytes_value = "raw", b"\x00\xff"
    empty = span.attributes.add()
    empty.key = "empty"
    (row,) = rows(map_export_request(request))
    assert row["attributes"] == {"s": "plain", "i": "-42", "f": "0.25", "b": "false", "arr": '["a","b"]',
                                 "ints": "[1,2]", "unicode": "żółw 🐢", "kv": '{"x":1}', "raw": "AP8=",
                                 "empty": ""}


def test_project_resolution():
    assert map_one({}, resource={"agenttrail.project": "billing"})["project_id"] == "billing"
    assert map_one({}, resource={"service.name": "checkout"})["project_id"] == "checkout"
    hostile = map_one({}, resource={"agenttrail.project": "a b/../\n" + "x" * 500})["project_id"]
    assert hostile.startswith("a_b_.._") and len(hostile) == 128
    rec = Recorder({"agenttrail.project": "from-resource"})
    with rec.span("s"):
        pass
    (row,) = rows(map_export_request(rec.request(), project="from-key"))
    assert row["project_id"] == "from-key"


def test_missing_service_name_defaults_to_unknown_service():
    rec = Recorder()
    with rec.span("s"):
        pass
    request = rec.request()
    attributes = request.resource_spans[0].resource.attributes
    kept = [kv for kv in attributes if kv.key != "service.name"]
    del attributes[:]
    attributes.extend(kept)
    (row,) = rows(map_export_request(request))
    assert (row["service_name"], row["project_id"]) == ("unknown_service", "unknown_service")


def test_options_are_validated():
    with pytest.raises(ValueError, match="max_value_bytes"):
        MappingOptions(max_value_bytes=0)
    with pytest.raises(ValueError, match="max_attributes"):
        MappingOptions(max_attributes=True)
    with pytest.raises(ValueError, match="prices must be a PriceTable"):
        MappingOptions(prices="prices.yaml")
    assert MappingOptions(capture_content_projects={"my team"}).captures("my_team")
