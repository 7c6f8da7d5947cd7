"""A running server validates finished runs against attached runbooks on its own."""

from __future__ import annotations

import time

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run

RUNBOOK = """\
name: support-policy
applies_to: {agent: support-agent}
allowed_tools: [order_lookup]
"""


def wait_for_validation(server, run_id, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        validation = httpx.get(f"{server.api_url}/v1/runs/{run_id}").json().get("validation")
        if validation:
            return validation
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} was not validated within {timeout}s")


def test_attached_runbook_judges_completed_runs(make_server):
    server = make_server(auto_validate_quiet_seconds=1.0)
    saved = httpx.post(f"{server.api_url}/v1/runbooks",
                       json={"yaml": RUNBOOK, "project_id": "support-svc", "auto": True})
    assert saved.status_code == 201, saved.text

    spans, run_id = record_support_run()  # calls order_lookup and shipping_status
    assert OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True).export(spans) == SpanExportResult.SUCCESS

    validation = wait_for_validation(server, run_id)
    assert validation["status"] == "failed"
    [reason] = validation["reasons"]
    assert reason["rule"] == "allowed_tools" and "shipping_status" in str(reason["observed"])
