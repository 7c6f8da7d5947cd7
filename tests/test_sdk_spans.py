"""The instrumentation API, observed through agenttrail.sdk.testing (real OTel SDK, in memory)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry.trace import StatusCode

from agenttrail import sdk
from agenttrail.sdk.testing import capture_spans


def _hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


def test_run_step_llm_carry_genai_attributes_and_nest():
    with capture_spans() as spans:
        with sdk.run(agent="support-agent", session="conv-7", runbook="support-flow",
                     agent_version="v2", environment="staging", user="u-1") as r:
            with r.step("order_lookup", tool="orders_api", input={"order_id": 42}):
                pass
            with r.llm(model="gpt-4o-mini", provider="openai") as c:
                c.set_usage(input_tokens=120, output_tokens=30, cache_read_tokens=100, reasoning_tokens=5)
                c.set_response(model="gpt-4o-mini-2024", finish_reasons=["stop"], response_id="resp-1")
    root = spans.runs()[0]
    assert root.name == "invoke_agent support-agent"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "support-agent"
    assert root.attributes["gen_ai.conversation.id"] == "conv-7"
    assert root.attributes["agenttrail.runbook"] == "support-flow"
    assert root.attributes["gen_ai.agent.version"] == "v2"
    assert root.attributes["deployment.environment.name"] == "staging"
    assert root.parent is None
    assert r.run_id == _hex_trace(root) and len(r.run_id) == 32 and r.run_id != "0" * 32

    tool = spans.tool_calls()[0]
    assert tool.name == "order_lookup"
    assert tool.attributes["gen_ai.tool.name"] == "orders_api"
    assert tool.parent.span_id == root.context.span_id

    chat = spans.by_operation("chat")[0]
    assert chat.name == "chat gpt-4o-mini"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 120
    assert chat.attributes["gen_ai.usage.output_tokens"] == 30
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert chat.attributes["gen_ai.usage.reasoning.output_tokens"] == 5
    assert chat.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert {_hex_trace(s) for s in spans} == {r.run_id}


def test_content_is_off_by_default_and_recorded_when_enabled():
    with capture_spans(capture_content=False) as spans:
        with sdk.run(agent="a") as r:
            with r.step("shorten", tool="httpx.post", input={"url": "https://secret"}) as s:
                s.set_output({"body": "private-result"})
            with r.llm(model="m", input=[{"role": "user", "content": "private-prompt"}]) as c:
                c.set_output([{"role": "assistant", "content": "private-answer"}])
    text = repr(spans.as_dicts())
    for private in ("secret", "private-result", "private-prompt", "private-answer"):
        assert private not in text
    assert "gen_ai.tool.call.arguments" not in spans.tool_calls()[0].attributes

    with capture_spans(capture_content=True) as spans:
        with sdk.run(agent="a") as r:
            with r.step("shorten", tool="httpx.post", input={"url": "https://x"}) as s:
                s.set_output({"status_code": 200})
            with r.llm(model="m", input=[{"role": "user", "content": "hi"}]) as c:
                c.set_output([{"role": "assistant", "content": "hello"}])
    tool = spans.tool_calls()[0].attributes
    assert tool["gen_ai.tool.call.arguments"] == '{"url":"https://x"}'
    assert tool["gen_ai.tool.call.result"] == '{"status_code":200}'
    chat = spans.by_operation("chat")[0].attributes
    assert '"hi"' in chat["gen_ai.input.messages"] and '"hello"' in chat["gen_ai.output.messages"]


def test_exception_is_recorded_with_error_type_and_still_raised():
    with capture_spans() as spans:
        with pytest.raises(TimeoutError):
            with sdk.run(agent="a") as r:
                with r.step("fetch", tool="http"):
                    raise TimeoutError("upstream took 30s")
    step, root = spans.tool_calls()[0], spans.runs()[0]
    for span in (step, root):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "TimeoutError"
        assert "upstream took 30s" in span.status.description
        assert [e.name for e in span.events] == ["exception"]


def test_custom_exception_error_type_is_fully_qualified():
    class QuotaExceeded(Exception):
        pass

    with capture_spans() as spans:
        with pytest.raises(QuotaExceeded):
            with sdk.step("pay", tool="billing"):
                raise QuotaExceeded()
    assert spans.tool_calls()[0].attributes["error.type"] == f"{__name__}.{QuotaExceeded.__qualname__}"


def test_retries_are_separate_step_spans_with_attempt_numbers():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            for attempt in (1, 2, 3):
                try:
                    with r.step("order_lookup", tool="orders_api", attempt=attempt):
                        if attempt < 3:
                            raise ConnectionError("reset")
                    break
                except ConnectionError:
                    continue
    calls = spans.tool_calls()
    assert [c.attributes["agenttrail.step.attempt"] for c in calls] == [1, 2, 3]
    assert [c.status.status_code for c in calls] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert len({c.context.span_id for c in calls}) == 3


def test_failure_decision_and_quality_signal_are_events_any_backend_keeps():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            with r.step("fetch", tool="external_api") as s:
                pass
            r.record_decision("tool_selection", "api", "fresh_data_required",
                              candidates=["api", "cache"], confidence=0.85, step=s)
            r.record_quality_signal("schema_valid", "full_match", True, weight=0.5)
            r.record_failure(failure_type="tool", failure_code="timeout",
                             message="External API timeout after 30s", step=s)
    root = spans.runs()[0]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "timeout"
    assert root.attributes["agenttrail.failure.type"] == "tool"
    [failure] = spans.events("agenttrail.failure")
    assert failure == {"agenttrail.failure.type": "tool", "agenttrail.failure.code": "timeout",
                       "agenttrail.failure.message": "External API timeout after 30s",
                       "agenttrail.failure.step_id": s.step_id}
    [decision] = spans.events("agenttrail.decision")
    assert decision["agenttrail.decision.selected"] == "api"
    assert decision["agenttrail.decision.candidates"] == ("api", "cache")
    assert decision["agenttrail.decision.confidence"] == 0.85
    assert decision["agenttrail.step_id"] == s.step_id
    [signal] = spans.events("agenttrail.quality_signal")
    assert signal["agenttrail.quality.value"] is True and signal["agenttrail.quality.weight"] == 0.5


def test_set_totals_uses_agenttrail_names_not_usage_and_ignores_bad_numbers():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            r.set_totals(tokens=123, cost_usd=0.01, input_tokens=-5, output_tokens=float("nan"))
            r.set_totals(tokens="lots", cost_usd=float("inf"))
    attrs = spans.runs()[0].attributes
    assert attrs["agenttrail.totals.total_tokens"] == 123
    assert attrs["agenttrail.totals.cost_usd"] == 0.01
    assert "agenttrail.totals.input_tokens" not in attrs and "agenttrail.totals.output_tokens" not in attrs
    assert not any(k.startswith("gen_ai.usage.") for k in attrs)


def test_non_tool_step_types_are_not_tool_calls():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            with r.step("plan", step_type="plan"):
                pass
            with r.step("search_kb", step_type="retrieval"):
                pass
    plan, search = spans.named("plan")[0], spans.named("search_kb")[0]
    assert "gen_ai.operation.name" not in plan.attributes and plan.attributes["agenttrail.step.type"] == "plan"
    assert search.attributes["gen_ai.operation.name"] == "retrieval"
    assert spans.tool_calls() == []


def test_decorators_sync_and_async_start_one_span_per_call():
    @sdk.run(agent="decorated")
    def handle(question):
        assert sdk.current_run() is not None
        return lookup(question)

    @sdk.step("lookup", tool="kb")
    def lookup(question):
        return question.upper()

    @sdk.run(agent="async-agent")
    async def handle_async(question):
        async with sdk.current_run().step("fetch", tool="http"):
            await asyncio.sleep(0)
        return await think(question)

    @sdk.llm(model="fake-1", provider="fake")
    async def think(question):
        return question[::-1]

    with capture_spans() as spans:
        assert handle("a") == "A" and handle("b") == "B"
        assert asyncio.run(handle_async("abc")) == "cba"
    runs = spans.runs()
    assert [s.name for s in runs] == ["invoke_agent decorated", "invoke_agent decorated", "invoke_agent async-agent"]
    assert len({_hex_trace(s) for s in runs}) == 3
    for child in spans.tool_calls() + spans.by_operation("chat"):
        parent = next(s for s in runs if _hex_trace(s) == _hex_trace(child))
        assert child.parent.span_id == parent.context.span_id
    assert sdk.current_run() is None


def test_concurrent_async_runs_stay_in_their_own_traces():
    async def agent(i):
        async with sdk.run(agent=f"agent-{i}") as r:
            for n in range(3):
                async with r.step(f"s{n}", tool="t"):
                    await asyncio.sleep(0)
            return r.run_id

    async def main():
        return await asyncio.gather(*(agent(i) for i in range(5)))

    with capture_spans() as spans:
        run_ids = asyncio.run(main())
    assert len(set(run_ids)) == 5
    for run_id in run_ids:
        in_run = spans.in_run(run_id)
        assert len(in_run) == 4
        root = [s for s in in_run if s.parent is None]
        assert len(root) == 1
        assert all(s.parent.span_id == root[0].context.span_id for s in in_run if s.parent)


def test_step_started_from_another_thread_lands_in_its_run():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            worker = threading.Thread(target=lambda: r.step("bg", tool="t").__enter__().__exit__(None, None, None))
            worker.start()
            worker.join()
    bg = spans.named("bg")[0]
    assert _hex_trace(bg) == r.run_id and bg.parent.span_id == spans.runs()[0].context.span_id


def test_nested_steps_follow_the_code():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            with r.step("outer", tool="t1"):
                with r.step("inner", tool="t2"):
                    pass
    outer, inner = spans.named("outer")[0], spans.named("inner")[0]
    assert inner.parent.span_id == outer.context.span_id


class _Hostile:
    def __str__(self):
        raise RuntimeError("no str for you")

    __repr__ = __str__


def test_hostile_values_never_raise_and_are_bounded():
    cyclic: dict = {}
    cyclic["self"] = cyclic
    errors_before = sdk.stats().instrumentation_errors
    with capture_spans(capture_content=True) as spans:
        with sdk.run(agent="x" * 10_000, session=_Hostile(), attributes={1: object(), "n": None, "big": 2**80}) as r:
            with r.step(None, tool="t", input=cyclic) as s:
                s.set_output(_Hostile())
                s.set_output("y" * 1_000_000)
                s.set_attribute("nan", float("nan"))
            with r.llm(model="m") as c:
                c.set_usage(input_tokens=2**70, output_tokens="many")
                c.set_response(finish_reasons=[None, 3])
            r.record_decision("d", "x", confidence=7.5)
            r.record_failure("not-a-type", _Hostile(), message=None)
            r.record_quality_signal(_Hostile(), "c", value="yes", weight="heavy")
    root = spans.runs()[0]
    assert len(root.name) <= 256
    assert root.attributes["big"] == str(2**80)
    step = spans.tool_calls()[0]
    assert step.name == "t"
    assert len(step.attributes["gen_ai.tool.call.result"]) <= 16_384
    assert step.attributes["gen_ai.tool.call.result"].endswith("…[truncated]")
    assert step.attributes["nan"] == "nan"
    chat = spans.by_operation("chat")[0]
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("None", "3")
    [failure] = spans.events("agenttrail.failure")
    assert failure["agenttrail.failure.code"] == "<unprintable _Hostile>"
    assert "agenttrail.decision.confidence" not in spans.events("agenttrail.decision")[0]
    assert sdk.stats().instrumentation_errors == errors_before  # every value was handled, none swallowed


def test_methods_after_the_span_ended_do_not_raise():
    with capture_spans() as spans:
        with sdk.run(agent="a") as r:
            pass
        r.set_totals(tokens=1)
        r.record_failure("tool", "late")
        with r.step("late-step", tool="t") as s:
            s.set_output({"a": 1})
    assert len(spans.runs()) == 1
    assert _hex_trace(spans.named("late-step")[0]) == r.run_id


def test_public_names_are_exactly_the_documented_ones():
    assert sorted(sdk.__all__) == sorted(
        ["APIConnectionError", "APIError", "APITimeoutError", "AgentTracer", "AgentTrailError",
         "AuthenticationError", "Client", "ExportStats", "InvalidRequestError", "LLMCall", "NotFoundError",
         "ObsClient", "PermissionDeniedError", "Run", "ServiceUnavailableError", "SpanScope", "Step",
         "Telemetry", "configure", "current_run", "flush", "llm", "run", "settings", "shutdown", "stats", "step"])
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_pytest_fixture_is_usable_as_a_plugin(tmp_path):
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["agenttrail.sdk.testing"]\n')
    (tmp_path / "test_user.py").write_text(
        "from agenttrail import sdk\n"
        "def test_it(agenttrail_spans):\n"
        "    with sdk.run(agent='u') as r:\n"
        "        with r.step('s', tool='t'):\n"
        "            pass\n"
        "    assert agenttrail_spans.tool_names() == ['t']\n"
        "    assert len(agenttrail_spans.runs()) == 1\n"
    )
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
