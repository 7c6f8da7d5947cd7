"""A ClickHouse server that goes away behind a TCP proxy the test controls (server mode).

Runs only with AGENTTRAIL_TEST_CLICKHOUSE_URL set (there is no server otherwise; the embedded
store's outages are tested in test_storage_spool.py and test_receiver_spool.py).
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlsplit

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agenttrail.receiver.mapping import map_export_request
from agenttrail.storage import EncodedSteps, Store

from otel_helpers import record_support_run
from spool_helpers import wait_for

SERVER = os.environ.get("AGENTTRAIL_TEST_CLICKHOUSE_URL", "")
pytestmark = pytest.mark.skipif(not SERVER.startswith("http"), reason="needs AGENTTRAIL_TEST_CLICKHOUSE_URL")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`cut` drops every connection and refuses
    new ones (the server is gone), :meth:`restore` lets them through again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._sockets.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_writes_while_the_server_is_unreachable_are_spooled_then_stored_once(database, tmp_path):
    parts = urlsplit(SERVER)
    proxy = TcpProxy((parts.hostname, parts.port or 8123))
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    store = Store.open(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}").geturl(), database,
                       spool_dir=str(tmp_path / "spool"), spool_max_bytes=1 << 24)
    store.writer.drainer.retry = store.writer.drainer.max_retry = 0.2
    runs = [record_support_run() for _ in range(3)]
    batches = [EncodedSteps.of(map_export_request(encode_spans(spans)).batch, 0) for spans, _ in runs]
    try:
        assert not store.writer.write(batches[0], timeout=60).spooled
        proxy.cut()
        assert all(store.writer.write(b, timeout=60).spooled for b in batches[1:] + batches[:1])
        assert store.spool_status()["spans"] == 15
        wait_for(lambda: store.writer.stats["drain_failures"] >= 1, what="a failed drain")
        proxy.restore()
        wait_for(lambda: store.spool_status()["batches"] == 0, what="the spool to drain")
        rows = store.query("SELECT count(), uniqExact(project_id, run_id, step_id) FROM steps").result_rows
        assert rows == [(15, 15)]
        steps = store.query("SELECT run_id, step_count FROM runs FINAL").result_rows
        assert sorted(steps) == sorted((run_id, 5) for _, run_id in runs)
    finally:
        proxy.restore()
        store.close()
        store.command(f"DROP DATABASE IF EXISTS {database}")
        proxy.close()
