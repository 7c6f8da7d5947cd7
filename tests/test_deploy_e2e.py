"""End to end through the deployment's wiring, without Docker.

An agenttrail server runs in-process with the settings docker-compose.yml gives the container
(its API keys, TTL, content capture; only ports and storage point at the test engine).  Spans
are exported over OTLP/gRPC with exactly the headers each Collector config would add, and the
dashboards' SQL — expanded like Grafana does — must then show the run.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from grpc import Compression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_helpers import record_support_run
from test_dashboards import _dashboards, _panels, _resolve_variables
from test_dashboards_expand import expand
from test_deploy import COLLECTOR_CONFIGS, ROOT, compose_settings, load_compose, read_env


def collector_export(path: Path, env: dict[str, str]) -> tuple[dict[str, str], bool]:
    """(headers, gzip) of the Collector config at ``path``'s exports to agenttrail."""
    config = yaml.safe_load(path.read_text())

    def resolve(value: str) -> str:
        return re.sub(r"\$\{env:(\w+)\}", lambda m: env[m[1]], value)

    for name, exporter in config["exporters"].items():
        otlp = exporter.get("protocol", {}).get("otlp", exporter)
        if not (name.startswith(("otlp/agenttrail", "loadbalancing/agenttrail"))):
            continue
        gzip = otlp.get("compression", "gzip") == "gzip"  # the otlp exporter's default is gzip
        auth = otlp.get("auth", {}).get("authenticator")
        if auth:
            ext = config["extensions"][auth]
            return {"authorization": f"{ext.get('scheme', 'Bearer')} {resolve(ext['token'])}"}, gzip
        return {k: resolve(v) for k, v in otlp.get("headers", {}).items()}, gzip
    raise AssertionError(f"{path.name}: no exporter to agenttrail")


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_collector_export_reaches_the_dashboards(make_server, path):
    env = read_env(ROOT / ".env.example")
    s = compose_settings(load_compose(env))
    server = make_server(api_keys=s.api_keys, ttl_days=s.ttl_days, capture_content=s.capture_content)
    headers, gzip = collector_export(path, env)
    compression = Compression.Gzip if gzip else Compression.NoCompression
    spans, run_id = record_support_run(service="support-svc", fail_tool=True)

    key = env["AGENTTRAIL_COLLECTOR_KEY"]
    assert any(key in v for v in headers.values())
    wrong = {k: v.replace(key, "wrong-key-0000") for k, v in headers.items()}
    refused = OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True, headers=wrong, timeout=10,
                               compression=compression)
    assert refused.export(spans) == SpanExportResult.FAILURE  # a wrong key is not let in
    exporter = OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True, headers=headers, timeout=20,
                                compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS

    store = server.store
    assert store.flush()  # Grafana reads ClickHouse itself: wait for the journal's commit
    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=1), now + timedelta(minutes=10)
    for name, dash in _dashboards():
        values, options = _resolve_variables(store, dash, {"run_id": [run_id]}, start, end)
        assert options["project"], f"{name}: the exported run's project is not offered"
        for panel in _panels(dash):
            sql = expand(panel["targets"][0]["rawSql"], values, options, start, end)
            if "validations" in sql:
                continue  # no verdicts yet in this test: covered by test_dashboards
            rows = store.query(sql).result_rows
            if panel["title"] == "Recent failed runs":  # the run's root succeeded (a tool failed)
                assert rows == []
                continue
            assert rows, f"{name} / {panel['title']}: no rows after a Collector-style export"
    trace = next(p for p in dict(_dashboards())["agenttrail-run.json"]["panels"] if p["type"] == "traces")
    values, options = _resolve_variables(store, dict(_dashboards())["agenttrail-run.json"],
                                         {"run_id": [run_id]}, start, end)
    rows = store.query(expand(trace["targets"][0]["rawSql"], values, options, start, end)).result_rows
    assert len(rows) == len(spans)
