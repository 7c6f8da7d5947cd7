"""Query benchmark: generate N runs (10 steps each) in an embedded store, time the REST API.

    /work/venv/bin/python bench/query_bench.py --runs 100000
    /work/venv/bin/python bench/query_bench.py --runs 1000000 --data /tmp/qb1m --keep

Steps are generated inside ClickHouse (``INSERT INTO steps SELECT … FROM numbers(…)``) and
the runs are then recomputed from them with the writer's own aggregate
(:data:`agenttrail.storage.runs_sql.RUN_AGGREGATES_SQL`), one project at a time.  Runs start
spread evenly over the last ``--days`` days, across ``--projects`` projects.

Timings go through the real HTTP API: the app from :func:`agenttrail.api.app.create_app`
served by uvicorn on a local port, called with httpx (keep-alive), one request at a time.
Reported per endpoint: p50 / p99 / max in milliseconds.  With ``--keep`` and an existing
``--data`` directory holding the same ``--runs``, generation is skipped.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time

import httpx
import uvicorn

from agenttrail.api.app import create_app
from agenttrail.storage import Store
from agenttrail.storage.runs_sql import RUN_AGGREGATES_SQL, RUN_COLUMNS

STEPS_PER_RUN = 10
TOOLS = 30
MODELS = "['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet']"

# One row per step: r = run number, k = step number in the run (0 = root agent, 1–4 llm, 5–9 tool).
STEPS_SQL = f"""
INSERT INTO steps (project_id, run_id, step_id, parent_step_id, name, kind, service_name, agent_name,
                   session_id, tool_name, model, provider, status, error_type, start_time, end_time,
                   duration_ns, input_tokens, output_tokens, total_tokens, cost_usd, ingested_at)
SELECT project_id, run_id, step_id, if(k = 0, '', root_id),
       multiIf(k = 0, concat('invoke_agent ', agent), k < 5, concat('chat ', model), concat('execute_tool ', tool)),
       multiIf(k = 0, 'agent', k < 5, 'llm', 'tool'), service, agent, session,
       if(k >= 5, tool, ''), if(k BETWEEN 1 AND 4, model, ''), if(k BETWEEN 1 AND 4, 'openai', ''),
       if(failed AND (k = 0 OR k = 7), 'error', 'ok'), if(failed AND k = 7, 'TimeoutError', ''),
       start, start + toIntervalNanosecond(duration), duration,
       if(k BETWEEN 1 AND 4, 200 + h % 800, 0), if(k BETWEEN 1 AND 4, 20 + h % 200, 0),
       if(k BETWEEN 1 AND 4, 220 + h % 800 + h % 200, 0),
       if(k BETWEEN 1 AND 4, (h % 1000) / 100000.0, NULL), now64(3)
FROM (
    SELECT number, intDiv(number, {STEPS_PER_RUN}) AS r, number % {STEPS_PER_RUN} AS k,
           cityHash64(number) AS h,
           concat('proj-', toString(r % {{projects:UInt32}})) AS project_id,
           lower(hex(MD5(concat('run', toString(r))))) AS run_id,
           substring(lower(hex(MD5(concat('step', toString(number))))), 1, 16) AS step_id,
           substring(lower(hex(MD5(concat('step', toString(r * {STEPS_PER_RUN}))))), 1, 16) AS root_id,
           concat('svc-', toString(r % 5)) AS service, concat('agent-', toString(r % 20)) AS agent,
           if(r % 3 = 0, '', concat('sess-', toString(intDiv(r, 4)))) AS session,
           concat('tool-', toString((r + k) % {TOOLS})) AS tool, {MODELS}[r % 3 + 1] AS model,
           r % 17 = 0 AS failed,
           now64(9) - toIntervalNanosecond(toUInt64(r * {{spacing_ns:UInt64}})) AS run_start,
           run_start + toIntervalMillisecond(k * 100) AS start,
           if(k = 0, 1500000000 + (h % 1000) * 1000000, (10 + h % 2000) * 1000000) AS duration
    FROM numbers({{first:UInt64}}, {{count:UInt64}})
)
WHERE NOT (r % 101 = 0 AND k = 0)  -- every 101st run has no root yet: in progress"""

RUNS_SQL = f"""
INSERT INTO runs ({", ".join(RUN_COLUMNS)}, version)
SELECT {", ".join("r_" + name for name in RUN_COLUMNS)}, 1
FROM (SELECT {RUN_AGGREGATES_SQL} FROM steps WHERE project_id = {{project:String}} GROUP BY project_id, run_id)"""


def generate(store: Store, runs: int, projects: int, days: float) -> None:
    spacing = int(days * 86_400e9 / runs)
    total, chunk, t0 = runs * STEPS_PER_RUN, 2_000_000, time.time()
    for first in range(0, total, chunk):
        store.command(STEPS_SQL, parameters={"projects": projects, "spacing_ns": spacing, "first": first,
                                             "count": min(chunk, total - first)})
        print(f"  steps {min(first + chunk, total):>10,} / {total:,}  {time.time() - t0:6.1f}s", flush=True)
    for p in range(projects):
        store.command(RUNS_SQL, parameters={"project": f"proj-{p}"})
    print(f"  runs recomputed from steps  {time.time() - t0:6.1f}s", flush=True)


def serve(store: Store) -> tuple[str, uvicorn.Server]:
    config = uvicorn.Config(create_app(store), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


def timed(http: httpx.Client, label: str, paths, repeat: int, results: dict) -> None:
    samples = []
    for i in range(repeat):
        path, params = paths(i)
        t = time.perf_counter()
        answer = http.get(path, params=params)
        samples.append((time.perf_counter() - t) * 1000)
        if answer.status_code != 200:
            sys.exit(f"{label}: {answer.status_code} {answer.text[:300]}")
    samples.sort()
    results[label] = (statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))],
                      samples[-1])


def bench(base: str, store: Store, projects: int, repeat: int) -> dict:
    rng = random.Random(7)
    run_ids = [r[0] for r in store.query("SELECT run_id FROM runs ORDER BY cityHash64(run_id) LIMIT 500").result_rows]
    proj = lambda i: f"proj-{i % projects}"
    since_24h = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86_400))
    results: dict = {}
    with httpx.Client(base_url=base, timeout=120) as http:
        http.get("/v1/runs")  # warm-up: first query compiles and loads marks
        cursor = http.get("/v1/runs", params={"project_id": "proj-1", "limit": 50}).json()["next_cursor"]
        cases = [
            ("health (HTTP + SELECT 1 baseline)", lambda i: ("/health", {})),
            ("run detail", lambda i: (f"/v1/runs/{rng.choice(run_ids)}", {})),
            ("run steps", lambda i: (f"/v1/runs/{rng.choice(run_ids)}/steps", {})),
            ("run timeline", lambda i: (f"/v1/runs/{rng.choice(run_ids)}/timeline", {})),
            ("run list, no filter", lambda i: ("/v1/runs", {"limit": 50})),
            ("run list, project", lambda i: ("/v1/runs", {"project_id": proj(i), "limit": 50})),
            ("run list, project+status=error", lambda i: ("/v1/runs", {"project_id": proj(i), "status": "error"})),
            ("run list, project+agent+24h", lambda i: ("/v1/runs", {"project_id": proj(i), "agent": f"agent-{i % 20}",
                                                                   "since": since_24h})),
            ("run list, tool+has_errors", lambda i: ("/v1/runs", {"tool": f"tool-{i % TOOLS}", "has_errors": "true"})),
            ("run list, page 2 (cursor)", lambda i: ("/v1/runs", {"project_id": "proj-1", "cursor": cursor})),
            ("project summary, 24 h", lambda i: (f"/v1/projects/{proj(i)}/summary", {})),
            ("projects", lambda i: ("/v1/projects", {})),
            ("sessions, project", lambda i: ("/v1/sessions", {"project_id": proj(i)})),
            ("metrics overview, 24 h", lambda i: ("/v1/metrics/overview", {})),
        ]
        for label, paths in cases:  # warm-up: every endpoint's marks and plans are loaded once
            for i in range(5):
                path, params = paths(i)
                http.get(path, params=params)
        for label, paths in cases:
            timed(http, label, paths, repeat if "summary" not in label and "overview" not in label
                  and label not in ("projects", "run list, no filter", "run list, tool+has_errors")
                  else max(10, repeat // 5), results)
            p50, p99, worst = results[label]
            print(f"  {label:<34} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   max {worst:8.1f} ms", flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=100, help="requests per endpoint")
    parser.add_argument("--data", help="chDB data directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="reuse --data if it already holds the runs")
    args = parser.parse_args(argv)
    data = args.data or tempfile.mkdtemp(prefix="agenttrail-bench-")
    store = Store.open(f"chdb://{data}", "bench")
    have = store.query("SELECT count() FROM runs").result_rows[0][0]
    if not (args.keep and have == args.runs):
        store.command("TRUNCATE TABLE steps")
        store.command("TRUNCATE TABLE runs")
        print(f"generating {args.runs:,} runs / {args.runs * STEPS_PER_RUN:,} steps in {data}", flush=True)
        generate(store, args.runs, args.projects, args.days)
    counts = store.query("SELECT (SELECT count() FROM runs), (SELECT count() FROM steps)").result_rows[0]
    parts = store.query("SELECT table, count() FROM system.parts WHERE database = 'bench' AND active "
                        "GROUP BY table ORDER BY table").result_rows
    print(f"store: {counts[0]:,} runs, {counts[1]:,} steps; active parts {dict(parts)}", flush=True)
    base, server = serve(store)
    try:
        bench(base, store, args.projects, args.repeat)
    finally:
        server.should_exit = True
        store.close()


if __name__ == "__main__":
    main()
