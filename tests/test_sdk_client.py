"""Client behaviour the real server cannot be made to show on demand: 503 with Retry-After,
answers that never come, refused connections, odd bodies.  A tiny local HTTP server of the
test's own plays those parts; the Client and httpx are the real ones.
"""

from __future__ import annotations

import json
import socket
import threading
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agenttrail.sdk import Client, errors
from agenttrail.sdk.models import Run, Summary


class Script:
    """Answers to serve in order (status, headers, body); the last one repeats."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.hold = threading.Event()
        self.hold.set()

    def next(self):
        index = min(len(self.requests) - 1, len(self.answers) - 1)
        return self.answers[index]


@pytest.fixture
def scripted():
    servers = []

    def start(*answers) -> tuple[str, Script]:
        script = Script(*answers)

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                script.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                script.hold.wait(30)
                status, headers, body = script.next()
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, script))
        return f"http://127.0.0.1:{server.server_address[1]}", script

    yield start
    for server, script in servers:
        script.hold.set()
        server.shutdown()
        server.server_close()


class RecordingClient(Client):
    """The real client, with the pause between retries recorded instead of slept."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []
        self._sleep = self.waits.append


PROJECTS = {"projects": [{"project_id": "demo", "run_count": 3, "first_seen": "2026-01-21T00:00:00Z",
                          "last_seen": "2026-01-22T00:00:00Z", "added_later": 1}]}
UNAVAILABLE = {"error": {"code": "unavailable", "message": "storage is catching up"}}


def test_503_is_retried_after_the_servers_retry_after(scripted):
    url, script = scripted((503, {"Retry-After": "2"}, UNAVAILABLE), (503, {"Retry-After": "1"}, UNAVAILABLE),
                           (200, {}, PROJECTS))
    client = RecordingClient(url, api_key="k-123")
    [project] = client.projects()
    assert client.waits == [2.0, 1.0]
    assert len(script.requests) == 3 and all(r[2].get("x-api-key") == "k-123" for r in script.requests)
    assert project.project_id == "demo" and project.run_count == 3
    assert project.first_seen == datetime(2026, 1, 21, tzinfo=timezone.utc)
    assert project.extra == {"added_later": 1}


def test_503_that_persists_raises_after_max_retries_with_the_servers_message(scripted):
    url, script = scripted((503, {"Retry-After": "600"}, UNAVAILABLE))
    client = RecordingClient(url, max_retries=2, max_retry_wait=5)
    with pytest.raises(errors.ServiceUnavailableError) as failure:
        client.projects()
    assert len(script.requests) == 3
    assert client.waits == [5, 5]  # Retry-After honoured, but capped
    assert failure.value.retry_after == 600 and failure.value.code == "unavailable"
    assert "catching up" in str(failure.value)


def test_retry_after_as_an_http_date_and_missing_falls_back_to_backoff(scripted):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    url, _ = scripted((429, {"Retry-After": later}, {}), (502, {}, "bad gateway"), (200, {}, PROJECTS))
    client = RecordingClient(url, max_retry_wait=60)
    client.projects()
    assert 20 < client.waits[0] <= 30 and client.waits[1] == 1.0


def test_other_errors_are_not_retried_and_map_to_their_exception(scripted):
    for status, cls in ((401, errors.AuthenticationError), (403, errors.PermissionDeniedError),
                        (404, errors.NotFoundError), (422, errors.InvalidRequestError),
                        (400, errors.InvalidRequestError), (500, errors.APIError)):
        url, script = scripted((status, {}, {"error": {"code": "c", "message": f"m{status}",
                                                       "details": [{"parameter": "since"}]}}))
        client = RecordingClient(url)
        with pytest.raises(cls) as failure:
            client.run("0af7651916cd43dd8448eb211c80319c")
        assert len(script.requests) == 1 and client.waits == []
        assert failure.value.status_code == status and failure.value.message == f"m{status}"
        assert failure.value.details == [{"parameter": "since"}]


def test_a_non_json_error_body_still_gives_a_clear_error(scripted):
    url, _ = scripted((404, {"content-type": "text/html"}, b"<html>nope</html>"))
    with pytest.raises(errors.NotFoundError, match="nope"):
        Client(url).run("0af7651916cd43dd8448eb211c80319c")


def test_a_server_that_never_answers_times_out(scripted):
    url, script = scripted((200, {}, PROJECTS))
    script.hold.clear()
    client = RecordingClient(url, timeout=0.2, max_retries=1)
    with pytest.raises(errors.APITimeoutError):
        client.projects()
    assert len(client.waits) == 1  # a timeout is retried like a 503


def test_nobody_listening_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RecordingClient(f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(errors.APIConnectionError) as failure:
        client.projects()
    assert not isinstance(failure.value, errors.APITimeoutError)


def test_runs_follows_cursors_and_sends_filters(scripted):
    page1 = {"runs": [{"run_id": "a" * 32, "status": "ok"}, {"run_id": "b" * 32}], "next_cursor": "c1"}
    page2 = {"runs": [{"run_id": "c" * 32, "status": "error"}], "next_cursor": None}
    url, script = scripted((200, {}, page1), (200, {}, page2))
    runs = list(Client(url).runs(project_id="demo", has_errors=True, since=datetime(2026, 1, 1, tzinfo=timezone.utc),
                                 agent=None, page_size=2))
    assert [r.run_id for r in runs] == ["a" * 32, "b" * 32, "c" * 32]
    first, second = script.requests[0][1], script.requests[1][1]
    assert "project_id=demo" in first and "has_errors=true" in first and "limit=2" in first
    assert "since=2026-01-01T00%3A00%3A00%2B00%3A00" in first and "agent" not in first
    assert "cursor=c1" in second


def test_hostile_ids_never_leave_the_client():
    client = Client("http://127.0.0.1:9")
    for bad in ("", "..", "a/b", "../projects", "x?y=1", "a#b"):
        with pytest.raises(ValueError):
            client.run(bad)
    with pytest.raises(ValueError):
        client.validate("a" * 32)
    with pytest.raises(ValueError):
        client.validate("a" * 32, runbook_yaml="x", runbook="y")


def test_odd_shapes_from_a_newer_or_broken_server_do_not_crash_parsing():
    run = Run.from_dict({"run_id": "r", "started_at": "yesterday", "steps": "not-a-list", "validation": 3,
                         "brand_new_field": {"x": 1}})
    assert run.run_id == "r" and run.started_at is None and run.steps == [] and run.validation is None
    assert run.extra["brand_new_field"] == {"x": 1}
    assert Summary.from_dict(["not", "a", "dict"]).runs == 0


def test_validate_posts_the_runbook_yaml(scripted):
    verdict = {"validation_id": "v1", "run_id": "a" * 32, "status": "failed",
               "reasons": [{"rule": "allowed_tools", "message": "shell not allowed"}], "created_at": "2026-01-21T00:00:00Z"}
    url, script = scripted((200, {}, verdict))
    result = Client(url).validate("a" * 32, runbook_yaml="allowed_tools: [search]\n")
    method, path, _, body = script.requests[0]
    assert (method, path) == ("POST", f"/v1/runs/{'a' * 32}/validate")
    assert json.loads(body) == {"runbook_yaml": "allowed_tools: [search]\n"}
    assert result.status == "failed" and not result.passed and result.reasons[0]["rule"] == "allowed_tools"


def test_validations_and_validate_batch_send_and_read_the_documented_shapes(scripted):
    history = {"validations": [{"validation_id": "v2", "status": "passed"}, {"validation_id": "v1", "status": "failed"}]}
    page1 = {"counts": {"passed": 8, "failed": 3, "incomplete": 0}, "next_offset": 2,
             "runs": [{"run_id": "a" * 32, "status": "failed", "reasons": [{"rule": "allowed_tools"}]},
                      {"run_id": "b" * 32, "status": "failed"}], "runbook": {"name": "support-flow"}}
    page2 = {"counts": {"passed": 8, "failed": 3, "incomplete": 0}, "next_offset": None,
             "runs": [{"run_id": "c" * 32, "status": "failed"}]}
    url, script = scripted((200, {}, history), (200, {}, page1), (200, {}, page1), (200, {}, page2))
    client = Client(url)
    assert [v.passed for v in client.validations("a" * 32, limit=5)] == [True, False]
    result = client.validate_batch("demo", runbook="support-flow", since="1d", agent="support-agent", limit=2)
    assert (result.total, result.passed, result.failed, result.next_offset) == (11, 8, 3, 2)
    assert result.runs[0].failed_rules == ["allowed_tools"] and result.runbook["name"] == "support-flow"
    assert script.requests[0][1] == f"/v1/runs/{'a' * 32}/validations?limit=5"
    method, path, _, body = script.requests[1]
    assert (method, path) == ("POST", "/v1/validations")
    assert json.loads(body) == {"project_id": "demo", "runbook": "support-flow", "since": "1d",
                                "agent": "support-agent", "limit": 2}
    assert [v.run_id for v in client.validate_batch_runs("demo", runbook="support-flow", limit=2)] == \
        ["a" * 32, "b" * 32, "c" * 32]
    assert json.loads(script.requests[-1][3])["offset"] == 2
