"""The example support agent (agenttrail's SDK): its three tickets land with the documented
failure categories, root causes and retry chains."""

from __future__ import annotations

from api_helpers import client
from test_examples import run_example


def test_support_agent_tickets_are_explained(server):
    summary = run_example("support_agent.py", "--endpoint", server.http_endpoint, "--protocol", "http",
                          "--api-url", server.api_url, "--project", "support")
    by_session = {r["session"]: r["run_id"] for r in summary["runs"]}
    with client(server, None) as c:
        runs = {t: c.get(f"/v1/runs/{run_id}").json() for t, run_id in by_session.items()}
        rca = {t: c.get(f"/v1/runs/{run_id}/rca").json() for t, run_id in by_session.items()}
        listed = {r["session_id"]: r["failure"] for r in c.get("/v1/projects/support/runs").json()["runs"]}

    def named(run, name):
        return [s for s in run["steps"] if s["name"] == name]

    # t-1: the order API timed out once and the retry recovered: no category, one recovered chain
    first = runs["t-1"]["failure"]
    assert first["category"] is None and first["root_cause_step_id"] is None
    (chain,) = first["retries"]
    assert chain["outcome"] == "recovered" and len(chain["attempts"]) == 2
    assert named(runs["t-1"], "order_lookup")[0]["failure_category"] == "timeout"
    assert rca["t-1"]["insufficient_evidence"] is True

    # t-2: the shipping API was down on all three attempts: exhausted, rooted at the first attempt
    second = runs["t-2"]["failure"]
    shipping = named(runs["t-2"], "shipping_status")
    assert [s["failure_category"] for s in shipping] == ["server_error"] * 3
    assert second["category"] == "server_error" and second["root_cause_step_id"] == shipping[0]["step_id"]
    assert [c["outcome"] for c in second["retries"]] == ["exhausted"]
    assert rca["t-2"]["category"] == "server_error" and rca["t-2"]["hypotheses"]

    # t-3: the order does not exist: not_found at the lookup, the agent's own code agrees
    third = runs["t-3"]["failure"]
    (lookup,) = named(runs["t-3"], "order_lookup")
    assert (lookup["failure_category"], third["category"]) == ("not_found", "not_found")
    assert third["root_cause_step_id"] == lookup["step_id"]
    root = next(s for s in runs["t-3"]["steps"] if s["depth"] == 0)
    assert (root["failure_category"], root["failure_type"]) == ("not_found", "tool")  # record_failure("tool", "order_not_found")

    assert listed == {t: run["failure"] for t, run in runs.items()}
