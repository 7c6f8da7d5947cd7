"""The transport-independent ingest step shared by the gRPC and HTTP receivers.

decode (proto/) → authorise → map spans to steps (mapping.py) → hand the batch to the
storage writer → wait until it is durably written.  Only then does the transport answer
success, so an acknowledged span is a stored span.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agenttrail.service.auth import Principal
from agenttrail.storage import StorageUnavailable

from .admission import InflightBudget
from .mapping import MappingResult
from .pool import MappingPool


class Forbidden(Exception):
    """The caller's key lacks the ingest scope (HTTP 403 / gRPC PERMISSION_DENIED)."""


@dataclass(frozen=True)
class IngestOutcome:
    """What to tell the exporter: how many spans were refused, and why (partial success)."""

    accepted: int
    rejected: int = 0
    error_message: str = ""


class TraceIngestor:
    """Maps export requests (through a :class:`MappingPool`) and writes them through the writer."""

    def __init__(self, writer, pool: MappingPool, write_timeout: float = 8.0,
                 max_inflight_bytes: int = 256 * 1024 * 1024):
        self.writer = writer
        self.pool = pool
        self.write_timeout = write_timeout
        self.budget = InflightBudget(max_inflight_bytes)

    @staticmethod
    def project_for(principal: Principal, header_project: str | None) -> str | None:
        """The project every span is forced into (the key's, or the header's), if any."""
        if not principal.can("ingest"):
            raise Forbidden(f"API key {principal.name!r} lacks the ingest scope")
        project = principal.single_project or header_project or None
        if project and not principal.allows(project):
            raise Forbidden(f"API key {principal.name!r} may not write to project {project!r}")
        return project

    @staticmethod
    def authorise(result: MappingResult, principal: Principal):
        """Refuse (as partial success) the spans of projects ``principal`` may not write to."""
        batch, rejected, errors = result.batch, result.rejected, list(result.errors)
        if principal.projects is not None and len(batch):
            projects = batch.columns["project_id"]
            keep = [i for i, p in enumerate(projects) if principal.allows(p)]
            if len(keep) < len(batch):
                refused = len(batch) - len(keep)
                errors.append(f"{refused} spans belong to projects this API key may not write to")
                rejected += refused
                batch = batch.select(keep)
        return batch, rejected, errors

    async def export(self, request, principal: Principal, header_project: str | None = None,
                     encoding: str | None = None) -> IngestOutcome:
        """Store what can be stored; raise RetryableError if it could not be stored in time.

        ``request`` is a decoded ``ExportTraceServiceRequest``, or its encoded bytes when
        ``encoding`` ("protobuf" / "json") is given — then decoding happens off the event loop.
        """
        project = self.project_for(principal, header_project)
        result = await self.pool.map(request, encoding, project)
        batch, rejected, errors = self.authorise(result, principal)
        if len(batch):
            future = self.writer.submit(batch)  # raises Overloaded when the queue is full
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), self.write_timeout)
            except asyncio.TimeoutError:
                # Not acknowledged: the exporter retries, and the retry is deduplicated.
                raise StorageUnavailable("storage did not confirm the write in time", retry_after=2)
        message = "; ".join(errors[:5])
        return IngestOutcome(accepted=len(batch), rejected=rejected, error_message=message)


__all__ = ["Forbidden", "IngestOutcome", "TraceIngestor"]
