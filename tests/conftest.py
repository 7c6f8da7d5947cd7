"""Shared fixtures.

chDB binds one data path per process, so the whole session shares one embedded engine and
each test gets its own database.  Set AGENTTRAIL_TEST_CLICKHOUSE_URL (e.g.
http://default:@localhost:8123) to run the same tests against a ClickHouse server.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest

from agenttrail.storage import Store

_counter = itertools.count()


@pytest.fixture(scope="session")
def storage_dsn(tmp_path_factory) -> str:
    """The DSN every test's store uses: a ClickHouse server if configured, else embedded chDB."""
    url = os.environ.get("AGENTTRAIL_TEST_CLICKHOUSE_URL")
    if url:
        return url
    return "chdb://" + str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def database(request) -> str:
    """A database name unique to this test."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    return f"t{os.getpid()}_{next(_counter)}_{stem}"


@pytest.fixture
def store(storage_dsn, database):
    """A migrated store in a fresh database, dropped after the test."""
    s = Store.open(storage_dsn, database)
    yield s
    s.close()
    s.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture
def make_server(storage_dsn, database, tmp_path):
    """Start an in-process agenttrail server (ephemeral ports) with settings overrides.

    The server uses this test's database and a spool directory of its own (its default lives
    under data_dir, shared by every process that leaves it unset); every server started is
    stopped after the test.
    """
    from agenttrail.service.app import Service
    from agenttrail.service.settings import Settings

    started = []

    def start(**overrides):
        # ingest_workers=0 maps in-process: spawning worker processes for every test server
        # would add seconds each; tests/test_receiver_workers.py covers the process pool.
        values = dict(host="127.0.0.1", grpc_port=0, http_port=0, api_port=0,
                      storage=storage_dsn, database=database, ingest_workers=0,
                      spool_dir=str(tmp_path / f"spool{len(started)}"))
        values.update(overrides)
        service = Service(Settings(**values).validate()).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
    if started and started[0].store is not None:
        started[0].store.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture
def server(make_server):
    """A running agenttrail server with default settings (no API keys).

    Exposes ``grpc_endpoint`` (host:port), ``http_endpoint`` (base URL), ``api_url`` and ``store``.
    """
    return make_server()
