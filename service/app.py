"""Process wiring: one store, the OTLP receivers (gRPC + HTTP) and the REST API, one event loop.

:class:`Service` is what ``agenttrail serve`` runs and what the tests start in-process (on
ephemeral ports, in a background thread) — the same code path either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading

import uvicorn

from agenttrail.api.app import create_app
from agenttrail.notify import Dispatcher, EventWatcher, parse_webhooks
from agenttrail.receiver.ingest import TraceIngestor
from agenttrail.receiver.mapping import MappingOptions
from agenttrail.receiver.otlp_grpc import create_grpc_server
from agenttrail.receiver.otlp_http import create_http_receiver
from agenttrail.receiver.pool import WORKER_NICENESS, MappingPool
from agenttrail.receiver.pricing import PriceTable
from agenttrail.storage import Store
from agenttrail.storage.spool import SpoolError
from agenttrail.validator.auto import AutoValidator

from .settings import Settings, SettingsError
from .telemetry import add_metrics_endpoint

log = logging.getLogger("agenttrail")


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`Service`."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class Service:
    """The running agenttrail server.  Ports of 0 are replaced by the bound ports once started."""

    def __init__(self, settings: Settings, store: Store | None = None):
        self.settings = settings
        self.store = store
        self._owns_store = store is None
        self.ingestor = None  # set once serving: the receivers' shared ingest path
        self.api_app = None  # set once serving: the REST API's FastAPI app
        self.grpc_port = settings.grpc_port
        self.http_port = settings.http_port
        self.api_port = settings.api_port
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.event_watcher: EventWatcher | None = None  # set once serving, with webhooks
        self.webhooks = Dispatcher(parse_webhooks(list(settings.webhooks)))  # no thread without webhooks

    # -- endpoints, for clients and tests ---------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        """``host:port`` of the OTLP/gRPC receiver."""
        return f"{self.settings.host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver (append ``/v1/traces``)."""
        return f"http://{self.settings.host}:{self.http_port}"

    @property
    def api_url(self) -> str:
        """Base URL of the REST API."""
        return f"http://{self.settings.host}:{self.api_port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def _open_store(self) -> Store:
        s = self.settings
        if not s.storage:
            os.makedirs(s.data_dir, exist_ok=True)
        try:
            return Store.open(s.storage_dsn, s.database or None, ttl_days=s.ttl_days,
                              cluster=s.cluster or None, max_pending_spans=s.max_pending_spans,
                              spool_dir=s.resolved_spool_dir, spool_max_bytes=s.spool_max_bytes,
                              journal=s.ack_after == "journal")
        except SpoolError as exc:
            raise SettingsError(f"spool_dir: {exc}") from None

    def _mapping_options(self) -> MappingOptions:
        s = self.settings
        prices = PriceTable.load(s.prices_file) if s.prices_file else PriceTable.default()
        return MappingOptions(capture_content=s.capture_content,
                              capture_content_projects=frozenset(s.capture_content_projects),
                              max_value_bytes=s.max_value_bytes, prices=prices)

    async def serve(self) -> None:
        """Run until :meth:`request_stop` (or a signal, from the CLI)."""
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.store is None:
            self.store = self._open_store()
        await self._loop.run_in_executor(None, self.store.writer.prepare)  # before any span arrives
        keyring = s.keyring()
        pool = MappingPool(self._mapping_options(), workers=s.resolved_ingest_workers,
                           niceness=0 if self.store.writer.journal else WORKER_NICENESS)
        await pool.start()
        ingestor = self.ingestor = TraceIngestor(self.store.writer, pool, s.write_timeout, s.max_inflight_bytes)

        grpc_server = create_grpc_server(ingestor, keyring, s.max_request_bytes)
        self.grpc_port = grpc_server.add_insecure_port(f"{s.host}:{s.grpc_port}")
        await grpc_server.start()

        servers = []
        api = self.api_app = create_app(self.store, keyring)
        add_metrics_endpoint(api, ingestor.counters, self.store.writer, pool, self.webhooks, self.store)
        for app, attr in ((create_http_receiver(ingestor, keyring, s.max_request_bytes), "http_port"),
                          (api, "api_port")):
            config = uvicorn.Config(app, host=s.host, port=getattr(self, attr), log_level="warning",
                                    lifespan="off", access_log=False,
                                    limit_concurrency=1000, timeout_keep_alive=30)
            server = _QuietServer(config)
            servers.append((server, attr))
        tasks = [asyncio.create_task(server.serve()) for server, _ in servers]
        try:
            for (server, attr), task in zip(servers, tasks):
                while not server.started:
                    if task.done():
                        task.result()  # re-raise the bind error
                        raise RuntimeError(f"{attr} server stopped during start-up")
                    await asyncio.sleep(0.01)
                setattr(self, attr, server.servers[0].sockets[0].getsockname()[1])
            log.info("agenttrail: OTLP/gRPC %s, OTLP/HTTP %s, API %s, storage %s",
                     self.grpc_endpoint, self.http_endpoint, self.api_url, self.store.target.dsn.split("@")[-1])
            self._started.set()
            background = [asyncio.create_task(self._auto_validate())]
            if self.webhooks.webhooks:
                background.append(asyncio.create_task(self._watch_events()))
            await self._stop.wait()
            for task in background:
                task.cancel()
        finally:
            api.state.stopping.set()  # open event streams end, or uvicorn would wait on them
            for server, _ in servers:
                server.should_exit = True
            await grpc_server.stop(grace=3)
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(None, pool.close)
            await asyncio.get_running_loop().run_in_executor(None, self.webhooks.close)
            if self._owns_store:
                await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    async def _auto_validate(self) -> None:
        """Validate completed runs against attached runbooks, every few seconds, off the loop."""
        validator = AutoValidator(self.store, quiet_seconds=self.settings.auto_validate_quiet_seconds)
        interval = max(0.5, min(5.0, self.settings.auto_validate_quiet_seconds / 2))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                await loop.run_in_executor(None, validator.tick)
            except Exception:  # a storage outage must not end automatic validation for good
                log.warning("automatic validation pass failed", exc_info=True)

    async def _watch_events(self, interval: float = 1.0) -> None:
        """Publish webhook events found in storage every ``interval`` seconds, off the loop;
        delivery runs on the dispatcher's own thread, so neither waits on a slow receiver."""
        watcher = self.event_watcher = EventWatcher(self.store, self.webhooks)
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, watcher.tick)
            except Exception:  # a storage outage must not end notifications for good
                log.warning("webhook event pass failed", exc_info=True)
            await asyncio.sleep(interval)

    def request_stop(self) -> None:
        """Ask :meth:`serve` to shut down (thread-safe)."""
        if self._loop and self._stop and not self._loop.is_closed():  # stopping twice is a no-op
            self._loop.call_soon_threadsafe(self._stop.set)

    # -- background mode (tests, embedding) -----------------------------------------------------

    def start(self, timeout: float = 60.0) -> "Service":
        """Serve from a background thread; return once every listener is bound."""

        def run():
            try:
                asyncio.run(self.serve())
            except BaseException as exc:  # surfaced by start()
                self._error = exc
                self._started.set()

        self._thread = threading.Thread(target=run, name="agenttrail-service", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("agenttrail service did not start in time")
        if self._error:
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop a service started with :meth:`start`."""
        self.request_stop()
        if self._thread:
            self._thread.join(timeout)
