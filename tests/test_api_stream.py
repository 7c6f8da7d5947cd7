"""``GET /v1/runs/stream``: live runs as Server-Sent Events, over real HTTP and real exporters."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from api_helpers import ADMIN, INGEST_A, KEYS, READ_A, client
from otel_helpers import record_support_run

WAIT = 20.0  # seconds before a test gives up waiting for an event (a hang guard, not a speed check)


class EventReader:
    """Reads one event stream in a thread; ``events`` receives (event, data) pairs, then None."""

    def __init__(self, server, key: str | None, **params):
        self.events: queue.Queue = queue.Queue()
        self.status = None
        self._client = httpx.Client(base_url=server.api_url, timeout=httpx.Timeout(WAIT, read=None),
                                    headers={"x-api-key": key} if key else {})
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(params,), daemon=True)
        self._thread.start()
        assert self._ready.wait(WAIT)

    def _read(self, params):
        try:
            with self._client.stream("GET", "/v1/runs/stream", params=params) as response:
                self.status = response.status_code
                self.body = response.read() if response.status_code != 200 else b""
                self._ready.set()
                event, data = None, []
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and event:
                        self.events.put((event, json.loads("".join(data))))
                        event, data = None, []
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()
            self.events.put(None)

    def next(self, event: str = "run"):
        """The next event of this kind, skipping others."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            item = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            assert item is not None, "the stream ended"
            if item[0] == event:
                return item[1]
        raise AssertionError(f"no {event} event")

    def until(self, predicate):
        """The first run event satisfying ``predicate``; every run seen is kept in ``seen``."""
        self.seen = getattr(self, "seen", [])
        while True:
            run = self.next()
            self.seen.append(run)
            if predicate(run):
                return run

    def close(self):
        self._client.close()
        self._thread.join(WAIT)


@pytest.fixture
def keyed(make_server):
    return make_server(api_keys=KEYS)


def _export(server, project: str, fail: bool = False, key: str = ADMIN) -> str:
    spans, run_id = record_support_run(project=project, fail_tool=fail)
    exporter = HttpExporter(endpoint=server.http_endpoint + "/v1/traces", headers={"x-api-key": key})
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    return run_id


def test_stream_sends_new_runs_and_their_finish(keyed):
    reader = EventReader(keyed, READ_A, interval=0.2)
    try:
        assert reader.status == 200 and reader.next("ready")["interval"] == 0.2
        with client(keyed, INGEST_A) as c:
            stored = c.post("/v1/events", json={"events": [
                {"type": "run.start", "run_id": "live-1", "project_id": "proj-a", "agent": "tailer"}]}).json()
            run_id = stored["run_ids"]["live-1"]
            started = reader.until(lambda r: r["run_id"] == run_id)
            assert started["status"] == "in_progress" and started["agent_name"] == "tailer"
            c.post("/v1/events", json={"events": [{"type": "run.end", "run_id": "live-1", "status": "ok"}]})
            finished = reader.until(lambda r: r["run_id"] == run_id and r["status"] != "in_progress")
        assert finished["status"] == "ok" and finished["ended_at"] and finished["validation"] is None
        exported = _export(keyed, "proj-a")
        seen = reader.until(lambda r: r["run_id"] == exported)
        assert seen["step_count"] == 5 and seen["tools"] == ["order_lookup", "shipping_status"]
    finally:
        reader.close()


def test_a_key_for_one_project_never_sees_another(keyed):
    reader = EventReader(keyed, READ_A, interval=0.2)
    admin = EventReader(keyed, ADMIN, interval=0.2)
    try:
        other = _export(keyed, "proj-b")
        mine = _export(keyed, "proj-a")
        # The admin stream sees both, in any order; the proj-a key only its own.
        admin.until(lambda r: r["run_id"] == other)
        reader.until(lambda r: r["run_id"] == mine)
        late = _export(keyed, "proj-b")
        admin.until(lambda r: r["run_id"] == late)
        marker = _export(keyed, "proj-a")
        reader.until(lambda r: r["run_id"] == marker)
        assert {r["project_id"] for r in reader.seen} == {"proj-a"}
        asking = EventReader(keyed, READ_A, interval=0.2, project_id="proj-b")
        try:
            asking.next("ready")
            _export(keyed, "proj-b")
            mine_again = _export(keyed, "proj-a")
            reader.until(lambda r: r["run_id"] == mine_again)
            time.sleep(1.0)  # several polls of the proj-b stream after both exports committed
            assert asking.events.empty()
        finally:
            asking.close()
    finally:
        reader.close()
        admin.close()


def test_stream_applies_the_run_list_filters(server):
    reader = EventReader(server, None, interval=0.2, has_errors="true", project_id="shop")
    try:
        _export(server, "shop")
        _export(server, "other", fail=True)
        failed = _export(server, "shop", fail=True)
        run = reader.until(lambda r: True)
        assert run["run_id"] == failed and run["error_count"] == 1
    finally:
        reader.close()


@pytest.mark.parametrize("query, parameter", [
    ("status=broken", "status"), ("interval=0", "interval"), ("interval=nan", "interval"),
    ("interval=1e9", "interval"), ("since=yesterday", "since"), ("has_errors=maybe", "has_errors"),
    ("agent=" + "x" * 300, "agent"), ("min_cost=-1", "min_cost"),
    ("validation_status=%00", "validation_status"), ("since=2030-01-01&until=2020-01-01", "since"),
])
def test_bad_parameters_are_422_and_the_server_stays_up(keyed, query, parameter):
    with client(keyed, READ_A) as c:
        answer = c.get("/v1/runs/stream?" + query)
        assert answer.status_code == 422, answer.text
        assert parameter in {d["parameter"] for d in answer.json()["error"]["details"]}
        assert c.get("/health").status_code == 200


def test_stream_needs_a_read_key(keyed):
    with client(keyed, None) as c:
        assert c.get("/v1/runs/stream").json()["error"]["code"] == "unauthorized"
    with client(keyed, "not-a-key") as c:
        assert c.get("/v1/runs/stream").status_code == 401


def _open_streams(server) -> int:
    return server.api_app.state.open_streams


def _wait_for(predicate) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stream_ends_when_the_client_disconnects(server):
    readers = [EventReader(server, None, interval=0.2) for _ in range(3)]
    for reader in readers:
        reader.next("ready")
    assert _open_streams(server) == 3
    for reader in readers:
        reader.close()
    assert _wait_for(lambda: _open_streams(server) == 0)
    with client(server, None) as c:
        assert c.get("/health").status_code == 200


def test_stream_ends_when_the_server_stops(make_server):
    server = make_server()
    reader = EventReader(server, None, interval=5)
    reader.next("ready")
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive(), "the server did not stop with a stream open"
    assert _wait_for(lambda: not reader._thread.is_alive())
    reader.close()


def test_too_many_streams_is_503(server, monkeypatch):
    from agenttrail.api import stream
    monkeypatch.setattr(stream, "MAX_STREAMS", 1)
    reader = EventReader(server, None)
    try:
        reader.next("ready")
        with client(server, None) as c:
            answer = c.get("/v1/runs/stream")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    finally:
        reader.close()


def test_stream_survives_a_storage_outage(server):
    reader = EventReader(server, None, interval=0.2)
    try:
        reader.next("ready")
        server.store.command("RENAME TABLE runs TO runs_away")  # every poll fails meanwhile
        time.sleep(1.0)
        server.store.command("RENAME TABLE runs_away TO runs")
        run_id = _export(server, "shop")
        assert reader.until(lambda r: r["run_id"] == run_id)["step_count"] == 5
    finally:
        reader.close()
