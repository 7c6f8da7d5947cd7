"""SDK → running agenttrail server (gRPC and HTTP) → REST API → Client, in the real engine."""

from __future__ import annotations

import pytest

from agenttrail import sdk
from agenttrail.sdk import AgentTracer, Client, ObsClient, errors

KEYS = (
    {"key": "demo-key-123456", "scopes": ["ingest", "read"], "projects": ["demo"], "name": "demo"},
    {"key": "other-key-123456", "scopes": ["ingest", "read"], "projects": ["other"], "name": "other"},
)


@pytest.fixture(autouse=True)
def _stop_pipeline():
    yield
    sdk.shutdown()


def endpoint(server, protocol: str) -> str:
    return server.grpc_endpoint if protocol == "grpc" else server.http_endpoint


def support_run(capture: bool = False) -> sdk.Run:
    """Plan → order lookup (fails once, retried) → shipping status → model answer."""
    with sdk.run(agent="support-agent", session="conv-42", runbook="support-flow") as r:
        with r.step("plan", step_type="plan"):
            pass
        for attempt in (1, 2):
            try:
                with r.step("order_lookup", tool="orders_api", input={"order_id": "A-1"}, attempt=attempt) as s:
                    if attempt == 1:
                        raise ConnectionError("orders_api reset the connection")
                    s.set_output({"status": "shipped"})
                break
            except ConnectionError:
                continue
        with r.step("shipping_status", tool="shipping_api", input={"tracking": "T-9"}):
            pass
        with r.llm(model="gpt-4o-mini", provider="openai") as c:
            c.set_usage(input_tokens=200, output_tokens=50)
        r.set_totals(tokens=250)
    return r


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_run_round_trips_to_the_rest_api_and_the_client(server, protocol):
    sdk.configure(endpoint=endpoint(server, protocol), protocol=protocol, project="demo",
                  service_name="support-svc", capture_content=True, set_global=False)
    r = support_run()
    assert sdk.flush(20)
    assert sdk.stats().spans_exported == 6 and sdk.stats().spans_lost == 0

    with Client(server.api_url) as client:
        run = client.run(r.run_id)
        assert run.run_id == r.run_id and run.project_id == "demo"
        assert run.agent_name == "support-agent" and run.session_id == "conv-42"
        assert run.service_name == "support-svc"
        assert run.status == "ok" and run.step_count == 6
        assert run.llm_calls == 1 and run.tool_calls == 3 and run.error_count == 1
        assert (run.input_tokens, run.output_tokens) == (200, 50)
        assert run.started_at is not None and run.started_at.tzinfo is not None
        names = [s.name for s in sorted(run.steps, key=lambda s: s.index)]
        assert names == ["invoke_agent support-agent", "plan", "order_lookup", "order_lookup",
                         "shipping_status", "chat gpt-4o-mini"]
        first, retry = [s for s in run.steps if s.name == "order_lookup"]
        assert first.status == "error" and first.error_type == "ConnectionError" and not first.ok
        assert retry.status != "error" and retry.attributes["agenttrail.step.attempt"] == "2"
        assert {s.tool for s in run.steps if s.kind == "tool"} == {"orders_api", "shipping_api"}
        root = next(s for s in run.steps if s.depth == 0)
        assert all(s.parent_step_id == root.step_id for s in run.steps if s.depth == 1)

        listed = list(client.runs(project_id="demo"))
        assert [x.run_id for x in listed] == [r.run_id]
        assert [p.project_id for p in client.projects()] == ["demo"]
        summary = client.summary("demo")
        assert summary.runs == 1 and summary.tool_calls == 3 and summary.total_tokens == 250


def test_failure_events_reach_the_stored_run(server):
    sdk.configure(endpoint=server.grpc_endpoint, project="demo", set_global=False)
    with sdk.run(agent="a") as r:
        with r.step("fetch", tool="external_api") as s:
            pass
        r.record_decision("tool_selection", "api", "fresh_data_required", candidates=["api", "cache"])
        r.record_failure("tool", "timeout", "External API timeout after 30s", step=s)
    assert sdk.flush(20)
    run = Client(server.api_url).run(r.run_id)
    assert run.status == "error" and run.status_message == "External API timeout after 30s"
    root = next(x for x in run.steps if x.depth == 0)
    assert root.error_type == "timeout"
    events = {e["name"]: e["attributes"] for e in root.events}
    assert events["agenttrail.failure"]["agenttrail.failure.step_id"] == s.step_id
    assert events["agenttrail.decision"]["agenttrail.decision.selected"] == "api"


def test_runs_iterates_every_page_newest_first(server):
    sdk.configure(endpoint=server.grpc_endpoint, project="paged", set_global=False)
    ids = []
    for i in range(5):
        with sdk.run(agent="a", session=f"s{i}") as r:
            pass
        ids.append(r.run_id)
    assert sdk.flush(20)
    with Client(server.api_url) as client:
        listed = list(client.runs(project_id="paged", page_size=2))
        assert sorted(x.run_id for x in listed) == sorted(ids) and len(listed) == 5
        starts = [x.started_at for x in listed]
        assert starts == sorted(starts, reverse=True)
        assert len(list(client.runs(project_id="paged", page_size=2, max_runs=3))) == 3
        assert list(client.runs(project_id="nobody-here")) == []


def test_keys_scope_what_the_client_sees_and_errors_are_typed(make_server):
    server = make_server(api_keys=KEYS)
    sdk.configure(endpoint=server.http_endpoint, protocol="http", api_key="demo-key-123456", set_global=False)
    with sdk.run(agent="a") as r:
        pass
    assert sdk.flush(20) and sdk.stats().spans_exported == 1

    with Client(server.api_url, api_key="demo-key-123456") as demo:
        assert demo.run(r.run_id).project_id == "demo"
        assert [p.project_id for p in demo.projects()] == ["demo"]
        with pytest.raises(errors.InvalidRequestError) as bad:
            demo.run("x" * 300)
        assert bad.value.status_code == 422 and bad.value.details[0]["parameter"] == "run_id"
        with pytest.raises(errors.InvalidRequestError):
            list(demo.runs(page_size=100_000))
    with Client(server.api_url, api_key="other-key-123456") as other:
        with pytest.raises(errors.NotFoundError) as missing:
            other.run(r.run_id)  # another project's run is simply not there
        assert missing.value.code == "not_found"
        assert list(other.runs()) == [] and other.projects() == []
    for key in (None, "wrong-key-123456"):
        with Client(server.api_url, api_key=key) as anonymous:
            with pytest.raises(errors.AuthenticationError) as denied:
                anonymous.projects()
            assert denied.value.status_code == 401


def test_unknown_run_is_not_found(server):
    with Client(server.api_url) as client:
        with pytest.raises(errors.NotFoundError):
            client.run("0af7651916cd43dd8448eb211c80319c")


def test_obsclient_seed_000_usage_works_as_written(server):
    client = ObsClient(base_url=server.api_url, api_key="dev-key", project_id="demo",
                       otlp_endpoint=server.http_endpoint, set_global=False)
    with client.run(runbook="shortify") as run:
        with run.step(name="shorten", tool="httpx.post", input={"originalUrl": "https://example.com"}) as s:
            s.set_output({"status_code": 200})
        run.set_totals(tokens=123, cost_usd=0.01)
    assert client.flush(20)
    stored = client.get_run(run.run_id)
    assert stored.project_id == "demo"
    assert [s.name for s in stored.steps if s.kind == "tool"] == ["shorten"]
    root = next(s for s in stored.steps if s.depth == 0)
    assert root.attributes["agenttrail.runbook"] == "shortify"
    assert root.attributes["agenttrail.totals.total_tokens"] == "123"


def test_agenttracer_seed_003_usage_works_as_written(server):
    tracer = AgentTracer(agent_id="support-agent", agent_version="v1.0.0", environment="production",
                         api_url=server.api_url, otlp_endpoint=server.grpc_endpoint, protocol="grpc",
                         project="demo", set_global=False)
    with tracer.start_run() as run:
        with run.step("plan", "analyze_query"):
            pass
        try:
            with run.step("tool", "external_api"):
                raise TimeoutError("External API timeout after 30s")
        except TimeoutError:
            run.record_failure(failure_type="tool", failure_code="timeout",
                               message="External API timeout after 30s")
    assert tracer.flush(20)
    stored = tracer.client.run(run.run_id)
    assert stored.agent_name == "support-agent" and stored.environment == "production"
    assert stored.status == "error"
    by_name = {s.name: s for s in stored.steps}
    assert by_name["analyze_query"].kind != "tool" and by_name["analyze_query"].attributes["agenttrail.step.type"] == "plan"
    assert by_name["external_api"].tool == "external_api" and by_name["external_api"].error_type == "TimeoutError"
    root = next(s for s in stored.steps if s.depth == 0)
    assert root.attributes["gen_ai.agent.version"] == "v1.0.0"


def test_validate_a_run_against_a_runbook(server):
    client = ObsClient(base_url=server.api_url, project_id="demo", otlp_endpoint=server.grpc_endpoint,
                       protocol="grpc", set_global=False)
    with client.run(runbook="shortify") as run:
        with run.step(name="shorten", tool="httpx.post"):
            pass
    runbook = "allowed_tools:\n  - httpx.post\nrequired_steps:\n  - name: \"shorten\"\n"
    verdict = client.validate_run(run.run_id, runbook_yaml=runbook)
    assert verdict.status == "passed" and verdict.passed
    failing = client.validate_run(run.run_id, runbook_yaml="allowed_tools: [other]\n")
    assert failing.status == "failed" and failing.reasons
    assert "allowed_tools" in failing.failed_rules
    again = client.validate_run(run.run_id, runbook_yaml=runbook)
    assert again.existing and again.validation_id == verdict.validation_id  # idempotent per run state
    by_sql = client.client.validate(run.run_id, runbook_yaml=runbook, engine="sql")
    assert by_sql.existing and by_sql.validation_id == verdict.validation_id  # same state: the stored verdict
    with pytest.raises(errors.InvalidRequestError):
        client.client.validate(run.run_id, runbook_yaml=runbook, engine="quick")
    history = client.client.validations(run.run_id)
    assert {v.status for v in history} == {"passed", "failed"}
    with pytest.raises(errors.InvalidRequestError) as bad:
        client.validate_run(run.run_id, runbook_yaml="allowed_tools: {not: [a, list")
    assert bad.value.details and bad.value.details[0]["parameter"] == "runbook_yaml"
    with pytest.raises(errors.NotFoundError):
        client.client.validate("0af7651916cd43dd8448eb211c80319c", runbook_yaml=runbook)

    batch = client.client.validate_batch("demo", runbook_yaml="allowed_tools: [other]\n", since="1h")
    assert batch.failed == 1 and [v.run_id for v in batch.runs] == [run.run_id]
    assert [v.run_id for v in client.client.validate_batch_runs("demo", runbook_yaml=runbook,
                                                               statuses=["passed"], limit=1)] == [run.run_id]


def test_seed_000_events_through_the_client_read_back_as_a_run(server):
    run_id = "11111111-1111-1111-1111-111111111111"
    events = [
        {"type": "run.start", "run_id": run_id, "project_id": "demo", "runbook": "example_runbook",
         "ts": "2026-01-21T00:00:00Z"},
        {"type": "step.start", "run_id": run_id, "step_id": "22222222-2222-2222-2222-222222222222", "index": 0,
         "name": "shorten", "tool": "httpx.post", "input": {"originalUrl": "https://example.com"},
         "ts": "2026-01-21T00:00:01Z"},
        {"type": "step.end", "run_id": run_id, "step_id": "22222222-2222-2222-2222-222222222222",
         "output": {"status_code": 200}, "latency_ms": 12, "tokens": 5, "cost_usd": 0.001, "status": "ok",
         "ts": "2026-01-21T00:00:02Z"},
        {"type": "run.end", "run_id": run_id, "totals": {"tokens": 5, "cost_usd": 0.001}, "ts": "2026-01-21T00:00:03Z"},
        {"type": "no.such.event", "run_id": run_id},
    ]
    with Client(server.api_url) as client:
        result = client.send_events(events)
        assert result.ingested == 4 and result.failed == 1 and result.errors[0]["index"] == 4
        run = client.run(run_id)
        assert run.project_id == "demo" and [s.name for s in run.steps if s.tool] == ["shorten"]


def test_hostile_filter_values_are_data_not_sql(server):
    sdk.configure(endpoint=server.grpc_endpoint, project="demo", set_global=False)
    with sdk.run(agent="a") as r:
        pass
    assert sdk.flush(20)
    with Client(server.api_url) as client:
        for hostile in ("demo' OR '1'='1", "demo\\' --", "x" * 200, "demo; DROP TABLE runs", "ü\u202e\x7f"):
            assert list(client.runs(project_id=hostile)) == []
            assert list(client.runs(agent=hostile)) == []
        with pytest.raises(errors.InvalidRequestError) as bad:
            list(client.runs(since="yesterday-ish"))
        assert bad.value.details[0]["parameter"] == "since"
        assert [x.run_id for x in client.runs(project_id="demo")] == [r.run_id]  # still there
