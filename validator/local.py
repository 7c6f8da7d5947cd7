"""``agenttrail validate --storage``: judge runs in-process against a store.

A project window is judged in hash buckets of its run ids (``cityHash64(run_id) % n``) so a
long batch can report progress; each bucket is one compiled query that returns counts by
status and the details of the runs that did not pass.  ``--run`` validations are persisted
(source ``cli``) like the API's, so CI runs show up in the run's validation history.
"""

from __future__ import annotations

from .compiler import Selection, compile_runbook, time_window
from .service import RunbookInfo, find_run_project, result_from_row, validate_run

BUCKETS_PER_MILLION = 20


def validate_local(args, runbook, progress) -> dict:
    """Open the store, judge the selection, return the outcome (see :mod:`.report`)."""
    from agenttrail.storage import Store
    from .cli import UsageError

    try:
        store = Store.open(args.storage, args.database)
    except Exception as exc:  # a bad DSN, an unreachable server, a locked embedded path
        raise UsageError(f"cannot open storage {args.storage}: {exc}") from None
    try:
        compiled = compile_runbook(runbook)
        header = {"name": runbook.name, "hash": runbook.content_hash}
        if args.run:
            runs = []
            for i, run_id in enumerate(args.run):
                project = args.project or find_run_project(store, run_id)
                runs.append(validate_run(store, run_id, runbook, project=project, source="cli",
                                         info=RunbookInfo(runbook.name), compiled=compiled,
                                         engine=args.engine))
                progress.update(i + 1, len(args.run), "runs")
            counts = {s: sum(r["status"] == s for r in runs) for s in ("passed", "failed", "incomplete")}
            return {"runbook": header, "counts": {**counts, "total": len(runs)}, "runs": runs}
        base = Selection(project=args.project, since_ns=args.since_ns, until_ns=args.until_ns,
                         agent=args.agent, service=args.service)
        return {"runbook": header, **judge_in_buckets(store, compiled, base, progress)}
    finally:
        store.close()


def judge_in_buckets(store, compiled, base: Selection, progress) -> dict:
    """Counts and non-passing runs over ``base``, one bucket of run ids per query."""
    estimate = _run_count(store, base)
    buckets = max(1, min(100, estimate * BUCKETS_PER_MILLION // 1_000_000))
    counts = {"passed": 0, "failed": 0, "incomplete": 0}
    runs = []
    for i in range(buckets):
        selection = Selection(**{**base.__dict__, "bucket": (i, buckets)}) if buckets > 1 else base
        sql, params = compiled.bind(selection)
        rows = store.query(
            "SELECT status, count() AS n, groupArrayIf(tuple(project_id, run_id, has_root, step_count, "
            f"last_span_ms, findings), status != 'passed') AS details FROM ({sql}) GROUP BY status",
            params).result_rows
        for status, n, details in rows:
            counts[status] += n
            for project_id, run_id, has_root, step_count, last_span_ms, findings in details:
                runs.append(result_from_row(compiled, {"project_id": project_id, "run_id": run_id, "has_root": has_root,
                                               "step_count": step_count, "last_span_ms": last_span_ms,
                                               "findings": findings}))
        progress.update(i + 1, buckets, "buckets")
    runs.sort(key=lambda r: (r["status"] != "failed", r["project_id"], r["run_id"]))
    return {"counts": {**counts, "total": sum(counts.values())}, "runs": runs}


def _run_count(store, sel: Selection) -> int:
    # An upper bound (no FINAL, no agent/service filter): it only sizes the buckets.
    window, params = time_window(sel)
    where = " AND ".join(["project_id = {p:String}", *window])
    return store.query(f"SELECT count() FROM runs WHERE {where}", {"p": sel.project, **params}).result_rows[0][0]
