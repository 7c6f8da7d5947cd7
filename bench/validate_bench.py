"""Runbook validation benchmark: a whole-project query and single-run validations.

Generates ``--runs`` runs of ``--steps`` steps each directly in an embedded chDB store
(``INSERT … SELECT FROM numbers()``), derives the runs table with the storage layer's own run
aggregates, then measures:

* runs judged per second by one compiled query over the whole project (target ≥ 100,000/s);
* single-run ``validate_run`` latency, persisted (target p99 ≤ 50 ms): with the default
  engine (one read of the run's steps, the reference evaluator), again on the unchanged run
  (answered from the stored validation), and through the compiled query (``engine="sql"``).

    python bench/validate_bench.py --runs 100000            # quick
    python bench/validate_bench.py --runs 1000000 --steps 10  # the issue's size

Use a fresh ``--path`` (the data is kept, so a second invocation with ``--reuse`` skips
generation).  Prints one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

from agenttrail.storage import Store
from agenttrail.storage.runs_sql import runs_insert_sql
from agenttrail.validator.compiler import Selection, compile_runbook
from agenttrail.validator.parser import parse_runbook
from agenttrail.validator.service import count_statuses, judge, validate_run

RUNBOOK = """name: bench-10-rules
allowed_tools: [search, "fetch*", order_lookup_api]
denied_tools: ["shell.*"]
required_steps: [{name: plan}, {tool: search}, {kind: llm}]
budgets: {max_total_tokens: 5000, max_total_cost_usd: 0.5, max_steps: 50, max_errors: 0}
steps:
  - match: {tool: "fetch*"}
    max_latency_ms: 2000
    arguments: {url_allowlist: ["https://docs.example.com/*"]}
loops: {max_repeats: 3}
"""

# Step i of run r is row n = r * steps + i.  Step 0 is the root (an agent span); the rest
# cycle through plan (llm), search, fetch, answer (llm), with a little noise for failures.
STEPS_SQL = """
INSERT INTO steps (project_id, run_id, step_id, parent_step_id, name, kind, service_name, agent_name,
                   tool_name, tool_arguments, model, status, start_time, end_time, duration_ns,
                   input_tokens, output_tokens, total_tokens, cost_usd, ingested_at)
SELECT 'bench', run_id, step_id, if(i = 0, '', root_id), name, kind, 'bench-svc', 'support-agent',
       tool, args, if(kind = 'llm', 'gpt-4o', ''), status, start, start + toIntervalNanosecond(dur), dur,
       tin, tout, tin + tout, if(kind = 'llm', (tin + tout) * 0.000002, NULL), now64(3)
FROM (
    SELECT number AS n, intDiv(n, {steps:UInt64}) AS r, n % {steps:UInt64} AS i,
           leftPad(lower(hex(r)), 32, '0') AS run_id, leftPad(lower(hex(n)), 16, '0') AS step_id,
           leftPad(lower(hex(r * {steps:UInt64})), 16, '0') AS root_id,
           if(i = 0, 0, (i - 1) % 4 + 1) AS role,
           ['agent', 'plan', 'search', 'fetch', 'answer'][role + 1] AS name,
           ['agent', 'llm', 'tool', 'tool', 'llm'][role + 1] AS kind,
           multiIf(role = 2, if(r % 97 = 0, 'shell.exec', 'search'), role = 3, 'fetch', '') AS tool,
           multiIf(role = 3, concat('{"url": "https://', if(r % 89 = 0, 'evil.example', 'docs.example.com'),
                                    '/p', toString(r % 100), '"}'),
                   role = 2, concat('{"q": "q', toString(n % 7), '"}'), '') AS args,
           if(cityHash64(n) % 211 = 0, 'error', 'ok') AS status,
           fromUnixTimestamp64Nano(toInt64(1700000000000000000 + r * 1000000000 + i * 1000000)) AS start,
           toUInt64(if(i = 0, {steps:UInt64} * 1000000, 100000 + cityHash64(n, 1) % 1500000000)) AS dur,
           if(kind = 'llm', 200 + cityHash64(n, 2) % 800, 0) AS tin,
           if(kind = 'llm', 50 + cityHash64(n, 3) % 300, 0) AS tout
    FROM numbers({total:UInt64})
)"""

RUNS_SQL = runs_insert_sql("steps WHERE project_id = 'bench'", version="1")


def generate(store: Store, runs: int, steps: int) -> float:
    """Fill steps and runs; returns seconds taken."""
    started = time.perf_counter()
    store.command(STEPS_SQL, {"steps": steps, "total": runs * steps})
    store.command(RUNS_SQL)
    store.command("OPTIMIZE TABLE steps FINAL")
    store.command("OPTIMIZE TABLE runs FINAL")
    return time.perf_counter() - started


def whole_project(store: Store, compiled, runs: int, repeats: int) -> dict:
    """Best-of-``repeats`` time for one query judging every run of the project."""
    times, counts = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        counts = count_statuses(store, compiled, Selection(project="bench"))
        times.append(time.perf_counter() - started)
    assert counts["total"] == runs, counts
    best = min(times)
    return {"seconds_best": round(best, 3), "seconds_all": [round(t, 3) for t in times],
            "runs_per_second": round(runs / best), "counts": counts}


def single_runs(store: Store, runbook, compiled, runs: int, samples: int) -> dict:
    """Latency of persisted ``validate_run`` (both engines), of a repeat on an unchanged run,
    and of the bare compiled one-run query."""
    rng = random.Random(7)
    ids = [f"{r:032x}" for r in rng.sample(range(runs - 1), samples)]
    default, repeated, sql_engine, query_only = [], [], [], []
    warm = f"{runs - 1:032x}"  # first use imports client-side insert helpers: keep it out of the figures
    validate_run(store, warm, runbook, project="bench", compiled=compiled, source="bench", engine="sql")
    for run_id in ids[samples // 2:]:
        started = time.perf_counter()
        validate_run(store, run_id, runbook, project="bench", source="bench")
        default.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert validate_run(store, run_id, runbook, project="bench", source="bench")["existing"]
        repeated.append((time.perf_counter() - started) * 1000)
    for run_id in ids[:samples // 2]:
        started = time.perf_counter()
        validate_run(store, run_id, runbook, project="bench", compiled=compiled, source="bench", engine="sql")
        sql_engine.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        judge(store, compiled, Selection(project="bench", run_ids=(run_id,)))
        query_only.append((time.perf_counter() - started) * 1000)
    return {"validate_run_ms": _percentiles(default), "revalidate_same_state_ms": _percentiles(repeated),
            "validate_run_sql_engine_ms": _percentiles(sql_engine), "sql_query_only_ms": _percentiles(query_only)}


def _percentiles(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=100)
    return {"p50": round(q[49], 2), "p99": round(q[98], 2), "max": round(max(values), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=10, help="steps per run")
    parser.add_argument("--path", default=os.path.join(tempfile.gettempdir(), "agenttrail-validate-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep existing data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    store = Store.open(f"chdb://{args.path}", f"bench_{args.runs}_{args.steps}")
    try:
        have = store.query("SELECT count() FROM runs FINAL WHERE project_id = 'bench'").result_rows[0][0]
        generated = None
        if not (args.reuse and have == args.runs):
            store.command("TRUNCATE TABLE steps")
            store.command("TRUNCATE TABLE runs")
            generated = round(generate(store, args.runs, args.steps), 1)
        store.command("TRUNCATE TABLE validations")  # single-run figures must judge, not reuse
        runbook = parse_runbook(RUNBOOK)
        compiled = compile_runbook(runbook)
        report = {"runs": args.runs, "steps": args.runs * args.steps, "rules": len(compiled.rule_ids),
                  "generate_seconds": generated,
                  "whole_project": whole_project(store, compiled, args.runs, args.repeats),
                  "single_run": single_runs(store, runbook, compiled, args.runs, args.samples)}
        print(json.dumps(report, indent=2))
    finally:
        store.close()


if __name__ == "__main__":
    main()
