"""Admission control: a bound on the bytes of export requests being handled at once.

The storage writer bounds the spans waiting to be written, but a request holds memory before
that — its body, the decompressed copy, the decoded message, the mapped columns.  Every
export reserves its size here first; past the budget the answer is retryable (503 /
UNAVAILABLE with a retry delay), so a burst of large requests costs a retry, not the process.
All receivers run on one event loop, so a plain counter suffices.
"""

from __future__ import annotations

import contextlib

from agenttrail.storage import Overloaded


class InflightBudget:
    """Bytes of requests in flight, across both transports."""

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.in_flight = 0

    @contextlib.contextmanager
    def hold(self, nbytes: int):
        """Reserve ``nbytes`` for the duration of the block, or raise :class:`Overloaded`.

        A request alone is always admitted (the size limit already bounds it), so one large
        request can never be refused forever.
        """
        if self.in_flight and self.in_flight + nbytes > self.max_bytes:
            raise Overloaded(f"{self.in_flight} bytes of exports are being processed; retry shortly",
                             retry_after=1)
        self.in_flight += nbytes
        try:
            yield
        finally:
            self.in_flight -= nbytes
