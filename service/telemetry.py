"""``GET /metrics`` on the API port: the server's own ingest telemetry, in Prometheus format.

What an operator needs to see before users notice: exports answered by outcome (a rising
``retry_later`` count is back-pressure, ``invalid`` a broken client), spans accepted and refused,
mapping workers lost, the writer's commits, failures, queue, commit time and where run rows came from (the
commit alone, or a recompute from stored steps, which grows with the store), and the spool's backlog
while ClickHouse is unavailable (spooled, drained, refused because full); and the store's
background work (parts, merges, mutations: :mod:`agenttrail.storage.activity`).  Values are read
from the receivers' and the writer's counters, and the store's system tables, at scrape time;
nothing is counted twice.
Counters start at zero when the server starts, as Prometheus expects of a process's counters.
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agenttrail.api.deps import admin
from agenttrail.notify import EVENTS as WEBHOOK_EVENTS
from agenttrail.receiver.ingest import IngestCounters
from agenttrail.storage.activity import store_activity

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "invalid", "unauthenticated", "forbidden", "too_large", "unsupported",
            "retry_later", "internal")
TRANSPORTS = ("grpc", "http")


class IngestCollector:
    """A Prometheus collector over one server's :class:`IngestCounters` and writer stats."""

    def __init__(self, counters: IngestCounters, writer, pool=None):
        self.counters = counters
        self.writer = writer
        self.pool = pool

    def collect(self):
        """The metric families, built from the live counters."""
        exports = CounterMetricFamily(
            "agenttrail_receiver_exports", "OTLP trace export requests answered, by transport and outcome",
            labels=["transport", "outcome"])
        for transport in TRANSPORTS:  # every series from the start, so rate() sees the first one
            for outcome in OUTCOMES:
                exports.add_metric([transport, outcome], self.counters.exports[(transport, outcome)])
        yield exports
        yield CounterMetricFamily("agenttrail_receiver_accepted_spans",
                                  "Spans acknowledged to exporters (stored, already stored, or spooled)",
                                  value=self.counters.accepted_spans)
        yield CounterMetricFamily("agenttrail_receiver_refused_spans",
                                  "Spans refused one by one in a partial success (bad ids or times, "
                                  "projects the key may not write to)", value=self.counters.refused_spans)
        yield CounterMetricFamily("agenttrail_receiver_mapping_workers_lost",
                                  "Mapping worker processes that died and were replaced (the request each "
                                  "held was answered retry_later)",
                                  value=self.pool.workers_lost if self.pool is not None else 0)
        stats = self.writer.stats
        yield CounterMetricFamily("agenttrail_writer_commits", "Group commits to ClickHouse",
                                  value=stats["commits"])
        yield CounterMetricFamily("agenttrail_writer_commit_failures",
                                  "Group commits that failed (their exports were spooled, or answered retry_later)",
                                  value=stats["failures"])
        yield CounterMetricFamily("agenttrail_writer_written_spans", "Spans inserted into steps",
                                  value=stats["spans_written"])
        yield CounterMetricFamily("agenttrail_writer_duplicate_spans",
                                  "Spans not inserted because they were already stored (client retries)",
                                  value=stats["duplicates"])
        yield CounterMetricFamily("agenttrail_writer_overload_refused_spans",
                                  "Spans refused because the write queue was full", value=stats["rejected"])
        yield CounterMetricFamily("agenttrail_writer_commit_seconds",
                                  "Wall time spent in commits (divide by commits for the mean)",
                                  value=stats["commit_seconds"])
        runs = CounterMetricFamily("agenttrail_writer_runs",
                                   "Run rows written, by source: the commit alone (new runs, embedded "
                                   "store) or a recompute from stored steps", labels=["source"])
        runs.add_metric(["commit"], stats["runs_from_commit"])
        runs.add_metric(["steps"], stats["runs_from_steps"])
        yield runs
        yield GaugeMetricFamily("agenttrail_writer_settling",
                                "1 while every run is recomputed from steps after an unclean stop",
                                value=1 if self.writer.settling else 0)
        yield GaugeMetricFamily("agenttrail_writer_pending_spans",
                                "Spans accepted into the write queue and not yet committed",
                                value=self.writer.pending_spans)
        yield from self._spool(stats)

    def _spool(self, stats):
        """The spool's families (absent when ingest has no spool)."""
        status = self.writer.spool_status()
        if status is None:
            return
        for name, key, text in (
                ("spooled_spans", "spooled_spans", "Spans acknowledged while ClickHouse could not take them, kept in the spool"),
                ("spooled_batches", "spooled_batches", "Batches appended to the spool"),
                ("journaled_spans", "journaled_spans", "Spans acknowledged once fsync'd in the ingest journal "
                                                       "(ack_after = journal)"),
                ("journaled_batches", "journaled_batches", "Batches appended to the ingest journal"),
                ("drained_spans", "drained_spans", "Spooled spans committed to ClickHouse and released"),
                ("drained_batches", "drained_batches", "Spooled batches committed to ClickHouse and released"),
                ("full_refused_spans", "spool_refused", "Spans refused (retry_later) because the spool was full "
                                                        "or could not be written"),
                ("drain_failures", "drain_failures", "Attempts to commit spooled batches that failed (retried later)"),
                ("unreadable_spans", "spool_unreadable", "Spans of spool records that could not be decoded "
                                                         "(set aside in its quarantine; dropped only when "
                                                         "their segment file had gone)")):
            yield CounterMetricFamily(f"agenttrail_spool_{name}", text, value=stats[key])
        yield CounterMetricFamily("agenttrail_spool_quarantined_spans", "Spans of spool records set aside in its "
                                  "quarantine (refused by ClickHouse or undecodable; retried at the next start)",
                                  value=status["quarantined_spans"])
        yield GaugeMetricFamily("agenttrail_spool_backlog_batches", "Batches in the spool", value=status["batches"])
        yield GaugeMetricFamily("agenttrail_spool_backlog_spans", "Spans in the spool", value=status["spans"])
        yield GaugeMetricFamily("agenttrail_spool_backlog_bytes", "Bytes of records in the spool", value=status["bytes"])
        yield GaugeMetricFamily("agenttrail_spool_quarantined_batches",
                                "Spool records set aside in its quarantine since the server started",
                                value=status["quarantined_batches"])
        yield GaugeMetricFamily("agenttrail_spool_max_bytes", "The spool's bound (spool_max_bytes)",
                                value=status["max_bytes"])
        yield GaugeMetricFamily("agenttrail_spool_oldest_age_seconds",
                                "Age of the oldest spooled batch (0 when the spool is empty)",
                                value=status["oldest_age_s"])


_STORE_FAMILIES = (
    ("parts", "agenttrail_store_active_parts", "Active data parts of the table"),
    ("partition_parts", "agenttrail_store_partition_parts",
     "Active parts in the table's fullest partition (ClickHouse slows inserts at 1,000, refuses them at 3,000)"),
    ("merges", "agenttrail_store_merges_running", "Background merges running on the table"),
    ("merge_bytes", "agenttrail_store_merge_bytes", "Compressed bytes the table's running merges read"),
    ("mutations", "agenttrail_store_mutations_pending", "Mutations of the table not yet done (a migration "
                                                         "rewriting columns)"),
)


class StoreCollector:
    """The store's parts, merges and mutations by table; absent from a scrape when the store
    does not answer (``agenttrail_store_up`` says which)."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        """The metric families, from the store's system tables."""
        try:
            tables = store_activity(self.store)
        except Exception as exc:  # down, or these reads refused (privileges): a scrape never fails for it
            log.debug("store activity for /metrics: %s", exc)
            yield GaugeMetricFamily("agenttrail_store_up", "1 when the store answered this scrape", value=0)
            return
        yield GaugeMetricFamily("agenttrail_store_up", "1 when the store answered this scrape", value=1)
        for key, name, text in _STORE_FAMILIES:
            family = GaugeMetricFamily(name, text, labels=["table"])
            for table, values in sorted(tables.items()):
                family.add_metric([table], values[key])
            yield family


class WebhookCollector:
    """Webhook deliveries by event and outcome, and those still pending."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def collect(self):
        """The metric families, from the dispatcher's counts."""
        deliveries = CounterMetricFamily(
            "agenttrail_webhook_deliveries", "Webhook deliveries by event and outcome: delivered (2xx), "
            "failed (every attempt failed), dropped (the queue was full)", labels=["event", "outcome"])
        by_event = self.dispatcher.snapshot()
        for event in WEBHOOK_EVENTS:
            for outcome in ("delivered", "failed", "dropped"):
                deliveries.add_metric([event, outcome], by_event.get((event, outcome), 0))
        yield deliveries
        yield CounterMetricFamily("agenttrail_webhook_retries", "Webhook attempts that failed and were scheduled again",
                                  value=self.dispatcher.counts.retried)
        yield GaugeMetricFamily("agenttrail_webhook_pending", "Webhook deliveries queued or waiting to retry",
                                value=self.dispatcher.pending)


def add_metrics_endpoint(app: FastAPI, counters: IngestCounters, writer, pool=None, webhooks=None,
                         store=None) -> None:
    """Serve ``GET /metrics`` on ``app`` (``pool``: the receivers' mapping pool, ``webhooks``: the
    webhook dispatcher, ``store``: the store whose background work to show, if any); it needs an
    admin key when keys are configured."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(counters, writer, pool))
    if store is not None:
        registry.register(StoreCollector(store))
    if webhooks is not None:
        registry.register(WebhookCollector(webhooks))

    def metrics(_principal=Depends(admin)) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)


__all__ = ["IngestCollector", "StoreCollector", "WebhookCollector", "add_metrics_endpoint"]
