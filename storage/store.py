"""The storage facade: one object that owns the connection settings, the schema and the writer.

Everything above storage (receiver, API, validator, CLI) talks to a :class:`Store`; none of
them builds a ClickHouse client or knows which engine is behind it.
"""

from __future__ import annotations

import threading

from .client import StorageTarget, open_client, resolve_target
from .errors import StorageUnavailable
from .schema import SchemaOptions, migrate
from .spool import Spool
from .writer import BatchWriter


class Store:
    """A migrated agenttrail database plus its writer.

    Reads go through :meth:`query` / :meth:`command`, which use one client per thread (chDB
    clients keep their current database per handle, and HTTP clients are cheap to keep).
    """

    def __init__(self, target: StorageTarget, options: SchemaOptions, *,
                 max_pending_spans: int = 200_000, max_group_spans: int = 50_000,
                 spool_dir: str | None = None, spool_max_bytes: int = 0, journal: bool = False):
        self.target = target
        self.options = options
        self._local = threading.local()
        # In cluster mode the writer reads back what it just inserted (dedup, run recompute), so
        # inserts into Distributed tables must be synchronous, and run-level IN subqueries must
        # stay on the shard that holds the run (steps are sharded by run_id).
        self._settings = (
            {"distributed_foreground_insert": 1, "distributed_product_mode": "local"} if options.cluster else {}
        )
        migrate(self.client(), options)
        # With a spool, writes that fail because ClickHouse is down are kept on local disk and
        # committed once it is back (storage/spool.py); without one, they fail (retry later).
        # With ``journal``, every write is acknowledged once it is in the spool, and committed
        # behind it (BatchWriter).
        spool = Spool.claim(spool_dir, spool_max_bytes) if spool_dir and spool_max_bytes > 0 else None
        self.writer = BatchWriter(
            lambda: open_client(target, **self._settings),
            max_pending_spans=max_pending_spans,
            max_group_spans=max_group_spans,
            sole_writer=target.embedded,  # chDB binds its directory to this process
            spool=spool,
            journal=journal and spool is not None,
        ).start()

    @classmethod
    def open(cls, dsn: str, database: str | None = None, *, ttl_days: int = 0,
             cluster: str | None = None, **writer_options) -> "Store":
        """Open (and migrate) the store at ``dsn``."""
        target = resolve_target(dsn, database)
        options = SchemaOptions(database=target.database, cluster=cluster, ttl_days=ttl_days)
        return cls(target, options, **writer_options)

    @property
    def database(self) -> str:
        """The ClickHouse database holding agenttrail's tables."""
        return self.target.database

    def client(self):
        """This thread's ClickHouse client."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = open_client(self.target, **self._settings)
        return client

    def query(self, sql: str, parameters: dict | None = None, **kwargs):
        """Run a SELECT with bound ``{name:Type}`` parameters; returns a clickhouse-connect result."""
        try:
            return self.client().query(sql, parameters=parameters or {}, **kwargs)
        except Exception as exc:
            self._on_error(exc)
            raise

    def command(self, sql: str, parameters: dict | None = None):
        """Run a statement that returns no rows."""
        try:
            return self.client().command(sql, parameters=parameters or {})
        except Exception as exc:
            self._on_error(exc)
            raise

    def _on_error(self, exc: Exception) -> None:
        """A connection failure drops this thread's client (reconnect next time) and is raised
        as StorageUnavailable; a query error (bad SQL, missing table) keeps the client."""
        if _is_connection_error(exc):
            self._local.client = None
            raise StorageUnavailable(f"storage unreachable: {exc}") from exc

    def spool_status(self) -> dict | None:
        """The spool's backlog (batches, spans, bytes, oldest_age_s, max_bytes); None without a spool."""
        return self.writer.spool_status()

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every write acknowledged so far can be read from ClickHouse itself (by
        Grafana, or a script's own queries); False if the store did not take it in time."""
        return self.writer.flush(timeout)

    def visibility_mark(self) -> int | None:
        """A mark of the writes acknowledged so far that are not yet readable (None: none);
        see :meth:`visible`."""
        return self.writer.visibility_mark()

    def visible(self, mark: int) -> bool:
        """Whether the writes acknowledged before ``mark`` can be read (or will not be soon)."""
        return self.writer.visible(mark)

    def ping(self) -> bool:
        """True when the store answers and agenttrail's tables are there."""
        try:
            rows = self.query(
                "SELECT count() FROM system.tables WHERE database = {db:String} AND name IN ('steps', 'runs')",
                {"db": self.database},
            ).result_rows
            return rows == [(2,)]
        except Exception:
            return False

    def close(self) -> None:
        """Flush the writer and stop it."""
        self.writer.close()


def _is_connection_error(exc: Exception) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, (OperationalError, ConnectionError, OSError))
