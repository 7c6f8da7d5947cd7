"""Storage outages for tests: clients that fail the way clickhouse-connect fails on a lost server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
from clickhouse_connect.driver.exceptions import OperationalError


class Outage:
    """A switch over the writer's ClickHouse clients (``BatchWriter.wrap_clients``).

    While ``down``, every statement of a wrapped client raises OperationalError, the class
    clickhouse-connect raises when the server cannot be reached; with ``after_insert``, the
    server goes away only once the next steps insert has gone through (a commit lost
    half-way: its steps stored, its run rows not).
    """

    def __init__(self, after_insert: bool = False):
        self.down = threading.Event()
        self.after_insert = after_insert
        self.lost = threading.Event()  # after_insert: the insert went through, the server is gone

    def wrap(self, client):
        return _FailingClient(client, self)

    def __enter__(self):
        self.down.set()
        return self

    def __exit__(self, *exc):
        self.down.clear()
        self.lost.clear()


class _FailingClient:
    def __init__(self, client, outage: Outage):
        self._client, self._outage = client, outage

    def _check(self) -> None:
        outage = self._outage
        if outage.down.is_set() and (not outage.after_insert or outage.lost.is_set()):
            raise OperationalError("Error HTTPConnectionPool(host='clickhouse', port=8123): "
                                   "Connection refused executing HTTP request attempt 1")

    def query(self, *args, **kwargs):
        self._check()
        return self._client.query(*args, **kwargs)

    def command(self, *args, **kwargs):
        self._check()
        return self._client.command(*args, **kwargs)

    def raw_insert(self, *args, **kwargs):
        self._check()
        result = self._client.raw_insert(*args, **kwargs)
        if self._outage.down.is_set() and self._outage.after_insert:
            self._outage.lost.set()
        return result

    def __getattr__(self, name):
        return getattr(self._client, name)


class Stall:
    """A switch over the writer's ClickHouse clients that holds every steps insert until
    released: a store that is up but slow, so a test can see what happens before a commit."""

    def __init__(self):
        self.held = threading.Event()
        self.held.set()
        self.waiting = threading.Event()  # an insert is being held

    def wrap(self, client):
        return _StalledClient(client, self)

    def release(self) -> None:
        self.held.clear()


class _StalledClient:
    def __init__(self, client, stall: Stall):
        self._client, self._stall = client, stall

    def raw_insert(self, *args, **kwargs):
        while self._stall.held.is_set():
            self._stall.waiting.set()
            time.sleep(0.01)
        return self._client.raw_insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def spool_of(api_url: str) -> dict:
    """The ``spool`` part of ``GET /health``."""
    return httpx.get(api_url + "/health", timeout=10).json()["spool"]


def metric(api_url: str, name: str) -> float:
    """One unlabelled sample of ``GET /metrics``."""
    for line in httpx.get(api_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def job(action: str, data_dir) -> str:
    """Run one step of tests/spool_jobs.py on ``data_dir``'s embedded store; its output."""
    done = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "spool_jobs.py"), action,
                           str(data_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir, *flags: str):
    """``agenttrail serve`` on ``data_dir`` (free ports, in-process mapping) and ``flags``, once
    it answers: (process, API URL, OTLP/HTTP traces URL)."""
    ports = {name: free_port() for name in ("grpc", "http", "api")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenttrail.service.cli", "serve", "--data-dir", str(data_dir), "--ingest-workers", "0",
         "--grpc-port", str(ports["grpc"]), "--http-port", str(ports["http"]), "--api-port", str(ports["api"]), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{ports['api']}"

    def up():
        assert proc.poll() is None, proc.stderr.read()
        try:
            return httpx.get(api + "/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=90, what="agenttrail serve to answer")
    return proc, api, f"http://127.0.0.1:{ports['http']}/v1/traces"
