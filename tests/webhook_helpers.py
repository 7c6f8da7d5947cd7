"""A real local HTTP receiver for webhook tests: answers from a script, records what arrived."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers POSTs with the next status of ``script`` (then 200 forever); ``received`` holds
    (headers, body bytes) of every POST, including those answered with an error."""

    def __init__(self, script=(), hold: threading.Event | None = None):
        self.script, self.hold = list(script), hold
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((dict(self.headers), body))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                status = receiver.script.pop(0) if receiver.script else 200
                headers = {"Location": "http://127.0.0.1:1/elsewhere"} if 300 <= status < 400 else {}
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict]:
        """The JSON bodies received, in arrival order."""
        return [json.loads(body) for _, body in self.received]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[dict, bytes]]:
        """Block until ``count`` POSTs arrived (or fail the test)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} of {count} webhook posts arrived"
            time.sleep(0.02)
        return self.received

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
