"""The deployment files are wired together — checked without a Docker engine.

docker-compose.yml is interpolated the way ``docker compose`` does it (with .env.example as the
.env), then every cross-reference is checked against the real parts it names: agenttrail's
command line and environment go through the real CLI parser and settings loader, its storage
DSN through the real DSN resolver, the Collector's exporter endpoints against the resulting
ports, Grafana's datasource against the ClickHouse service and users file.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from agenttrail.service.cli import build_parser
from agenttrail.service.settings import FIELDS, load_settings
from agenttrail.storage.client import resolve_target

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
COLLECTOR_CONFIGS = sorted((DEPLOY / "otel-collector").glob("*.yaml"))
SECRET_NAME = re.compile(r"PASSWORD|KEY|SECRET|TOKEN|AUTHORIZATION|STORAGE", re.IGNORECASE)
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class ComposeError(ValueError):
    """The compose file would not interpolate (docker compose would refuse it too)."""


def read_env(path: Path) -> dict[str, str]:
    """A .env file: NAME=value lines, # comments."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ComposeError(f"{path.name}: not NAME=value: {line!r}")
            env[name] = value
    return env


def interpolate(value, env: dict[str, str]):
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(m: re.Match) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        current = env.get(name)
        unset_or_empty = not current
        if op in (":?", "?") and (current is None or (op == ":?" and unset_or_empty)):
            raise ComposeError(f"required variable {name} is missing: {arg}")
        if op in (":-", "-") and (current is None or (op == ":-" and unset_or_empty)):
            return arg
        return current or ""

    return _VAR.sub(replace, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    """docker-compose.yml interpolated with ``env`` (default: .env.example)."""
    env = read_env(ROOT / ".env.example") if env is None else env
    return interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env)


def secrets_inline(raw_compose: dict) -> list[str]:
    """Environment entries whose name says secret but whose value is not all ``${...}``."""
    found = []
    for name, service in raw_compose["services"].items():
        env = service.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.partition("=")[::2] for e in env)
        for key, value in items:
            value = str(value)
            if not SECRET_NAME.search(key):
                continue
            literal = _VAR.sub("", value)
            if key == "AGENTTRAIL_STORAGE":  # a DSN: only its credentials must come from variables
                literal = urlsplit(value).netloc.rpartition("@")[0]
                literal = _VAR.sub("", literal).replace(":", "")
            elif key == "AGENTTRAIL_API_KEYS":  # key:scopes:projects — only keys are secret
                literal = ",".join(part.split(":")[0] for part in literal.split(",") if part)
            if literal.strip(",: "):
                found.append(f"{name}.{key}")
    return found


@pytest.fixture(scope="module")
def env():
    return read_env(ROOT / ".env.example")


@pytest.fixture(scope="module")
def compose(env):
    return load_compose(env)


def compose_settings(compose: dict):
    """agenttrail's settings as its container resolves them (the real CLI parser and loader)."""
    service = compose["services"]["agenttrail"]
    args = build_parser().parse_args(service["command"])
    cli = {k: v for k, v in vars(args).items() if k in FIELDS}
    environ = {k: str(v) for k, v in service["environment"].items()}
    return load_settings(cli, environ=environ, config_path=args.config)


@pytest.fixture(scope="module")
def agenttrail_settings(compose):
    return compose_settings(compose)


def _container_ports(service: dict) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


# -- compose -----------------------------------------------------------------------------------

def test_services_images_and_named_volumes(compose):
    services = compose["services"]
    assert set(services) == {"clickhouse", "agenttrail", "grafana", "otel-collector"}
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert services["agenttrail"]["build"] == "."
    declared = set(compose["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
            if not v.startswith((".", "/"))}
    assert used == declared, "every named volume is declared and used"
    assert "/var/lib/clickhouse" in {v.split(":")[1] for v in services["clickhouse"]["volumes"]}
    for path in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        if path.startswith("./"):
            assert (ROOT / path).exists(), f"bind mount {path} does not exist"


def test_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name in ("clickhouse", "agenttrail", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    assert "/ping" in " ".join(services["clickhouse"]["healthcheck"]["test"])
    assert services["agenttrail"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["otel-collector"]["depends_on"]["agenttrail"]["condition"] == "service_healthy"


def test_agenttrail_settings_resolve_and_match_published_ports(compose, agenttrail_settings):
    s = agenttrail_settings
    assert s.host == "0.0.0.0"
    assert _container_ports(compose["services"]["agenttrail"]) == {s.grpc_port, s.http_port, s.api_port}
    health = " ".join(compose["services"]["agenttrail"]["healthcheck"]["test"])
    assert f"127.0.0.1:{s.api_port}/health" in health
    from agenttrail.api.health import router
    assert "/health" in {route.path for route in router.routes}


def test_storage_dsn_points_at_the_clickhouse_service(compose, env, agenttrail_settings):
    target = resolve_target(agenttrail_settings.storage_dsn, agenttrail_settings.database or None)
    dsn = urlsplit(target.dsn)
    clickhouse = compose["services"]["clickhouse"]
    assert dsn.hostname == "clickhouse" and dsn.port == 8123
    assert dsn.username == env["CLICKHOUSE_USER"] == clickhouse["environment"]["CLICKHOUSE_USER"]
    assert dsn.password == env["CLICKHOUSE_PASSWORD"]
    assert target.database == clickhouse["environment"]["CLICKHOUSE_DB"] == "agenttrail"
    assert agenttrail_settings.ttl_days == int(env["AGENTTRAIL_TTL_DAYS"])


def test_the_collector_key_is_an_ingest_key(env, agenttrail_settings):
    keyring = agenttrail_settings.keyring()
    collector = keyring.authenticate(None, "Bearer " + env["AGENTTRAIL_COLLECTOR_KEY"])
    assert collector.can("ingest") and not collector.can("admin")
    admin = keyring.authenticate(env["AGENTTRAIL_ADMIN_KEY"], None)
    assert admin.can("admin") and admin.can("read")


def test_no_secrets_inline():
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert secrets_inline(raw) == []
    text = (ROOT / "docker-compose.yml").read_text()
    for name, value in read_env(ROOT / ".env.example").items():
        if SECRET_NAME.search(name) and value:
            assert value not in text, f"the value of {name} is written into docker-compose.yml"


@pytest.mark.parametrize("mutation", [
    ("CLICKHOUSE_PASSWORD: ${CLICKHOUSE_PASSWORD:?set CLICKHOUSE_PASSWORD in .env}", "CLICKHOUSE_PASSWORD: hunter2"),
    ("http://${CLICKHOUSE_USER}:${CLICKHOUSE_PASSWORD}@", "http://${CLICKHOUSE_USER}:hunter2@"),
    ("${AGENTTRAIL_ADMIN_KEY:?set AGENTTRAIL_ADMIN_KEY in .env}:", "admin-key-inline:"),
])
def test_an_inlined_secret_is_caught(mutation):
    text = (ROOT / "docker-compose.yml").read_text()
    assert mutation[0] in text
    assert secrets_inline(yaml.safe_load(text.replace(*mutation)))


def test_env_example_defines_every_variable_the_files_use(env, compose):
    used = {m["name"] for m in _VAR.finditer((ROOT / "docker-compose.yml").read_text())}
    assert used - set(env) == set()
    collector_env = compose["services"]["otel-collector"]["environment"]
    for path in COLLECTOR_CONFIGS:
        for name in re.findall(r"\$\{env:(\w+)\}", path.read_text()):
            assert name in collector_env, f"{path.name} uses {name}, not passed to the container"
            assert name in env


def test_a_missing_required_secret_stops_interpolation(env):
    broken = {k: v for k, v in env.items() if k != "CLICKHOUSE_PASSWORD"}
    with pytest.raises(ComposeError, match="CLICKHOUSE_PASSWORD"):
        load_compose(broken)
    with pytest.raises(ComposeError, match="GRAFANA_ADMIN_PASSWORD"):
        load_compose({**env, "GRAFANA_ADMIN_PASSWORD": ""})  # :? also refuses empty


def test_malformed_env_files_are_rejected(tmp_path):
    for bad in ("JUST TEXT", "1NAME=x", "=value", "NA ME=x"):
        path = tmp_path / ".env"
        path.write_text(f"# comment\nGOOD=1\n{bad}\n")
        with pytest.raises(ComposeError):
            read_env(path)


# -- Dockerfile --------------------------------------------------------------------------------

def test_dockerfile(agenttrail_settings):
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "pip wheel" in text and "pip install" in text
    exposed = {int(p) for p in re.search(r"^EXPOSE\s+(.+)$", text, re.M)[1].split()}
    s = agenttrail_settings
    assert exposed == {s.grpc_port, s.http_port, s.api_port}
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])$", text, re.M)[1])
    entry = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])$", text, re.M)[1])
    assert entry == ["agenttrail"]
    build_parser().parse_args(cmd)  # the default command is one the real CLI accepts
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".env", ".git", "tests"} <= ignored
    # everything `pip wheel .` needs stays in the build context
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"],
              *project["tool"]["setuptools"]["package-dir"].values()}
    assert needed & ignored == set()
