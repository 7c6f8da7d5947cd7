"""The run filters and the run list shared by ``GET /v1/runs``, ``GET /v1/projects/{project_id}/runs``
and every endpoint that aggregates over a selection of runs.

The filters are one list of query parameters (:data:`_FILTERS`), turned into a FastAPI
dependency by :func:`run_filters`; ``prefix`` makes a second, independent set of the same
filters (``a_agent``, ``b_agent`` …) for endpoints that compare two selections of runs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Depends, Query

from agenttrail.analysis import FAILURE_CATEGORIES
from agenttrail.analysis.runs import LOOP_MIN_CALLS, analyse_run
from agenttrail.storage.failures import page_steps
from agenttrail.storage.queries import RunFilter, list_runs
from agenttrail.storage.runs import latest_verdicts

from .params import MAX_TEXT, limit_query, parse_sort, run_cursor, run_page, time_window
from .serialize import iso, run_json

RunStatus = Literal["ok", "error", "in_progress"]
ValidationStatus = Literal["passed", "failed", "incomplete", "none"]
FailureCategory = Literal[FAILURE_CATEGORIES]


def _text(description: str):
    return lambda: Query(None, max_length=MAX_TEXT, description=description)


# (name, type, query parameter factory): the filters every run selection accepts.
_FILTERS = (
    ("status", RunStatus | None, lambda: Query(None, description="Run status: ok, error or in_progress.")),
    ("agent", str | None, _text("Agent name (exact).")),
    ("agent_version", str | None, _text("Agent version (exact): gen_ai.agent.version on any step of the run.")),
    ("service", str | None, _text("OpenTelemetry service.name (exact).")),
    ("session", str | None, _text("Session / conversation id (exact).")),
    ("tool", str | None, _text("Only runs that called this tool.")),
    ("model", str | None, _text("Only runs that used this model.")),
    ("since", str | None, lambda: Query(None, max_length=64,
                                        description="Runs started at or after this ISO-8601 time.")),
    ("until", str | None, lambda: Query(None, max_length=64, description="Runs started before this ISO-8601 time.")),
    ("has_errors", bool | None, lambda: Query(None, description="true: runs with a failed step; false: none.")),
    ("min_cost", float | None, lambda: Query(None, ge=0, le=1e9, allow_inf_nan=False,
                                             description="Runs that cost at least this many USD.")),
    ("validation_status", ValidationStatus | None, lambda: Query(
        None, description="Status of the run's latest validation: passed, failed, incomplete, "
                          "or none for runs never validated.")),
    ("failure_category", FailureCategory | None, lambda: Query(
        None, description="Only runs with a failed step of this category (docs/failures.md).")),
)


@dataclass(frozen=True)
class RunFilters:
    """Validated run filters from the query string, not yet limited to the caller's projects."""

    since_ns: int | None = None
    until_ns: int | None = None
    values: dict = field(default_factory=dict)

    def restricted(self, projects: frozenset[str] | None) -> RunFilter:
        """The storage filter for a caller limited to ``projects``."""
        return RunFilter(projects=projects, since_ns=self.since_ns, until_ns=self.until_ns, **self.values)


def run_filters(prefix: str = "", describe: str = ""):
    """A dependency reading the run filters from query parameters named ``prefix + name``;
    ``describe`` starts each parameter's description (e.g. "Cohort A: ")."""
    parameters = []
    for name, annotation, make_query in _FILTERS:
        query = make_query()
        query.description = describe + query.description
        parameters.append(inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY,
                                            default=query, annotation=annotation))

    def dependency(**given) -> RunFilters:
        values = {name[len(prefix):]: value for name, value in given.items()}
        since_ns, until_ns = time_window(values.pop("since"), values.pop("until"), None,
                                         names=(prefix + "since", prefix + "until"))
        return RunFilters(since_ns, until_ns, values)

    dependency.__signature__ = inspect.Signature(parameters, return_annotation=RunFilters)
    dependency.__name__ = f"{prefix}run_filters"
    return dependency


class RunListParams:
    """Filters, order and page of a run list, as query parameters (validated on arrival)."""

    def __init__(
        self,
        filters: RunFilters = Depends(run_filters()),
        sort: str = Query("-started_at", max_length=32,
                          description="Order: started_at, duration_ms, cost_usd, total_tokens, "
                                      "step_count or error_count; prefix - for descending."),
        limit: int = limit_query(),
        cursor: str | None = Query(None, max_length=512,
                                   description="next_cursor of the previous page, unchanged."),
    ):
        self.selection = filters
        self.sort, self.descending = parse_sort(sort)
        self.page = run_page(cursor, self.sort, self.descending)
        self.limit = limit

    def filters(self, projects: frozenset[str] | None) -> RunFilter:
        """The storage filter for a caller limited to ``projects``."""
        return self.selection.restricted(projects)


def _may_have_failure(row: dict) -> bool:
    """Whether a run can have a failure block, from its row alone: a failed step (retries need
    one too; a step can fail without an error status, as a content filter or an empty
    retrieval does), or enough repeated tool calls for a loop.  The other runs' steps are not
    read: reading a page's steps costs per run, since a run's steps sit in a granule of every
    part."""
    return (row["error_count"] > 0 or bool(row["failure_categories"])
            or row["tool_calls"] - len(row["tools"]) >= LOOP_MIN_CALLS - 1)


def with_verdicts(store, rows: list[dict]) -> list[dict]:
    """Run rows as the API shows them, each with the status of its latest validation
    (``validation``: null when never validated) and its ``failure`` block (null when nothing
    failed, was retried or looped), from one read of the rows' steps."""
    keys = [(r["project_id"], r["run_id"]) for r in rows]
    verdicts = latest_verdicts(store, keys)
    steps = page_steps(store, [r for r in rows if _may_have_failure(r)])
    runs = []
    for row in rows:
        body = run_json(row)
        verdict = verdicts.get((row["project_id"], row["run_id"]))
        body["validation"] = verdict and {
            "validation_id": verdict["validation_id"], "status": verdict["status"],
            "runbook_name": verdict["runbook_name"], "runbook_version": verdict["runbook_version"],
            "created_at": iso(verdict["created_at"])}
        body["failure"] = analyse_run(row, steps.get((row["project_id"], row["run_id"]), []))
        runs.append(body)
    return runs


def run_list(store, projects: frozenset[str] | None, params: RunListParams) -> dict:
    """``{"runs": [...], "next_cursor": ...}`` for one page, each run as :func:`with_verdicts`
    shows it."""
    rows, last = list_runs(store, params.filters(projects), params.page, params.limit)
    return {"runs": with_verdicts(store, rows), "next_cursor": run_cursor(params.page, last)}
