"""Read-your-writes for the REST API while ingest acknowledges from its journal.

With ``ack_after = journal`` an export is answered once its spans are on local disk, and they
reach ClickHouse a commit later.  A client that sends spans and then asks for them (a test, a
script, the SDK's flush followed by a query) expects to see them, so each ``/v1`` request
first waits — without blocking the event loop — until what was acknowledged before it
arrived is committed: usually nothing, at most one commit under load, never longer than
``max_wait`` (and not at all while the store is down).
"""

from __future__ import annotations

import asyncio


class ReadYourWrites:
    """ASGI middleware holding ``/v1`` requests until earlier acknowledged writes are readable."""

    def __init__(self, app, store, max_wait: float = 5.0, poll: float = 0.005):
        self.app, self.store = app, store
        self.max_wait, self.poll = max_wait, poll

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            mark = self.store.visibility_mark()
            if mark is not None:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.max_wait
                while not self.store.visible(mark) and loop.time() < deadline:
                    await asyncio.sleep(self.poll)
        await self.app(scope, receive, send)


__all__ = ["ReadYourWrites"]
