"""The run list shared by ``GET /v1/runs`` and ``GET /v1/projects/{project_id}/runs``."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Query

from agenttrail.analysis import FAILURE_CATEGORIES
from agenttrail.analysis.runs import LOOP_MIN_CALLS, analyse_run
from agenttrail.storage.failures import page_steps
from agenttrail.storage.queries import RunFilter, list_runs
from agenttrail.storage.runs import latest_verdicts

from .params import limit_query, parse_sort, run_cursor, run_page, text, time_window
from .serialize import iso, run_json

RunStatus = Literal["ok", "error", "in_progress"]
ValidationStatus = Literal["passed", "failed", "incomplete", "none"]
FailureCategory = Literal[FAILURE_CATEGORIES]


class RunFilterParams:
    """The run list's filters, as query parameters (validated on arrival); shared by the list
    and the live stream so both narrow runs the same way."""

    def __init__(
        self,
        status: RunStatus | None = Query(None, description="Run status: ok, error or in_progress."),
        agent: str | None = text("Agent name (exact)."),
        service: str | None = text("OpenTelemetry service.name (exact)."),
        session: str | None = text("Session / conversation id (exact)."),
        tool: str | None = text("Only runs that called this tool."),
        model: str | None = text("Only runs that used this model."),
        since: str | None = Query(None, max_length=64,
                                  description="Runs started at or after this ISO-8601 time."),
        until: str | None = Query(None, max_length=64, description="Runs started before this ISO-8601 time."),
        has_errors: bool | None = Query(None, description="true: runs with a failed step; false: none."),
        min_cost: float | None = Query(None, ge=0, le=1e9, allow_inf_nan=False,
                                       description="Runs that cost at least this many USD."),
        validation_status: ValidationStatus | None = Query(
            None, description="Status of the run's latest validation: passed, failed, incomplete, "
                              "or none for runs never validated."),
        failure_category: FailureCategory | None = Query(
            None, description="Only runs with a failed step of this category (docs/failures.md)."),
    ):
        self.since_ns, self.until_ns = time_window(since, until, None)
        self.values = dict(status=status, agent=agent, service=service, session=session, tool=tool,
                           model=model, has_errors=has_errors, min_cost=min_cost,
                           validation_status=validation_status, failure_category=failure_category)

    def filters(self, projects: frozenset[str] | None) -> RunFilter:
        """The storage filter for a caller limited to ``projects``."""
        return RunFilter(projects=projects, since_ns=self.since_ns, until_ns=self.until_ns, **self.values)


def _may_have_failure(row: dict) -> bool:
    """Whether a run can have a failure block, from its row alone: a failed step (retries need
    one too), or enough repeated tool calls for a loop.  The other runs' steps are not read:
    reading a page's steps costs per run, since a run's steps sit in a granule of every part.
    (A failure on a step whose status is not ERROR — a content filter, an empty retrieval —
    shows in the run's detail only.)"""
    return row["error_count"] > 0 or row["tool_calls"] - len(row["tools"]) >= LOOP_MIN_CALLS - 1


class RunListParams:
    """Filters, order and page of a run list, as query parameters (validated on arrival)."""

    def __init__(
        self,
        filter_params: RunFilterParams = Depends(),
        sort: str = Query("-started_at", max_length=32,
                          description="Order: started_at, duration_ms, cost_usd, total_tokens, "
                                      "step_count or error_count; prefix - for descending."),
        limit: int = limit_query(),
        cursor: str | None = Query(None, max_length=512,
                                   description="next_cursor of the previous page, unchanged."),
    ):
        self.filter_params = filter_params
        self.sort, self.descending = parse_sort(sort)
        self.page = run_page(cursor, self.sort, self.descending)
        self.limit = limit

    def filters(self, projects: frozenset[str] | None) -> RunFilter:
        """The storage filter for a caller limited to ``projects``."""
        return self.filter_params.filters(projects)


def with_verdicts(store, rows: list[dict]) -> list[dict]:
    """Run rows as the API shows them, each with the status of its latest validation
    (``validation``: null when never validated) and its ``failure`` block (null when nothing
    failed, was retried or looped), from one read of the rows' steps."""
    keys = [(r["project_id"], r["run_id"]) for r in rows]
    verdicts = latest_verdicts(store, keys)
    steps = page_steps(store, [(r["project_id"], r["run_id"]) for r in rows if _may_have_failure(r)])
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
