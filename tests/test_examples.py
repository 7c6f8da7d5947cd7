"""Each example, run as a user would (its own process, the documented command), against a live server."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args, "--json"],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_support_agent_example_records_success_retry_and_failures(server, protocol):
    endpoint = server.grpc_endpoint if protocol == "grpc" else server.http_endpoint
    summary = run_example("support_agent.py", "--endpoint", endpoint, "--protocol", protocol,
                          "--api-url", server.api_url, "--project", "support")
    assert summary["flushed"] and summary["lost"] == 0 and summary["exported"] == 20
    by_session = {r["session"]: r for r in summary["runs"]}
    assert by_session["t-1"]["status"] == "ok" and by_session["t-1"]["steps"] == 7
    assert by_session["t-1"]["errors"] == 1  # the timed-out first attempt, retried
    assert by_session["t-2"]["status"] == "error" and by_session["t-2"]["steps"] == 8
    assert by_session["t-3"]["status"] == "error" and by_session["t-3"]["steps"] == 5

    from agenttrail.sdk import Client

    with Client(server.api_url) as client:
        run = client.run(by_session["t-1"]["run_id"])
        lookups = [s for s in run.steps if s.name == "order_lookup"]
        assert [s.status for s in lookups] == ["error", "unset"] or [s.status for s in lookups] == ["error", "ok"]
        failed = client.run(by_session["t-2"]["run_id"])
        root = next(s for s in failed.steps if s.depth == 0)
        assert root.error_type == "shipping_unavailable"
        assert [e["name"] for e in root.events].count("agenttrail.failure") == 1


def test_support_agent_example_survives_a_server_that_is_down(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    script = (f"import sys; sys.argv=['x']; sys.path.insert(0, {str(EXAMPLES)!r});"
              "from agenttrail import sdk; import support_agent as ex;"
              f"sdk.configure(endpoint='http://127.0.0.1:{port}', timeout=1);"
              "llm, tools = ex.FakeLLM(), ex.Tools();"
              "answers = [ex.handle(t, q, llm, tools) for t, q in ex.TICKETS];"
              "sdk.flush(10); s = sdk.stats();"
              "print(len(answers), s.spans_exported, s.spans_lost)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["3", "0", "20"]


@pytest.mark.skipif(importlib.util.find_spec("pydantic_ai") is None, reason="needs pydantic-ai-slim (test extra)")
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_pydantic_ai_example_with_only_the_standard_exporter(server, protocol):
    endpoint = "http://" + server.grpc_endpoint if protocol == "grpc" else server.http_endpoint
    summary = run_example("pydantic_ai_agent.py", "--endpoint", endpoint, "--protocol", protocol,
                          "--api-url", server.api_url, "--project", "pai")
    [run] = summary["runs"]
    assert run["status"] == "ok"
    assert run["llm_calls"] == 2 and run["tool_calls"] == 2
    assert sorted(run["tools"]) == ["order_lookup", "shipping_status"]
    assert run["total_tokens"] > 0
    assert "out for delivery" in summary["output"]  # TestModel called both tools
