"""The SDK's Client on the cross-run endpoints, against a live server fed by the SDK itself."""

from __future__ import annotations

import pytest

from agenttrail import sdk
from agenttrail.sdk import Client, InvalidRequestError, NotFoundError

KEYS = ({"key": "demo-key-123456", "scopes": ["ingest", "read"], "projects": ["demo"]},)


def test_report_decisions_quality_and_compare(make_server):
    server = make_server(api_keys=KEYS)
    sdk.configure(endpoint=server.grpc_endpoint, project="demo", api_key=KEYS[0]["key"], set_global=False)
    try:
        ids = {}
        for version, failing in (("1", (False, False, False)), ("2", (True, True, False))):
            for fail in failing:
                with sdk.run(agent="a", agent_version=version) as r:
                    r.record_decision("tool_selection", "api", confidence=0.5)
                    r.record_quality_signal("schema_valid", "full_match", not fail)
                    if fail:
                        r.record_failure("tool", "timeout", "gave up")
                ids[version] = r.run_id
        assert sdk.flush(20)
    finally:
        sdk.shutdown()
    with Client(server.api_url, api_key=KEYS[0]["key"]) as client:
        report = client.report(ids["2"])
        assert report.startswith("# Run report: a `") and "## Terminal status" in report
        [decision] = client.decisions("demo")["decisions"]
        assert (decision["selected"], decision["runs"], decision["success_rate"]) == ("api", 6, 0.666667)
        signals = {q["value"]: q for q in client.quality("demo", agent_version="2")["quality_signals"]}
        assert signals[False]["runs"] == 2 and signals[False]["success_rate_with"] == 0.0
        body = client.compare("demo", a={"agent_version": "1"}, b={"agent_version": "2"}, alpha=0.1)
        assert body["alpha"] == 0.1 and body["metrics"]["success_rate"]["difference"] == pytest.approx(-2 / 3, abs=1e-6)
        with pytest.raises(InvalidRequestError) as err:
            client.compare("demo", a={"since": "yesterday"}, b={})
        assert err.value.details[0]["parameter"] == "a_since"
        with pytest.raises(NotFoundError):
            client.decisions("someone-else")
        with pytest.raises(ValueError):
            client.report("../etc")
