"""The Collector, Grafana and ClickHouse configs in deploy/ agree with each other and with
docker-compose.yml (interpolated by test_deploy's loader, as ``docker compose`` would)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from test_deploy import (COLLECTOR_CONFIGS, DEPLOY, ROOT, _container_ports, compose_settings,
                         load_compose, read_env)


@pytest.fixture(scope="module")
def compose():
    return load_compose(read_env(ROOT / ".env.example"))


@pytest.fixture(scope="module")
def agenttrail_settings(compose):
    return compose_settings(compose)


# -- Collector ---------------------------------------------------------------------------------

def _pipelines_are_closed(config: dict, name: str) -> None:
    service = config["service"]
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {kind} {component} is not defined"
    for ext in service.get("extensions", []):
        assert ext in config["extensions"], f"{name}: extension {ext} is not defined"
    for exporter in config["exporters"].values():
        auth = (exporter.get("auth") or exporter.get("protocol", {}).get("otlp", {}).get("auth") or {})
        if auth:
            assert auth["authenticator"] in service["extensions"], f"{name}: auth extension not enabled"


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_collector_configs_send_to_agenttrail_grpc_with_a_key(path, agenttrail_settings):
    config = yaml.safe_load(path.read_text())
    _pipelines_are_closed(config, path.name)
    to_agenttrail = []
    for name, exporter in config["exporters"].items():
        if name.startswith("otlp/") or name == "otlp":
            to_agenttrail.append((exporter["endpoint"], exporter))
        elif name.startswith("loadbalancing"):
            dns = exporter["resolver"]["dns"]
            assert exporter["routing_key"] == "traceID"
            to_agenttrail.append((f"{dns['hostname']}:{dns['port']}", exporter["protocol"]["otlp"]))
    assert to_agenttrail, f"{path.name} has no exporter to agenttrail"
    for endpoint, exporter in to_agenttrail:
        host, port = endpoint.rsplit(":", 1)
        assert host == "agenttrail" and int(port) == agenttrail_settings.grpc_port
        auth = exporter.get("auth", {}).get("authenticator")
        headers = exporter.get("headers", {})
        if auth:
            assert config["extensions"][auth]["token"] == "${env:AGENTTRAIL_COLLECTOR_KEY}"
        else:
            assert headers.get("x-api-key") == "${env:AGENTTRAIL_COLLECTOR_KEY}"
    receivers = config["receivers"]["otlp"]["protocols"]
    assert receivers["grpc"]["endpoint"].endswith(":4317") and receivers["http"]["endpoint"].endswith(":4318")


def test_fanout_sends_every_trace_to_both_backends():
    config = yaml.safe_load((DEPLOY / "otel-collector" / "fanout.yaml").read_text())
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    assert len(exporters) == 2 and any(e.startswith("otlp/agenttrail") for e in exporters)


def test_compose_collector_config_and_ports(compose):
    collector = compose["services"]["otel-collector"]
    mount = next(v for v in collector["volumes"] if v.endswith(":/etc/otelcol-contrib/config.yaml:ro"))
    assert (ROOT / mount.split(":")[0]).exists()
    assert {4317, 4318} <= _container_ports(collector)


# -- Grafana and ClickHouse users ----------------------------------------------------------------

def _datasource():
    config = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/agenttrail.yaml").read_text())
    (ds,) = config["datasources"]
    return ds


def test_datasource_matches_clickhouse_and_the_plugin(compose):
    ds = _datasource()
    grafana = compose["services"]["grafana"]
    assert ds["type"] == grafana["environment"]["GF_INSTALL_PLUGINS"] == "grafana-clickhouse-datasource"
    assert ds["jsonData"]["host"] in compose["services"]
    assert ds["jsonData"]["port"] == 9000 and ds["jsonData"]["protocol"] == "native"
    assert ds["jsonData"]["defaultDatabase"] == compose["services"]["clickhouse"]["environment"]["CLICKHOUSE_DB"]
    assert ds["jsonData"]["traces"]["defaultTable"] == "otel_traces"
    secret = ds["secureJsonData"]["password"]
    assert secret == "${GRAFANA_CLICKHOUSE_PASSWORD}"
    assert "GRAFANA_CLICKHOUSE_PASSWORD" in grafana["environment"]


def test_grafana_user_is_read_only_on_the_agenttrail_database(compose):
    users = ET.parse(DEPLOY / "clickhouse/users.d/agenttrail.xml").getroot()
    ds = _datasource()
    user = users.find(f"users/{ds['jsonData']['username']}")
    assert user is not None
    password_env = user.find("password").get("from_env")
    assert password_env in compose["services"]["clickhouse"]["environment"]
    profile = users.find(f"profiles/{user.findtext('profile')}")
    assert profile.findtext("readonly") == "1"
    grants = [q.text for q in user.findall("grants/query")]
    assert grants == [f"GRANT SELECT ON {ds['jsonData']['defaultDatabase']}.*"]


def test_clickhouse_system_logs_have_ttls():
    config = ET.parse(DEPLOY / "clickhouse/config.d/agenttrail.xml").getroot()
    kept = [e for e in config if e.tag.endswith("_log") and e.get("remove") != "1"]
    assert kept
    for log in kept:
        assert re.fullmatch(r"event_date \+ INTERVAL \d+ DAY DELETE", log.findtext("ttl") or ""), log.tag


def test_dashboards_are_provisioned_from_the_mounted_folder(compose):
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/agenttrail.yaml").read_text())
    (p,) = provider["providers"]
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts[p["options"]["path"]] == "./deploy/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana/dashboards" / Path(home).name).exists()
    uid = _datasource()["uid"]
    for path in (DEPLOY / "grafana/dashboards").glob("*.json"):
        dash = json.loads(path.read_text())
        refs = [p["datasource"] for p in dash["panels"]] + [t["datasource"] for p in dash["panels"]
                                                            for t in p.get("targets", [])]
        refs += [v["datasource"] for v in dash["templating"]["list"] if "datasource" in v]
        assert {r["uid"] for r in refs} == {uid}, path.name


def test_cluster_example_matches_what_cluster_mode_needs():
    from agenttrail.storage.schema import SchemaOptions

    config = ET.parse(DEPLOY / "clickhouse/cluster.example.xml").getroot()
    (cluster,) = list(config.find("remote_servers"))
    options = SchemaOptions(cluster=cluster.tag)  # a valid cluster setting for agenttrail
    macros = {m.tag for m in config.find("macros")}
    for macro in re.findall(r"\{(\w+)\}", options.engine("MergeTree")):
        assert macro in macros | {"database", "table"}, f"macro {{{macro}}} is not defined"
    for shard in cluster.findall("shard"):
        # with Replicated tables, the Distributed table must write one replica per shard
        assert shard.findtext("internal_replication") == "true"
        assert len(shard.findall("replica")) >= 2
    assert cluster.find("secret").get("from_env")
    writer = ET.parse(DEPLOY / "clickhouse/users.d/agenttrail.xml").getroot().find("profiles/agenttrail_writer")
    assert writer.findtext("distributed_foreground_insert") == "1"
    assert writer.findtext("distributed_product_mode") == "local"
