"""The Markdown run report: a run sent by the SDK, validated, then rendered by the server."""

from __future__ import annotations

import re

import pytest

from agenttrail import sdk
from api_helpers import KEYS, READ_B, client

INGEST = "demo-key-123456"
SERVER_KEYS = KEYS + ({"key": INGEST, "scopes": ["ingest", "read"], "projects": ["proj-a"]},)


@pytest.fixture
def api(make_server):
    yield make_server(api_keys=SERVER_KEYS)
    sdk.shutdown()


def _send(api, tool_name: str = "orders_api") -> str:
    sdk.configure(endpoint=api.grpc_endpoint, project="proj-a", api_key=INGEST, set_global=False)
    with sdk.run(agent="support-agent", session="conv-7") as r:
        for attempt in (1, 2):
            try:
                with r.step("order_lookup", tool=tool_name, input={"order_id": "A-1"}, attempt=attempt):
                    if attempt == 1:
                        raise TimeoutError("orders_api timed out after 30s")
                break
            except TimeoutError:
                continue
        for attempt in (1, 2, 3):
            try:
                with r.step("refund", tool="payments_api", input={"order_id": "A-1"}, attempt=attempt):
                    raise PermissionError("payments_api: 403 forbidden")
            except PermissionError:
                pass
        with r.llm(model="gpt-4o-mini", provider="openai") as c:
            c.set_usage(input_tokens=200, output_tokens=50)
        r.record_decision("tool_selection", "api", "fresh_data_required", confidence=0.85)
        r.record_quality_signal("tool_success", "forbidden", False)
        r.record_failure("tool", "tool_permission", "refund not allowed")
    assert sdk.flush(20)
    return r.run_id


def test_report_of_a_failed_run_with_retries_and_a_validation(api):
    run_id = _send(api)
    with client(api) as c:
        verdict = c.post(f"/v1/runs/{run_id}/validate", json={
            "runbook_yaml": "name: support\nallowed_tools: [orders_api]\n"})
        assert verdict.status_code == 200, verdict.text
        response = c.get(f"/v1/runs/{run_id}/report")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/markdown")
    report = response.text
    assert report.startswith(f"# Run report: support-agent `{run_id}`")
    for title in ("Headline", "Steps by kind", "Tool calls", "Retries", "Failure classification", "Validations",
                  "Decisions and quality signals", "Terminal status"):
        assert f"\n## {title}\n" in report
    assert ("The run executed 7 steps (1 model call, 5 tool calls) with 3 retry attempts (1 chain exhausted) "
            "and ended **error**: auth at step refund (#3) (root cause).") in report
    assert "| tool orders_api | 2 | 1: error (timeout), 2: unset | recovered | yes |" in report
    assert "| tool payments_api | 3 | 1: error (auth), 2: error (auth), 3: error (auth) | exhausted | yes |" in report
    assert "| tool | 5 | 4 |" in report  # five tool steps, four failed
    assert "| support | 0 | **failed** | allowed_tools: tools outside the allowed list were called: payments_api |" in report
    assert "| decision | tool_selection | api | fresh_data_required | 0.85 |" in report
    assert "**error** — refund not allowed, ended" in report


def test_hostile_names_stay_inside_their_cell(api):
    run_id = _send(api, tool_name="x|y <script>alert(1)</script>\n## injected *bold*")
    with client(api) as c:
        report = c.get(f"/v1/runs/{run_id}/report").text
    assert "<script>" not in report and "\n## injected" not in report
    assert "x\\|y \\<script\\>alert(1)\\</script\\> ## injected \\*bold\\*" in report
    section = report.split("## Tool calls\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 5 and all(len(re.findall(r"(?<!\\)\|", line)) == 8 for line in rows)


def test_report_access_and_bad_ids(api):
    run_id = _send(api)
    with client(api, READ_B) as c:
        assert c.get(f"/v1/runs/{run_id}/report").status_code == 404
    with client(api) as c:
        assert c.get("/v1/runs/" + "0" * 31 + "1/report").status_code == 404
        bad = c.get("/v1/runs/not-a-run-id/report")
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["parameter"] == "run_id"
        assert c.get("/v1/runs/" + "a" * 5000 + "/report").status_code == 422
        spec = c.get("/openapi.json").json()["paths"]["/v1/runs/{run_id}/report"]["get"]
    assert "text/markdown" in spec["responses"]["200"]["content"] and spec["description"]
