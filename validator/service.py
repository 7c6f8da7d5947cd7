"""Judging runs against runbooks through the store, and keeping the verdicts.

* :func:`judge` — one compiled query over a selection, verdicts out (nothing stored);
* :func:`validate_run` — one run, persisted and idempotent: the same runbook on the same run
  state (``input_hash``) returns the stored validation; late spans produce a new one;
* :func:`validate_batch` — a project window: counts by status plus a page of failed runs;
* :func:`persist` / :func:`validations_of_run` / :func:`latest_validations` — the table.

``input_hash`` = sha256 of the runbook hash and the run state the query saw (step count,
newest span ingest time in ms, whether the root arrived).  Spans are never rewritten, so a
run's state changes exactly when a span arrives.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from dataclasses import dataclass

from agenttrail.storage.declared import DECLARED_ATTRIBUTES_SQL

from .compiler import CompiledRunbook, Selection, compile_runbook
from .reference import evaluate
from .runbook import Runbook


class RunNotFound(LookupError):
    """No run with that id (in the projects the caller may see)."""


@dataclass(frozen=True)
class RunbookInfo:
    """Which stored runbook a verdict came from (name empty and version 0 for ad-hoc YAML)."""

    name: str = ""
    version: int = 0


def input_hash(runbook_hash: str, step_count: int, last_span_ms: int, has_root: bool) -> str:
    """The idempotency key of one (runbook, run state) pair — also computed in SQL by :mod:`.auto`."""
    text = f"{runbook_hash}|{step_count}|{last_span_ms}|{int(bool(has_root))}"
    return hashlib.sha256(text.encode()).hexdigest()


def judge(store, compiled: CompiledRunbook, selection: Selection, *, statuses=None,
          limit: int | None = None, offset: int = 0) -> list[dict]:
    """Verdicts for the selected runs (ordered by run id), optionally only some statuses/a page."""
    sql, params = compiled.bind(selection)
    outer = f"SELECT * FROM ({sql})"
    if statuses:
        params["q_statuses"] = list(statuses)
        outer += " WHERE status IN {q_statuses:Array(String)}"
    outer += " ORDER BY project_id, run_id"
    if limit is not None:
        params["q_limit"], params["q_offset"] = int(limit), int(offset)
        outer += " LIMIT {q_limit:UInt64} OFFSET {q_offset:UInt64}"
    rows = store.query(outer, params).named_results()
    return [result_from_row(compiled, row) for row in rows]


def count_statuses(store, compiled: CompiledRunbook, selection: Selection) -> dict[str, int]:
    """``{"passed": n, "failed": n, "incomplete": n, "total": n}`` for the selection."""
    sql, params = compiled.bind(selection)
    counts = {"passed": 0, "failed": 0, "incomplete": 0}
    for status, n in store.query(f"SELECT status, count() FROM ({sql}) GROUP BY status", params).result_rows:
        counts[status] = n
    counts["total"] = sum(counts.values())
    return counts


def result_from_row(compiled: CompiledRunbook, row: dict) -> dict:
    verdict = compiled.verdict(row)
    return {
        "project_id": row["project_id"], "run_id": row["run_id"], **verdict,
        "input_hash": input_hash(compiled.runbook.content_hash, row["step_count"], row["last_span_ms"],
                                 row["has_root"]),
        "summary": {"rules": len(compiled.rule_ids), "failed_rules": sorted({r["rule"] for r in verdict["reasons"]}),
                    "step_count": row["step_count"], "root_arrived": bool(row["has_root"])},
    }


def find_run_project(store, run_id: str, projects: list[str] | None = None) -> str:
    """The project holding ``run_id`` (restricted to ``projects`` when given)."""
    sql = "SELECT DISTINCT project_id FROM runs WHERE run_id = {run:String}"
    params = {"run": run_id}
    if projects is not None:
        sql += " AND project_id IN {projects:Array(String)}"
        params["projects"] = list(projects)
    found = [r[0] for r in store.query(sql + " LIMIT 2", params).result_rows]
    if len(found) != 1:
        raise RunNotFound(run_id if not found else f"{run_id} exists in several projects; name one")
    return found[0]


def validate_run(store, run_id: str, runbook: Runbook, *, project: str | None = None,
                 projects: list[str] | None = None, info: RunbookInfo = RunbookInfo(),
                 source: str = "api", compiled: CompiledRunbook | None = None,
                 engine: str = "python") -> dict:
    """Judge one run and store the verdict; returns the validation (``existing`` tells if reused).

    A run state (``input_hash``) already judged with this runbook returns the stored
    validation instead of a new one.

    ``engine="python"`` (the default for one run): two reads side by side — the run's steps,
    and this runbook's stored verdicts on the run — then, unless the state was judged, one
    insert.  The steps give the run's state and, through the reference evaluator, its verdict.
    ``engine="sql"`` reads the state from the runs row and judges through the compiled query,
    as batches do; ClickHouse spends 40–70 ms parsing and planning that query, which pays off
    over many runs but dominates for one (``bench/validate_bench.py`` times both engines).  The property tests hold both engines to the same
    verdicts.
    """
    if engine not in ("sql", "python"):
        raise ValueError(f"engine must be 'sql' or 'python', not {engine!r}")
    project = project or find_run_project(store, run_id, projects)
    if engine == "python":
        earlier = _READS.submit(_verdicts_of, store, project, run_id, runbook.content_hash)
        result = judge_in_python(store, runbook, project, run_id)
        verdicts = earlier.result()
        if result is None:
            raise RunNotFound(run_id)
        for row in verdicts:  # oldest first: the first verdict of this state is the one kept
            if row["input_hash"] == result["input_hash"]:
                return {**_record(row), "existing": True}
        return {**persist(store, [result], runbook, info, source)[0], "existing": False}
    state = list(store.query(
        "SELECT step_count, toUnixTimestamp64Milli(last_span_at) AS ms, NOT root_missing AS has_root "
        "FROM runs FINAL WHERE project_id = {p:String} AND run_id = {r:String}",
        {"p": project, "r": run_id}).named_results())
    if not state:
        raise RunNotFound(run_id)
    known = input_hash(runbook.content_hash, state[0]["step_count"], state[0]["ms"], state[0]["has_root"])
    stored = _stored(store, project, run_id, known)
    if stored:
        return stored
    results = judge(store, compiled or compile_runbook(runbook), Selection(project=project, run_ids=(run_id,)))
    if not results:
        raise RunNotFound(run_id)
    (result,) = results
    if result["input_hash"] != known:  # spans arrived between the two reads
        stored = _stored(store, project, run_id, result["input_hash"])
        if stored:
            return stored
    return {**persist(store, [result], runbook, info, source)[0], "existing": False}


# One run's reads run side by side on these threads: each is mostly ClickHouse's fixed cost
# of planning a query, so two together take about as long as the slower one.
_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agenttrail-validate-read")

_STEP_QUERY = f"""
SELECT step_id, parent_step_id, name, toString(kind) AS kind, tool_name, tool_arguments,
       toString(status) AS status, toString(model) AS model, toString(failure_category) AS failure_category,
       toUnixTimestamp64Nano(start_time) AS start_time,
       toUnixTimestamp64Nano(end_time) AS end_time, duration_ns, input_tokens, output_tokens,
       total_tokens, cost_usd, {DECLARED_ATTRIBUTES_SQL} AS attributes,
       toUnixTimestamp64Milli(ingested_at) AS ingested_ms
FROM steps FINAL WHERE project_id = {{p:String}} AND run_id = {{r:String}}"""


def judge_in_python(store, runbook: Runbook, project: str, run_id: str) -> dict | None:
    """One run judged by the reference evaluator over its fetched steps (None: no steps)."""
    steps = list(store.query(_STEP_QUERY, {"p": project, "r": run_id}).named_results())
    if not steps:
        return None
    verdict = evaluate(runbook, steps)
    has_root = any(s["parent_step_id"] == "" for s in steps)
    step_count, last_ms = len(steps), max(s["ingested_ms"] for s in steps)
    return {"project_id": project, "run_id": run_id, **verdict,
            "input_hash": input_hash(runbook.content_hash, step_count, last_ms, has_root),
            "summary": {"rules": len(runbook.rule_ids()),
                        "failed_rules": sorted({r["rule"] for r in verdict["reasons"]}),
                        "step_count": step_count, "root_arrived": has_root}}


def _verdicts_of(store, project: str, run_id: str, runbook_hash: str) -> list[dict]:
    """The stored verdicts of one runbook on one run, oldest first."""
    return list(store.query(
        "SELECT * FROM validations WHERE project_id = {p:String} AND run_id = {r:String} "
        "AND runbook_hash = {h:String} ORDER BY created_at",
        {"p": project, "r": run_id, "h": runbook_hash}).named_results())


def _stored(store, project: str, run_id: str, key: str) -> dict | None:
    rows = store.query(
        "SELECT * FROM validations WHERE project_id = {p:String} AND run_id = {r:String} "
        "AND input_hash = {h:String} ORDER BY created_at LIMIT 1",
        {"p": project, "r": run_id, "h": key}).named_results()
    for row in rows:
        return {**_record(row), "existing": True}
    return None


def persist(store, results: list[dict], runbook: Runbook, info: RunbookInfo, source: str) -> list[dict]:
    """Store verdicts (one insert); returns the stored validations."""
    now_ms = time.time_ns() // 1_000_000
    created = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
    rows, records = [], []
    for r in results:
        record = {"validation_id": uuid.uuid4().hex, "project_id": r["project_id"], "run_id": r["run_id"],
                  "runbook_name": info.name or runbook.name, "runbook_version": info.version,
                  "runbook_hash": runbook.content_hash, "status": r["status"], "reasons": r["reasons"],
                  "summary": r["summary"], "input_hash": r["input_hash"], "source": source}
        rows.append([record[k] if k not in ("reasons", "summary") else json.dumps(record[k])
                     for k in _COLUMNS[:-1]] + [created])
        records.append({**record, "created_at": _iso(now_ms)})
    if rows:
        store.client().insert("validations", rows, column_names=list(_COLUMNS))
    return records


_COLUMNS = ("validation_id", "project_id", "run_id", "runbook_name", "runbook_version", "runbook_hash",
            "status", "reasons", "summary", "input_hash", "source", "created_at")


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _record(row: dict) -> dict:
    out = {k: row[k] for k in _COLUMNS if k not in ("reasons", "summary", "created_at")}
    out["reasons"], out["summary"] = json.loads(row["reasons"]), json.loads(row["summary"])
    out["created_at"] = row["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return out


def validations_of_run(store, project: str, run_id: str, limit: int = 20) -> list[dict]:
    """A run's validations, newest first."""
    rows = store.query(
        "SELECT * FROM validations FINAL WHERE project_id = {p:String} AND run_id = {r:String} "
        "ORDER BY created_at DESC LIMIT {n:UInt32}", {"p": project, "r": run_id, "n": int(limit)})
    return [_record(row) for row in rows.named_results()]


def latest_validations(store, project: str, run_ids: list[str]) -> dict[str, dict]:
    """The newest validation of each given run (for run lists and run detail)."""
    rows = store.query(
        "SELECT * FROM validations FINAL WHERE project_id = {p:String} AND run_id IN {r:Array(String)} "
        "ORDER BY created_at DESC LIMIT 1 BY run_id", {"p": project, "r": list(run_ids)})
    return {row["run_id"]: _record(row) for row in rows.named_results()}


def validate_batch(store, runbook: Runbook, project: str, *, since_ns=None, until_ns=None,
                   agent=None, service=None, statuses=("failed",), limit: int = 100, offset: int = 0) -> dict:
    """Counts by status over a project window plus one page of the runs with the given
    statuses (failed by default), ordered by run id; ``next_offset`` is null on the last page.
    Nothing is stored: a batch is a query, :func:`validate_run` and auto-validation persist."""
    compiled = compile_runbook(runbook)
    selection = Selection(project=project, since_ns=since_ns, until_ns=until_ns, agent=agent, service=service)
    counts = count_statuses(store, compiled, selection)
    page = judge(store, compiled, selection, statuses=list(statuses), limit=limit, offset=offset)
    listed = sum(counts[s] for s in set(statuses))
    next_offset = offset + len(page) if offset + len(page) < listed else None
    return {"counts": counts, "runs": page, "next_offset": next_offset,
            "runbook": {"name": runbook.name, "hash": runbook.content_hash}}
