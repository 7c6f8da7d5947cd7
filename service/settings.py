"""Every setting of ``agenttrail serve``, and where each one comes from.

Precedence, highest first: command-line flag → ``AGENTTRAIL_<NAME>`` environment variable →
the YAML file given by ``--config`` (or ``AGENTTRAIL_CONFIG``) → the default below.  A bad
value is reported with the name it came from (flag, variable or file key), and unknown keys
in the config file are rejected by name.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

import yaml

from agenttrail.notify import WebhookConfigError, parse_webhooks

from .auth import ApiKey, AuthConfigError, KeyRing, parse_keys_env

MiB = 1024 * 1024


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names where it came from."""


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "agenttrail")


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one agenttrail process."""

    host: str = field(default="127.0.0.1", metadata={"help": "address every listener binds"})
    grpc_port: int = field(default=4317, metadata={"help": "OTLP/gRPC port (0 = any free port)"})
    http_port: int = field(default=4318, metadata={"help": "OTLP/HTTP port (0 = any free port)"})
    api_port: int = field(default=8000, metadata={"help": "REST API port (0 = any free port)"})
    data_dir: str = field(default_factory=_default_data_dir,
                          metadata={"help": "where the embedded store keeps its files"})
    storage: str = field(default="", metadata={
        "help": "ClickHouse DSN: chdb:///path (embedded) or http(s)://user:pass@host:8123/db; "
                "default: embedded under data_dir"})
    database: str = field(default="", metadata={"help": "ClickHouse database (default: from the DSN, else agenttrail)"})
    cluster: str = field(default="", metadata={"help": "ClickHouse cluster name: ON CLUSTER DDL and Distributed tables"})
    ttl_days: int = field(default=0, metadata={"help": "drop steps and runs older than this many days (0 = keep)"})
    insecure: bool = field(default=False, metadata={
        "help": "allow listening on a non-loopback address with no API keys configured"})
    api_keys: tuple = field(default=(), metadata={
        "help": "API keys; env form key:scope+scope:project+project,… ; file form a list of "
                "{key, scopes, projects}"})
    max_request_bytes: int = field(default=20 * MiB, metadata={
        "help": "largest OTLP request accepted, after decompression"})
    max_inflight_bytes: int = field(default=256 * MiB, metadata={
        "help": "bytes of OTLP requests handled at once before ingest answers 503 / UNAVAILABLE"})
    max_pending_spans: int = field(default=200_000, metadata={
        "help": "spans waiting to be written before ingest answers 503 / UNAVAILABLE"})
    ingest_workers: int = field(default=-1, metadata={
        "help": "processes that decode and map spans: 0 maps in the server process, -1 one per CPU core"})
    spool_dir: str = field(default="", metadata={
        "help": "where batches are kept while ClickHouse cannot take them (default: data_dir/spool); "
                "each process takes a free slot in it (spool_dir/0, /1, ...)"})
    spool_max_bytes: int = field(default=1024 * MiB, metadata={
        "help": "bytes of batches the spool may hold before ingest answers 503 / UNAVAILABLE "
                "during a storage outage (0 = no spool: refuse at once)"})
    ack_after: str = field(default="journal", metadata={
        "help": "when an export is answered: journal (once fsync'd in the spool, committed to ClickHouse "
                "right behind it) or commit (once ClickHouse has it); journal needs the spool "
                "(spool_max_bytes > 0), and without one is commit"})
    write_timeout: float = field(default=8.0, metadata={
        "help": "seconds an export waits for its spans to be stored before answering retryable"})
    capture_content: bool = field(default=False, metadata={
        "help": "keep message content (prompts, completions) for every project"})
    capture_content_projects: tuple = field(default=(), metadata={
        "help": "projects whose message content is kept (comma separated in the env)"})
    max_value_bytes: int = field(default=16_384, metadata={"help": "longest attribute value kept; longer ones are truncated and flagged"})
    prices_file: str = field(default="", metadata={"help": "YAML price table merged over the built-in model prices"})
    auto_validate_quiet_seconds: float = field(default=30.0, metadata={
        "help": "a run is validated automatically this long after its last span, once its root arrived"})
    log_level: str = field(default="info", metadata={"help": "debug, info, warning or error"})
    webhooks: tuple = field(default=(), metadata={
        "help": "webhooks (config file only): a list of {url, events, projects, secret}; see docs/webhooks.md"})

    @property
    def storage_dsn(self) -> str:
        """The DSN to open: ``storage`` or the embedded store under ``data_dir``."""
        if self.storage:
            return self.storage
        return "chdb://" + os.path.join(os.path.abspath(self.data_dir), "clickhouse")

    @property
    def resolved_spool_dir(self) -> str:
        """``spool_dir``, or ``spool`` under ``data_dir``."""
        return os.path.abspath(self.spool_dir or os.path.join(self.data_dir, "spool"))

    @property
    def resolved_ingest_workers(self) -> int:
        """``ingest_workers`` with -1 (automatic) resolved to the number of CPU cores."""
        return (os.cpu_count() or 1) if self.ingest_workers == -1 else self.ingest_workers

    def keyring(self) -> KeyRing:
        """The configured API keys."""
        try:
            return KeyRing(ApiKey.from_config(e, i) for i, e in enumerate(self.api_keys))
        except AuthConfigError as exc:
            raise SettingsError(str(exc)) from exc

    def validate(self) -> "Settings":
        """Reject combinations that would be unsafe or cannot work."""
        for name in ("grpc_port", "http_port", "api_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name} must be between 0 and 65535, not {port}")
        nonzero = [p for p in (self.grpc_port, self.http_port, self.api_port) if p]
        if len(nonzero) != len(set(nonzero)):
            raise SettingsError("grpc_port, http_port and api_port must differ")
        if self.ingest_workers < -1:
            raise SettingsError(f"ingest_workers must be -1 (one per core), 0 or a positive number, not {self.ingest_workers}")
        for name in ("max_request_bytes", "max_inflight_bytes", "max_pending_spans", "max_value_bytes"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.spool_max_bytes < 0:
            raise SettingsError(f"spool_max_bytes must be 0 (no spool) or a positive number of bytes, "
                                f"not {self.spool_max_bytes}")
        if self.ack_after not in ("journal", "commit"):
            raise SettingsError(f"ack_after must be journal or commit, not {self.ack_after!r}")
        if self.write_timeout <= 0 or self.ttl_days < 0:
            raise SettingsError("write_timeout must be positive and ttl_days not negative")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"log_level must be debug, info, warning or error, not {self.log_level!r}")
        try:
            parse_webhooks(list(self.webhooks))
        except WebhookConfigError as exc:
            raise SettingsError(str(exc)) from None
        keyring = self.keyring()
        if not keyring.enabled and not self.insecure and not _is_loopback(self.host):
            raise SettingsError(
                f"refusing to listen on {self.host} with no API keys configured: add api_keys "
                "(see README) or pass --insecure to accept unauthenticated traffic"
            )
        return self


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any, source: str):
    """Convert ``value`` to the type of setting ``name``; errors name ``source``."""
    default = FIELDS[name].default
    kind = str if default is MISSING else type(default)
    try:
        if name == "api_keys":
            if isinstance(value, str):
                return tuple(parse_keys_env(value))
            if not isinstance(value, list):
                raise ValueError("expected a list of {key, scopes, projects}")
            return tuple(value)
        if name == "webhooks":
            if not isinstance(value, list):
                raise ValueError("expected a list of {url, events, projects, secret}, in the config file")
            return tuple(value)
        if kind is tuple:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError("expected a list of strings")
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError("expected true or false")
        if kind is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if not isinstance(value, (str, int, float)):
            raise ValueError("expected a string")
        return str(value)
    except (TypeError, ValueError, AuthConfigError) as exc:
        raise SettingsError(f"{source}: invalid value {value!r}: {exc}") from None


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML config file into setting values, rejecting unknown keys by name."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: top level must be a mapping of settings")
    unknown = sorted(set(map(str, data)) - set(FIELDS))
    if unknown:
        raise SettingsError(f"config file {path} has invalid keys: {', '.join(unknown)}")
    return {k: _coerce(k, v, f"config file {path}: {k}") for k, v in data.items()}


def load_settings(cli: dict[str, Any] | None = None, environ: dict[str, str] | None = None,
                  config_path: str | None = None) -> Settings:
    """Resolve settings from flags (``cli``, None values ignored), environment and config file."""
    environ = os.environ if environ is None else environ
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    values: dict[str, Any] = {}
    path = config_path or environ.get("AGENTTRAIL_CONFIG")
    if path:
        values.update(load_config_file(path))
    for name in FIELDS:
        env_name = "AGENTTRAIL_" + name.upper()
        if env_name in environ:
            values[name] = _coerce(name, environ[env_name], env_name)
    for name, value in cli.items():
        if name not in FIELDS:
            raise SettingsError(f"unknown setting {name!r}")
        values[name] = _coerce(name, value, "--" + name.replace("_", "-"))
    return replace(Settings(), **values).validate()
