"""Opening ClickHouse: the embedded chDB engine or a server, through one client library.

clickhouse-connect speaks to both — ``chdb:///path`` runs ClickHouse in this process,
``http(s)://user:pass@host:8123/db`` talks to a server — so every query in agenttrail goes
through the same client API and the same SQL, whichever store is configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import clickhouse_connect

from .schema import SchemaOptions


class StorageConfigError(ValueError):
    """The storage DSN or its options cannot be used."""


@dataclass(frozen=True)
class StorageTarget:
    """Where the data lives: a parsed DSN plus the database to use."""

    dsn: str
    database: str

    @property
    def embedded(self) -> bool:
        """True for the in-process chDB engine."""
        return self.dsn.startswith("chdb://")


def resolve_target(dsn: str, database: str | None = None) -> StorageTarget:
    """Check a DSN and pick the database: explicit, else the DSN's path (servers), else default."""
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        if not parts.path:
            raise StorageConfigError(f"chdb DSN needs a path, e.g. chdb:///var/lib/agenttrail: {dsn!r}")
        db = database or "agenttrail"
    elif parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise StorageConfigError(f"ClickHouse server DSN needs a host: {dsn!r}")
        db = database or parts.path.strip("/") or "agenttrail"
    else:
        raise StorageConfigError(
            f"unsupported storage DSN scheme {parts.scheme!r}: use chdb:///path or http(s)://host:8123/db"
        )
    SchemaOptions(database=db)  # validates the name
    return StorageTarget(dsn=dsn, database=db)


def _server_dsn_without_database(dsn: str) -> str:
    parts = urlsplit(dsn)
    return parts._replace(path="").geturl()


def open_client(target: StorageTarget, **settings):
    """A new client whose default database is ``target.database`` (created if missing).

    Each thread that queries concurrently should own a client: chDB clients carry their
    session state (the current database) per handle.
    """
    if target.embedded:
        path = urlsplit(target.dsn).path
        os.makedirs(path, exist_ok=True)
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}", settings=settings or None)
    else:
        client = clickhouse_connect.get_client(
            dsn=_server_dsn_without_database(target.dsn), settings=settings or None
        )
    client.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
    client.database = target.database
    if target.embedded:
        client.command(f"USE {target.database}")
    return client
