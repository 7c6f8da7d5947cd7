"""Read queries over runs: filtered lists with keyset pagination, projects and sessions.

Every value reaches ClickHouse as a bound ``{name:Type}`` parameter; the only SQL text built
from caller input is chosen from the whitelists below (:data:`RUN_SORTS`, the filter
columns), never copied.  Callers pass ``projects`` — the projects the caller may see
(``None`` = all) already intersected with any project it asked for — so rows of other
projects cannot appear in any answer.

Pagination is keyset, not OFFSET: a page ends at ``(sort value, run_id)`` and the next page
starts strictly after it, so runs that arrive meanwhile (newer than the first page) neither
shift nor repeat rows on later pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from .runs import RUN_FIELDS
from .schema import RUNS_BY_START

# sort name -> (expression, ClickHouse type of the cursor value).  ``cost_usd`` is nullable:
# unpriced runs sort as -1 so that the keyset comparison stays total.
RUN_SORTS: dict[str, tuple[str, str]] = {
    "started_at": ("toUnixTimestamp64Nano(started_at)", "Int64"),
    "duration_ms": ("duration_ms", "Float64"),
    "cost_usd": ("ifNull(cost_usd, -1.0)", "Float64"),
    "total_tokens": ("total_tokens", "UInt64"),
    "step_count": ("step_count", "UInt64"),
    "error_count": ("error_count", "UInt64"),
}
RUN_STATUSES = ("ok", "error", "in_progress")
VALIDATION_STATUSES = ("passed", "failed", "incomplete", "none")

# Runs whose newest validation (any runbook) has a given status — the same "latest" as
# storage.runs.latest_verdicts shows on each run.
_LATEST_VALIDATION = (
    "(project_id, run_id) IN (SELECT project_id, run_id FROM validations FINAL{scope} "
    "GROUP BY project_id, run_id HAVING argMax(status, created_at) = {{f_validation:String}})"
)
_NEVER_VALIDATED = "(project_id, run_id) NOT IN (SELECT project_id, run_id FROM validations{scope})"


@dataclass(frozen=True)
class RunFilter:
    """What a run list is restricted to; ``None`` fields do not filter."""

    projects: frozenset[str] | None = None
    status: str | None = None
    agent: str | None = None
    agent_version: str | None = None
    service: str | None = None
    session: str | None = None
    tool: str | None = None
    model: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    has_errors: bool | None = None
    min_cost: float | None = None
    validation_status: str | None = None
    failure_category: str | None = None

    def where(self) -> tuple[str, dict]:
        """The WHERE clause (``1`` when nothing filters) and its parameters."""
        parts, params = ["1"], {}
        if self.projects is not None:
            parts.append("project_id IN {f_projects:Array(String)}")
            params["f_projects"] = sorted(self.projects)
        for field, column in (("status", "status"), ("agent", "agent_name"),
                              ("service", "service_name"), ("session", "session_id")):
            value = getattr(self, field)
            if value is not None:
                parts.append(f"{column} = {{f_{field}:String}}")
                params[f"f_{field}"] = value
        # failure_category: runs with a failed step of this category
        for field, column in (("tool", "tools"), ("model", "models"), ("failure_category", "failure_categories")):
            value = getattr(self, field)
            if value is not None:
                parts.append(f"has({column}, {{f_{field}:String}})")
                params[f"f_{field}"] = value
        if self.agent_version is not None:
            parts.append(self._version_clause())
            params["f_agent_version"] = self.agent_version
        if self.since_ns is not None:
            parts.append("started_at >= fromUnixTimestamp64Nano({f_since:Int64}, 'UTC')")
            params["f_since"] = self.since_ns
        if self.until_ns is not None:
            parts.append("started_at < fromUnixTimestamp64Nano({f_until:Int64}, 'UTC')")
            params["f_until"] = self.until_ns
        if self.has_errors is not None:
            parts.append("error_count > 0" if self.has_errors else "error_count = 0")
        if self.min_cost is not None:
            parts.append("cost_usd >= {f_min_cost:Float64}")
            params["f_min_cost"] = self.min_cost
        if self.validation_status is not None:
            scope = " WHERE project_id IN {f_projects:Array(String)}" if self.projects is not None else ""
            if self.validation_status == "none":
                parts.append(_NEVER_VALIDATED.format(scope=scope))
            else:
                parts.append(_LATEST_VALIDATION.format(scope=scope))
                params["f_validation"] = self.validation_status
        return " AND ".join(parts), params

    def tagged_where(self, tag: str) -> tuple[str, dict]:
        """:meth:`where` with its parameters renamed ``{tag}_…``, so that two filters can sit
        in one query (a comparison of two cohorts).  ``tag`` is a short identifier."""
        where, params = self.where()
        return where.replace("{f_", "{" + tag + "_"), {tag + name[1:]: v for name, v in params.items()}

    def _version_clause(self) -> str:
        # The version is an attribute of the agent's span (gen_ai.agent.version), not a run
        # column: runs that have a step carrying it.  Steps of a run start no earlier than the
        # run, so the window's start also bounds the steps read (and their daily partitions).
        scope = " AND project_id IN {f_projects:Array(String)}" if self.projects is not None else ""
        since = (" AND start_time >= fromUnixTimestamp64Nano({f_since:Int64}, 'UTC')"
                 if self.since_ns is not None else "")
        return ("(project_id, run_id) IN (SELECT project_id, run_id FROM steps WHERE "
                f"attributes['gen_ai.agent.version'] = {{f_agent_version:String}}{scope}{since})")

    def reads_other_tables(self) -> bool:
        """True when the filter selects runs by their steps or validations (a subquery)."""
        return any(v is not None for v in (self.agent_version, self.validation_status))

    def is_empty_scope(self) -> bool:
        """True when the caller may see no project at all: every answer is empty."""
        return self.projects is not None and not self.projects


@dataclass(frozen=True)
class Page:
    """Where a page starts: after the row with this sort value and run id (None = first page)."""

    sort: str = "started_at"
    descending: bool = True
    after_value: int | float | None = None
    after_run_id: str | None = None


def list_runs(store, filters: RunFilter, page: Page, limit: int) -> tuple[list[dict], tuple | None]:
    """Up to ``limit`` runs in page order, and the (sort value, run_id) to continue after.

    The continuation is None when this page is the last one.
    """
    if filters.is_empty_scope():
        return [], None
    expression, value_type = RUN_SORTS[page.sort]
    where, params = filters.where()
    if page.after_run_id is not None:
        compare = "<" if page.descending else ">"
        where += f" AND ({expression}, run_id) {compare} ({{after_value:{value_type}}}, {{after_run:String}})"
        if page.sort == "started_at":  # the same bound on the column alone, which indexes can use
            where += f" AND started_at {compare}= fromUnixTimestamp64Nano({{after_value:Int64}}, 'UTC')"
        params.update(after_value=page.after_value, after_run=page.after_run_id)
    # A subquery filter would be evaluated twice by the start-minute search: read runs once instead.
    by_start = page.sort == "started_at" and not filters.reads_other_tables()
    rows = _page_from_candidates(store, where, params, page, limit, by_start)
    if rows is None:
        rows = _page_from_final(store, where, params, page, limit)
    more = len(rows) > limit
    rows = rows[:limit]
    last = (rows[-1]["sort_value"], rows[-1]["run_id"]) if more and rows else None
    return rows, last


# A page is found in two reads, neither of them FINAL over the whole table: FINAL must merge
# the versions of every run before it can filter or sort (at 5M runs, 135 ms for the keys of
# the newest page, and 220 ms more to read their rows), where a plain ORDER BY … LIMIT reads the
# sort column, takes the top rows and reads the other columns for those rows alone.  So the first
# read takes the top row versions that match, whole, and the second the newest version of each
# of their runs (key and version columns only): a version that is not its run's newest is
# dropped, since the newest may rank elsewhere or no longer match.  Every matching version
# better than the first read's last value was read, so the newest versions better than it are
# exactly the runs that rank there; when they fill the page, the page is right.  When they do
# not (several versions of the same runs, or newer versions that no longer match), the page is
# read through FINAL.  Sorted by start, the first read takes the same versions from
# runs_by_start, from the minute :func:`_start_minute` finds on: a primary-key range, where in
# ``runs`` (sorted by run id) it read the filter's columns of every run.
_SORT_COLUMNS = {"started_at": "started_at"}  # ordering by the column lets its minmax index skip granules


def _page_from_candidates(store, where: str, params: dict, page: Page, limit: int,
                          by_start: bool) -> list[dict] | None:
    expression, _ = RUN_SORTS[page.sort]
    direction = "DESC" if page.descending else "ASC"
    wanted = limit + 1 + max(16, limit // 2)
    table, bounded = "runs", False
    if by_start:
        table, minute = RUNS_BY_START, _start_minute(store, where, params, page, wanted)
        if minute is not None:
            bounded = True
            # from that minute's start on (newest first), or up to its end (oldest first)
            compare, bound_ns = (">=", minute * 10**9) if page.descending else ("<", (minute + 60) * 10**9)
            where += f" AND started_at {compare} fromUnixTimestamp64Nano({{start_bound:Int64}}, 'UTC')"
            params = {**params, "start_bound": bound_ns}
    versions = list(store.query(
        f"SELECT {', '.join(RUN_FIELDS)}, version, {expression} AS sort_value FROM {table} WHERE {where} "
        f"ORDER BY {_SORT_COLUMNS.get(page.sort, 'sort_value')} {direction} LIMIT {{candidates:UInt32}}",
        parameters={**params, "candidates": wanted}).named_results())
    if bounded and len(versions) < wanted:
        return None  # merges collapsed versions between the two reads: not known to be complete
    if not versions:
        return []
    keys = list(dict.fromkeys((v["project_id"], v["run_id"]) for v in versions))
    newest = {(project, run): version for project, run, version in store.query(
        "SELECT project_id, run_id, max(version) FROM runs "
        "WHERE (project_id, run_id) IN {k_keys:Array(Tuple(String, String))} GROUP BY project_id, run_id",
        parameters={"k_keys": keys}).result_rows}
    rows, taken = [], set()
    for row in versions:
        key = (row["project_id"], row["run_id"])
        if row.pop("version") == newest.get(key) and key not in taken:
            taken.add(key)
            rows.append(row)
    rows.sort(key=lambda r: (r["sort_value"], r["run_id"]), reverse=page.descending)
    if len(versions) < wanted:  # every matching version was read
        return rows
    cutoff = versions[-1]["sort_value"]
    ranked = [r for r in rows if (r["sort_value"] > cutoff if page.descending else r["sort_value"] < cutoff)]
    return ranked if len(ranked) > limit else None


# How many rows of runs_by_start the search for a page's first minute reads at most.  Read in
# order, one part at a time, it costs ~2.5x a parallel scan (330 against 135 ms for 5M rows): a
# filter that matches few runs is then better served by that scan, unbounded.
START_MINUTE_READ_ROWS = 1_000_000


def _start_minute(store, where: str, params: dict, page: Page, wanted: int):
    """The minute (Unix seconds) that holds the ``wanted``-th matching row version in page
    order, or None when fewer match (or the read stopped at :data:`START_MINUTE_READ_ROWS`).

    ``runs_by_start`` is sorted by the minute a run started, so this reads from one end and
    stops there; the candidates are then read from that minute on, by primary key.
    """
    direction = "DESC" if page.descending else "ASC"
    rows = store.query(
        f"SELECT toUnixTimestamp(toStartOfMinute(started_at)) AS minute FROM {RUNS_BY_START} WHERE {where} "
        f"ORDER BY toStartOfMinute(started_at) {direction} LIMIT 1 OFFSET {{offset:UInt32}} "
        f"SETTINGS max_rows_to_read = {int(START_MINUTE_READ_ROWS)}, read_overflow_mode = 'break'",
        parameters={**params, "offset": wanted - 1}).result_rows
    return rows[0][0] if rows else None


def _page_from_final(store, where: str, params: dict, page: Page, limit: int) -> list[dict]:
    expression, _ = RUN_SORTS[page.sort]
    direction = "DESC" if page.descending else "ASC"
    # Two queries: pick the page's keys reading only the filter and sort columns (FINAL
    # cannot filter before merging, so it reads every column it is given: 4–10x slower at
    # 1M runs), then read the full rows of just those keys through the primary key.
    keys_sql = (f"SELECT project_id, run_id FROM runs FINAL WHERE {where} "
                f"ORDER BY {expression} {direction}, run_id {direction} LIMIT {{limit:UInt32}}")
    keys = store.query(keys_sql, parameters={**params, "limit": limit + 1}).result_rows
    if not keys:
        return []
    rows = fetch_runs(store, keys, expression)
    rows.sort(key=lambda r: (r["sort_value"], r["run_id"]), reverse=page.descending)
    return rows


def fetch_runs(store, keys: list[tuple[str, str]], sort_expression: str = "0") -> list[dict]:
    """Full run rows (plus ``sort_value``) for (project_id, run_id) keys, via the primary key."""
    # The pairs as one tuple set: with a set of projects and a set of runs, ClickHouse selects
    # every granule that may hold any project with any run (388 of 620 at 5M runs, for 50 runs
    # of 10 projects), with the pairs exactly theirs (48).
    sql = (f"SELECT {', '.join(RUN_FIELDS)}, {sort_expression} AS sort_value FROM runs FINAL "
           "WHERE (project_id, run_id) IN {k_keys:Array(Tuple(String, String))}")
    rows = store.query(sql, parameters={"k_keys": [tuple(k) for k in keys]}).named_results()
    wanted = set(map(tuple, keys))
    return [r for r in rows if (r["project_id"], r["run_id"]) in wanted]


def list_projects(store, projects: frozenset[str] | None) -> list[dict]:
    """Every visible project with its run count and first/last activity."""
    if projects is not None and not projects:
        return []
    where, params = RunFilter(projects=projects).where()
    sql = (f"SELECT project_id, count() AS run_count, min(started_at) AS first_seen, "
           f"max(greatest(started_at, ended_at)) AS last_seen FROM runs FINAL WHERE {where} "
           "GROUP BY project_id ORDER BY project_id")
    return list(store.query(sql, parameters=params).named_results())


SESSION_FIELDS = (
    "project_id", "session_id", "count() AS run_count", "countIf(status = 'ok') AS ok_runs",
    "countIf(status = 'error') AS error_runs", "countIf(status = 'in_progress') AS in_progress_runs",
    "min(started_at) AS first_started_at", "max(started_at) AS last_started_at",
    "toUnixTimestamp64Nano(max(started_at)) AS last_ns",
    "max(greatest(started_at, ended_at)) AS last_seen", "sum(duration_ms) AS duration_ms",
    "sum(step_count) AS step_count", "sum(llm_calls) AS llm_calls", "sum(tool_calls) AS tool_calls",
    "sum(input_tokens) AS input_tokens", "sum(output_tokens) AS output_tokens",
    "sum(total_tokens) AS total_tokens", "sum(cost_usd) AS cost_usd",
    "groupUniqArray(agent_name) AS agents", "groupArray(10)(run_id) AS run_ids",
)


def list_sessions(store, filters: RunFilter, after: tuple | None, limit: int) -> tuple[list[dict], tuple | None]:
    """Runs grouped by (project, session), most recently active first, keyset-paginated.

    ``after`` is ``(last_started_at ns, project_id, session_id)`` of the previous page's end.
    Runs without a session are not grouped.  ``since``/``until`` filter the runs counted.
    """
    if filters.is_empty_scope():
        return [], None
    where, params = filters.where()
    having = "1"
    if after is not None:
        having = ("(last_ns, project_id, session_id) < "
                  "({after_ns:Int64}, {after_project:String}, {after_session:String})")
        params.update(after_ns=after[0], after_project=after[1], after_session=after[2])
    sql = (f"SELECT {', '.join(SESSION_FIELDS)} FROM runs FINAL WHERE {where} AND session_id != '' "
           f"GROUP BY project_id, session_id HAVING {having} "
           "ORDER BY last_ns DESC, project_id DESC, session_id DESC LIMIT {limit:UInt32}")
    rows = list(store.query(sql, parameters={**params, "limit": limit + 1}).named_results())
    more = len(rows) > limit
    rows = rows[:limit]
    if not (more and rows):
        return rows, None
    last = rows[-1]
    return rows, (last["last_ns"], last["project_id"], last["session_id"])
