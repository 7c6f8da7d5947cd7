"""Settings precedence and validation, and the ``agenttrail serve`` command as users run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from agenttrail.service.settings import SettingsError, load_settings


def test_precedence_flag_over_env_over_file(tmp_path):
    config = tmp_path / "agenttrail.yaml"
    config.write_text("grpc_port: 1111\nhttp_port: 2222\napi_port: 3333\nttl_days: 9\n")
    env = {"AGENTTRAIL_HTTP_PORT": "4444", "AGENTTRAIL_API_PORT": "5555"}
    s = load_settings({"api_port": 6666}, env, str(config))
    assert (s.grpc_port, s.http_port, s.api_port, s.ttl_days) == (1111, 4444, 6666, 9)


def test_api_keys_from_file_and_env(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("api_keys:\n  - {key: file-key-123, scopes: [ingest, read], projects: [demo]}\n")
    s = load_settings({}, {}, str(config))
    assert s.keyring().authenticate("file-key-123", None).projects == {"demo"}
    s = load_settings({}, {"AGENTTRAIL_API_KEYS": "env-key-1234:read:a+b,admin-key-12:admin:*"})
    assert s.keyring().authenticate(None, "Bearer admin-key-12").projects is None


@pytest.mark.parametrize("content, message", [
    ("grpc_prot: 1\n", "invalid keys: grpc_prot"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("grpc_port: [1, 2]\n", "grpc_port"),
    ("key: [unclosed\n", "not valid YAML"),
    ("api_keys:\n  - {key: short}\n", "at least 8 characters"),
    ("api_keys:\n  - {key: long-enough-key, scopes: [superuser]}\n", "unknown scope"),
    ("api_keys:\n  - {key: long-enough-key, colour: red}\n", "invalid keys: colour"),
    ("capture_content: maybe\n", "capture_content"),
    ("a: &a [*a, *a]\n", "invalid keys: a"),
    ("spool_max_bytes: [1]\n", "spool_max_bytes"),
    ("spool_dir: {a: 1}\n", "spool_dir"),
    ("ack_after: [journal]\n", "ack_after"),
    ("ack_after: later\n", "ack_after must be journal or commit"),
])
def test_bad_config_files_name_the_problem(tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=message):
        load_settings({}, {}, str(config))


@pytest.mark.parametrize("env, message", [
    ({"AGENTTRAIL_GRPC_PORT": "4317x"}, "AGENTTRAIL_GRPC_PORT"),
    ({"AGENTTRAIL_API_PORT": "70000"}, "api_port must be between"),
    ({"AGENTTRAIL_HTTP_PORT": "8000"}, "must differ"),
    ({"AGENTTRAIL_MAX_REQUEST_BYTES": "-5"}, "max_request_bytes must be positive"),
    ({"AGENTTRAIL_LOG_LEVEL": "loud"}, "log_level"),
    ({"AGENTTRAIL_API_KEYS": "a:b:c:d"}, "more than key:scopes:projects"),
    ({"AGENTTRAIL_SPOOL_MAX_BYTES": "-1"}, "spool_max_bytes must be 0 \\(no spool\\) or a positive number"),
    ({"AGENTTRAIL_SPOOL_MAX_BYTES": "1G"}, "AGENTTRAIL_SPOOL_MAX_BYTES"),
    ({"AGENTTRAIL_SPOOL_MAX_BYTES": "9" * 5000}, "AGENTTRAIL_SPOOL_MAX_BYTES"),
    ({"AGENTTRAIL_ACK_AFTER": "stored"}, "ack_after must be journal or commit, not 'stored'"),
    ({"AGENTTRAIL_ACK_AFTER": "j" * 5000}, "ack_after must be journal or commit"),
])
def test_bad_environment_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({}, env)


def test_missing_config_file_is_reported():
    with pytest.raises(SettingsError, match="no-such-file"):
        load_settings({}, {}, "/no-such-file.yaml")


def test_non_loopback_needs_keys_or_insecure():
    with pytest.raises(SettingsError, match="--insecure"):
        load_settings({"host": "0.0.0.0"}, {})
    assert load_settings({"host": "0.0.0.0", "insecure": True}, {}).insecure
    keyed = load_settings({"host": "0.0.0.0"}, {"AGENTTRAIL_API_KEYS": "some-long-key"})
    assert keyed.keyring().enabled


def _cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "agenttrail.service.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_cli_rejects_bad_flags_with_exit_2():
    assert _cli("serve", "--grpc-port", "abc").returncode == 2
    refused = _cli("serve", "--host", "0.0.0.0")
    assert refused.returncode == 2 and "--insecure" in refused.stderr
    bad_env = _cli("serve", env={"AGENTTRAIL_TTL_DAYS": "soon"})
    assert bad_env.returncode == 2 and "AGENTTRAIL_TTL_DAYS" in bad_env.stderr
    assert _cli("frobnicate").returncode == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_on_the_embedded_store_and_stops_cleanly(tmp_path):
    api = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttrail.service.cli", "serve", "--data-dir", str(tmp_path),
         "--grpc-port", str(_free_port()), "--http-port", str(_free_port()), "--api-port", str(api)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{api}/health").json()["storage"] == "ok"
        assert (tmp_path / "clickhouse").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_spool_settings_default_next_to_the_data_and_take_a_configured_directory(tmp_path):
    s = load_settings({"data_dir": str(tmp_path)}, {})
    assert (s.resolved_spool_dir, s.spool_max_bytes) == (str(tmp_path / "spool"), 1024 ** 3)
    s = load_settings({}, {"AGENTTRAIL_SPOOL_DIR": str(tmp_path / "elsewhere"), "AGENTTRAIL_SPOOL_MAX_BYTES": "0"})
    assert (s.resolved_spool_dir, s.spool_max_bytes) == (str(tmp_path / "elsewhere"), 0)


def test_exports_are_answered_from_the_journal_unless_told_to_wait_for_the_commit():
    assert load_settings({}, {}).ack_after == "journal"
    assert load_settings({}, {"AGENTTRAIL_ACK_AFTER": "commit"}).ack_after == "commit"


def test_cli_names_a_spool_directory_it_cannot_use_and_exits_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    refused = _cli("serve", "--data-dir", str(tmp_path), "--spool-dir", str(blocker / "spool"),
                   "--grpc-port", str(_free_port()), "--http-port", str(_free_port()), "--api-port", str(_free_port()))
    assert refused.returncode == 2 and "spool_dir" in refused.stderr and "a-file" in refused.stderr
    assert _cli("serve", "--spool-max-bytes", "-5").returncode == 2
