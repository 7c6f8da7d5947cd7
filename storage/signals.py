"""Decisions and quality signals across runs: what the agents chose, and what went with success.

The SDK records both as span events (``agenttrail.decision``, ``agenttrail.quality_signal``;
see docs/sdk.md), so any OpenTelemetry producer can send them too.  Each aggregate is one
query: the selected runs (any :class:`~.queries.RunFilter`) joined to the events of their steps,
unnested with ``ARRAY JOIN``.  The events side is the join's build side: it holds only the
steps that carry such an event, while the runs of a long window stream past it.

Success rates are over finished runs (ok / (ok + error)); runs still in progress count in
``runs`` but in neither side of a rate.
"""

from __future__ import annotations

from .queries import RunFilter

DECISION_EVENT = "agenttrail.decision"
QUALITY_EVENT = "agenttrail.quality_signal"

# Steps that may carry the events of the selected runs.  A run's steps start no earlier than
# the run (up to clock skew between services), so the window's start prunes daily partitions.
_EVENTS = """
    SELECT run_id, attrs FROM steps
    ARRAY JOIN events.name AS event_name, events.attributes AS attrs
    WHERE project_id IN {e_projects:Array(String)} AND start_time >= fromUnixTimestamp64Nano({e_since:Int64}, 'UTC')
      AND has(events.name, {e_event:String}) AND event_name = {e_event:String}"""

_DECISIONS = """
SELECT d.decision_type AS decision_type, d.selected AS selected, count() AS count,
       uniqExact(r.run_id) AS runs, uniqExactIf(r.run_id, r.status = 'ok') AS ok_runs,
       uniqExactIf(r.run_id, r.status = 'error') AS error_runs,
       avgOrNull(d.confidence) AS mean_confidence, count(d.confidence) AS with_confidence,
       topKIf(5)(d.reason_code, d.reason_code != '') AS reason_codes
FROM (SELECT run_id, status FROM runs FINAL WHERE {where}) AS r
INNER JOIN (
    SELECT run_id, attrs['agenttrail.decision.type'] AS decision_type,
           attrs['agenttrail.decision.selected'] AS selected,
           attrs['agenttrail.decision.reason_code'] AS reason_code,
           toFloat64OrNull(attrs['agenttrail.decision.confidence']) AS confidence
    FROM ({events})
) AS d ON d.run_id = r.run_id
GROUP BY decision_type, selected
ORDER BY count DESC, decision_type, selected
LIMIT {limit:UInt32}"""

_QUALITY = """
WITH selected AS (SELECT run_id, status FROM runs FINAL WHERE {where})
SELECT q.signal_type AS signal_type, q.signal_code AS signal_code, q.value AS value, count() AS count,
       avgOrNull(q.weight) AS mean_weight, uniqExact(r.run_id) AS runs,
       uniqExactIf(r.run_id, r.status = 'ok') AS ok_runs, uniqExactIf(r.run_id, r.status = 'error') AS error_runs,
       (SELECT countIf(status = 'ok') FROM selected) AS all_ok_runs,
       (SELECT countIf(status = 'error') FROM selected) AS all_error_runs
FROM selected AS r
INNER JOIN (
    SELECT run_id, attrs['agenttrail.quality.type'] AS signal_type, attrs['agenttrail.quality.code'] AS signal_code,
           lower(attrs['agenttrail.quality.value']) IN ('true', '1') AS value,
           toFloat64OrNull(attrs['agenttrail.quality.weight']) AS weight
    FROM ({events})
) AS q ON q.run_id = r.run_id
GROUP BY signal_type, signal_code, value
ORDER BY count DESC, signal_type, signal_code, value
LIMIT {limit:UInt32}"""


def _sql(template: str, where: str) -> str:
    # Pasted, not str.format: the pieces hold ClickHouse's own {name:Type} placeholders.
    return template.replace("{events}", _EVENTS).replace("{where}", where)


def _rate(ok: int, error: int):
    return round(ok / (ok + error), 6) if ok + error else None


def _params(filters: RunFilter, event: str, limit: int) -> tuple[str, dict]:
    where, params = filters.where()
    params.update(e_projects=sorted(filters.projects or ()), e_since=filters.since_ns or 0,
                  e_event=event, limit=limit)
    return where, params


def decision_stats(store, filters: RunFilter, limit: int = 500) -> list[dict]:
    """Per (decision type, selected option) over the runs ``filters`` selects (``projects``
    and ``since_ns`` must be set): events, runs, mean confidence and the runs' success rate."""
    if not filters.projects:
        return []
    where, params = _params(filters, DECISION_EVENT, limit)
    rows = list(store.query(_sql(_DECISIONS, where), parameters=params).named_results())
    for row in rows:
        confidence = row["mean_confidence"]
        row["mean_confidence"] = None if confidence is None else round(confidence, 6)
        row["success_rate"] = _rate(row["ok_runs"], row["error_runs"])
    return rows


def quality_stats(store, filters: RunFilter, limit: int = 500) -> list[dict]:
    """Per quality signal (type, code, value) over the runs ``filters`` selects: events, runs,
    and the success rate of the selected runs with the signal and of those without it."""
    if not filters.projects:
        return []
    where, params = _params(filters, QUALITY_EVENT, limit)
    rows = list(store.query(_sql(_QUALITY, where), parameters=params).named_results())
    for row in rows:
        weight = row["mean_weight"]
        row["mean_weight"] = None if weight is None else round(weight, 6)
        row["value"] = bool(row["value"])
        with_rate = _rate(row["ok_runs"], row["error_runs"])
        without = _rate(row.pop("all_ok_runs") - row["ok_runs"], row.pop("all_error_runs") - row["error_runs"])
        row.update(success_rate_with=with_rate, success_rate_without=without,
                   difference=None if with_rate is None or without is None else round(with_rate - without, 6))
    return rows
