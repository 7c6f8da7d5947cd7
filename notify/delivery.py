"""Delivering webhook events: a bounded queue, one background thread, retries with backoff.

:meth:`Dispatcher.publish` never blocks and never raises: it fans an event out to the
subscribed webhooks and queues one delivery each, or counts it ``dropped`` when
``max_pending`` deliveries (queued or waiting to retry) are already held.  The thread POSTs
the JSON body with ``X-Agenttrail-Signature: sha256=<HMAC-SHA256 of the body, hex>`` (when the
webhook has a secret).  A 2xx answer is ``delivered``; anything else (a timeout, a refused
connection, a redirect, a non-2xx status) is tried again after ``base_delay`` × 2^(attempt−1)
seconds (at most ``max_delay``), and after ``max_attempts`` the delivery is ``failed``.
Retries wait in a heap by due time, so one slow receiver's backoff does not hold up others.
"""

from __future__ import annotations

import hashlib
import hmac
import heapq
import itertools
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .config import Webhook

log = logging.getLogger(__name__)


def signature(secret: str, body: bytes) -> str:
    """The ``X-Agenttrail-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """One event on its way to one webhook."""

    webhook: Webhook
    event: str
    body: bytes
    delivery_id: str
    attempts: int = 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a receiver that moved is a failed attempt
        return None


@dataclass
class DeliveryCounts:
    """Totals since start, by outcome (``/metrics``)."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    by_event: dict = field(default_factory=dict)


class Dispatcher:
    """Sends events to ``webhooks`` from one daemon thread; :meth:`close` stops it."""

    def __init__(self, webhooks: tuple[Webhook, ...], *, max_pending: int = 1000, max_attempts: int = 6,
                 base_delay: float = 1.0, max_delay: float = 60.0, timeout: float = 5.0):
        self.webhooks = webhooks
        self.max_pending, self.max_attempts = max_pending, max_attempts
        self.base_delay, self.max_delay, self.timeout = base_delay, max_delay, timeout
        self.counts = DeliveryCounts()
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._retries: list[tuple[float, int, Delivery]] = []  # (due, tie-break, delivery)
        self._order = itertools.count()
        self._pending = 0
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._thread = threading.Thread(target=self._run, name="agenttrail-webhooks", daemon=True)
        self._closed = False
        if webhooks:
            self._thread.start()

    def publish(self, event: str, project_id: str, data: dict) -> int:
        """Queue ``event`` for every webhook subscribed to it and ``project_id``; returns how many."""
        queued = 0
        for webhook in self.webhooks:
            if not webhook.wants(event, project_id) or self._closed:
                continue
            delivery_id = uuid.uuid4().hex
            body = json.dumps({"event": event, "delivery_id": delivery_id, "project_id": project_id,
                               "sent_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                               "data": data}, separators=(",", ":"), default=str).encode("utf-8")
            with self._lock:
                if self._pending >= self.max_pending:
                    self.counts.dropped += 1
                    self.counts.by_event[(event, "dropped")] = self.counts.by_event.get((event, "dropped"), 0) + 1
                    continue
                self._pending += 1
            self._queue.put(Delivery(webhook, event, body, delivery_id))
            queued += 1
        return queued

    def snapshot(self) -> dict:
        """Outcome totals by (event, outcome), copied under the lock the thread counts with."""
        with self._lock:
            return dict(self.counts.by_event)

    @property
    def pending(self) -> int:
        """Deliveries queued or waiting for a retry."""
        return self._pending

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (deliveries still pending are abandoned)."""
        self._closed = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            if self._retries and self._retries[0][0] <= now:
                self._attempt(heapq.heappop(self._retries)[2])
                continue
            wait = min(self._retries[0][0] - now, 1.0) if self._retries else 1.0
            try:
                delivery = self._queue.get(timeout=max(wait, 0.0))
            except queue.Empty:
                continue
            if delivery is None:
                return
            self._attempt(delivery)

    def _post(self, delivery: Delivery) -> int:
        headers = {"Content-Type": "application/json", "User-Agent": "agenttrail-webhooks",
                   "X-Agenttrail-Event": delivery.event, "X-Agenttrail-Delivery": delivery.delivery_id}
        if delivery.webhook.secret:
            headers["X-Agenttrail-Signature"] = signature(delivery.webhook.secret, delivery.body)
        request = urllib.request.Request(delivery.webhook.url, data=delivery.body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        try:
            status = self._post(delivery)
            ok, why = 200 <= status < 300, f"HTTP {status}"
        except Exception as exc:  # refused, reset, timed out, bad TLS: all retryable
            ok, why = False, type(exc).__name__
        if ok:
            self._done("delivered", delivery)
        elif delivery.attempts >= self.max_attempts:
            log.warning("webhook %s: %s not delivered after %d attempts (last: %s)",
                        delivery.webhook.url, delivery.event, delivery.attempts, why)
            self._done("failed", delivery)
        else:
            with self._lock:
                self.counts.retried += 1
            delay = min(self.max_delay, self.base_delay * 2 ** (delivery.attempts - 1))
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._order), delivery))

    def _done(self, outcome: str, delivery: Delivery) -> None:
        with self._lock:
            self._pending -= 1
            setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)
            key = (delivery.event, outcome)
            self.counts.by_event[key] = self.counts.by_event.get(key, 0) + 1
