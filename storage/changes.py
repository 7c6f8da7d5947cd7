"""Runs that changed recently: what a live run list needs to stay current.

A run row is rewritten (a new ``version``) every time spans of the run are committed, and its
``last_span_at`` is the ingest time of its newest span.  :func:`changed_runs` finds the rows
written since a moment without ``FINAL`` (any version newer than the moment is a change), then
reads the current rows of just those runs through the primary key, applying the run list's
filters to the current row only.
"""

from __future__ import annotations

from .queries import RunFilter
from .runs import RUN_FIELDS


def recent_versions(store, projects: frozenset[str] | None, since_ms: int, limit: int) -> list[tuple]:
    """(project_id, run_id, version, last_span_ms) of runs with spans ingested at or after
    ``since_ms`` (milliseconds since the epoch), most recently touched first, at most ``limit``."""
    if projects is not None and not projects:
        return []
    where, params = RunFilter(projects=projects).where()
    sql = ("SELECT project_id, run_id, max(version) AS v, toUnixTimestamp64Milli(max(last_span_at)) AS t "
           f"FROM runs WHERE {where} AND last_span_at >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') "
           "GROUP BY project_id, run_id ORDER BY t DESC LIMIT {limit:UInt32}")
    return store.query(sql, parameters={**params, "since": since_ms, "limit": limit}).result_rows


def current_runs(store, filters: RunFilter, keys: list[tuple[str, str]]) -> list[dict]:
    """The current rows of ``keys`` (project_id, run_id) that match ``filters``, plus ``version``."""
    if not keys or filters.is_empty_scope():
        return []
    where, params = filters.where()
    sql = (f"SELECT {', '.join(RUN_FIELDS)}, version FROM runs FINAL WHERE {where} "
           "AND project_id IN {k_projects:Array(String)} AND run_id IN {k_runs:Array(String)}")
    rows = store.query(sql, parameters={**params, "k_projects": sorted({k[0] for k in keys}),
                                        "k_runs": [k[1] for k in keys]}).named_results()
    wanted = set(keys)
    return [r for r in rows if (r["project_id"], r["run_id"]) in wanted]
