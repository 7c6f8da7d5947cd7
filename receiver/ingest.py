"""The transport-independent ingest step shared by the gRPC and HTTP receivers.

decode (proto/) → map spans to steps (mapping.py), refusing projects the caller may not
write to → encode them for ClickHouse (pool.py) → hand them to the storage writer → wait
until they are durably written: stored in ClickHouse or, while it is unavailable, in the
storage's on-disk spool (fsync'd, committed once it is back).  Only then does the transport
answer success, so an acknowledged span is never lost.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from agenttrail.service.auth import Principal
from agenttrail.storage import StorageUnavailable

from .admission import InflightBudget
from .pool import MappingPool


class Forbidden(Exception):
    """The caller's key lacks the ingest scope (HTTP 403 / gRPC PERMISSION_DENIED)."""


@dataclass(frozen=True)
class IngestOutcome:
    """What to tell the exporter: how many spans were refused, and why (partial success)."""

    accepted: int
    rejected: int = 0
    error_message: str = ""


class IngestCounters:
    """What the trace receivers have answered since the server started (read by ``/metrics``).

    Counted on the event loop that serves both transports, so plain integers suffice.
    """

    def __init__(self) -> None:
        self.exports: Counter[tuple[str, str]] = Counter()  # (transport, outcome) -> requests
        self.accepted_spans = 0  # stored, already stored (a retried duplicate), or spooled
        self.refused_spans = 0  # refused one by one in a partial success (bad ids, times, projects)

    def answered(self, transport: str, outcome: str) -> None:
        """Count one trace export answered over ``transport`` ("ok", or a failure's reason)."""
        self.exports[(transport, outcome)] += 1


class TraceIngestor:
    """Maps export requests (through a :class:`MappingPool`) and writes them through the writer."""

    def __init__(self, writer, pool: MappingPool, write_timeout: float = 8.0,
                 max_inflight_bytes: int = 256 * 1024 * 1024):
        self.writer = writer
        self.pool = pool
        self.write_timeout = write_timeout
        self.budget = InflightBudget(max_inflight_bytes)
        self.counters = IngestCounters()

    @staticmethod
    def project_for(principal: Principal, header_project: str | None) -> str | None:
        """The project every span is forced into (the key's, or the header's), if any."""
        if not principal.can("ingest"):
            raise Forbidden(f"API key {principal.name!r} lacks the ingest scope")
        project = principal.single_project or header_project or None
        if project and not principal.allows(project):
            raise Forbidden(f"API key {principal.name!r} may not write to project {project!r}")
        return project

    async def export(self, request, principal: Principal, header_project: str | None = None,
                     encoding: str | None = None) -> IngestOutcome:
        """Store what can be stored; raise RetryableError if it could not be stored in time.

        ``request`` is a decoded ``ExportTraceServiceRequest``, or its encoded bytes when
        ``encoding`` ("protobuf" / "json") is given — then decoding happens off the event loop.
        """
        project = self.project_for(principal, header_project)
        with self.writer.expecting():  # under load, the next commit waits for these steps
            mapped = await self.pool.map(request, encoding, project, principal.allows)
            steps = mapped.steps
            future = self.writer.submit(steps) if len(steps) else None  # may raise Overloaded
        if future is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), self.write_timeout)
            except asyncio.TimeoutError:
                # Not acknowledged: the exporter retries, and the retry is deduplicated.
                raise StorageUnavailable("storage did not confirm the write in time", retry_after=2)
        message = "; ".join(mapped.errors[:5])
        self.counters.accepted_spans += len(steps)
        self.counters.refused_spans += mapped.rejected
        return IngestOutcome(accepted=len(steps), rejected=mapped.rejected, error_message=message)


__all__ = ["Forbidden", "IngestCounters", "IngestOutcome", "TraceIngestor"]
