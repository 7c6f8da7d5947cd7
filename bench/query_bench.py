"""Query benchmark: generate N runs (10 steps each) in an embedded store, time the REST API.

    .venv/bin/python bench/query_bench.py --runs 100000
    .venv/bin/python bench/query_bench.py --runs 1000000 --data ./qb1m --keep

Steps are generated inside ClickHouse (``INSERT INTO steps SELECT … FROM numbers(…)``) and
the runs are then recomputed from them with the writer's own aggregate
(:func:`agenttrail.storage.runs_sql.runs_insert_sql`), one project at a time.  Runs start
spread evenly over the last ``--days`` days, across ``--projects`` projects.

Timings go through the real HTTP API: the app from :func:`agenttrail.api.app.create_app`
served by uvicorn on a local port, called one request at a time over a keep-alive connection by
a load generator in its own process (so the client's Python does not share the server's GIL).
Reported per endpoint: p50 / p99 / max in milliseconds.  With ``--keep`` and an existing
``--data`` directory holding the same ``--runs``, generation is skipped.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

import httpx
import uvicorn

from agenttrail.api.app import create_app
from agenttrail.storage import Store
from agenttrail.storage.runs_sql import runs_insert_sql

STEPS_PER_RUN = 10
TOOLS = 30
MODELS = "['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet']"

# One row per step: r = run number, k = step number in the run (0 = root agent, 1–4 llm, 5–9 tool).
# Each project's runs alternate agent versions 1.0 / 1.1 (on the root, with a decision and a
# quality signal event).
STEPS_SQL = f"""
INSERT INTO steps (project_id, run_id, step_id, parent_step_id, name, kind, service_name, agent_name,
                   session_id, tool_name, model, provider, status, error_type, status_message, start_time, end_time,
                   duration_ns, input_tokens, output_tokens, total_tokens, cost_usd, failure_category,
                   failure_type, error_fingerprint, ingested_at,
                   attributes, `events.time`, `events.name`, `events.attributes`)
SELECT project_id, run_id, step_id, if(k = 0, '', root_id),
       multiIf(k = 0, concat('invoke_agent ', agent), k < 5, concat('chat ', model), concat('execute_tool ', tool)),
       multiIf(k = 0, 'agent', k < 5, 'llm', 'tool'), service, agent, session,
       if(k >= 5, tool, ''), if(k BETWEEN 1 AND 4, model, ''), if(k BETWEEN 1 AND 4, 'openai', ''),
       if(failed AND (k = 0 OR k = 7), 'error', 'ok'), if(failed AND k = 7, 'TimeoutError', ''),
       multiIf(NOT failed, '', k = 7, concat('Read timed out after ', toString(h % 60), ' s'),
               k = 0, 'agent gave up', ''),
       start, start + toIntervalNanosecond(duration), duration,
       if(k BETWEEN 1 AND 4, 200 + h % 800, 0), if(k BETWEEN 1 AND 4, 20 + h % 200, 0),
       if(k BETWEEN 1 AND 4, 220 + h % 800 + h % 200, 0),
       if(k BETWEEN 1 AND 4, (h % 1000) / 100000.0, NULL),
       multiIf(NOT failed, '', k = 7, ['timeout', 'rate_limited', 'tool_schema_mismatch', 'auth'][r % 4 + 1],
               k = 0, 'unknown', ''),
       multiIf(NOT failed, '', k = 7, 'tool', k = 0, 'orchestration', ''),
       multiIf(NOT failed, '', k = 7, 'Read timed out after <n> s', k = 0, 'agent gave up', ''), now64(3),
       -- the root carries the agent version, one decision and one quality signal (the SDK's events)
       if(k = 0, map('gen_ai.agent.version', concat('1.', toString(intDiv(r, 10) % 2))), map()),
       if(k = 0, [start, start], []),
       if(k = 0, ['agenttrail.decision', 'agenttrail.quality_signal'], []),
       if(k = 0, [map('agenttrail.decision.type', 'tool_selection',
                      'agenttrail.decision.selected', if(h % 3 = 0, 'cache', 'api'),
                      'agenttrail.decision.confidence', toString((h % 100) / 100)),
                  map('agenttrail.quality.type', 'schema_valid', 'agenttrail.quality.code', 'full_match',
                      'agenttrail.quality.value', if(h % 5 = 0, 'false', 'true'))], [])
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

RUNS_SQL = runs_insert_sql("steps WHERE project_id = {project:String}", version="1")


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


def serve(store: Store) -> tuple[int, uvicorn.Server]:
    config = uvicorn.Config(create_app(store), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server.servers[0].sockets[0].getsockname()[1], server


def time_requests(port: int, plan: list[tuple[str, list[str], int]], out) -> None:
    """The load generator, run in its own process so that its Python work does not share the
    server's interpreter lock: for each (label, paths, warm-up count) it requests the first
    paths untimed, then times the rest one at a time over one keep-alive connection (http.client).
    Sends {label: sorted milliseconds} to ``out``, or {"error": text} on a non-200 answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    results: dict = {}
    for label, paths, warm_up in plan:
        samples = []
        for i, path in enumerate(paths):
            t = time.perf_counter()
            connection.request("GET", path)
            answer = connection.getresponse()
            body = answer.read()
            if i >= warm_up:
                samples.append((time.perf_counter() - t) * 1000)
            if answer.status != 200:
                out.send({"error": f"{label}: {answer.status} {body[:300]!r}"})
                return
        results[label] = sorted(samples)
    out.send(results)


def bench(port: int, store: Store, projects: int, repeat: int, only: str | None = None) -> dict:
    rng = random.Random(7)
    run_ids = [r[0] for r in store.query("SELECT run_id FROM runs ORDER BY cityHash64(run_id) LIMIT 500").result_rows]
    failed_ids = [r[0] for r in store.query("SELECT run_id FROM runs WHERE status = 'error' "
                                            "ORDER BY cityHash64(run_id) LIMIT 500").result_rows]
    proj = lambda i: f"proj-{i % projects}"
    since_24h = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86_400))
    since_48h = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86_400))
    since_7d = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7 * 86_400))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
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
        ("run report (markdown)", lambda i: (f"/v1/runs/{rng.choice(run_ids)}/report", {})),
        ("decisions, project 24 h", lambda i: (f"/v1/projects/{proj(i)}/decisions", {})),
        ("quality signals, project 24 h", lambda i: (f"/v1/projects/{proj(i)}/quality", {})),
        ("compare agent versions, 24 h", lambda i: (f"/v1/projects/{proj(i)}/compare",
                                                    {"a_agent_version": "1.0", "b_agent_version": "1.1"})),
        ("compare yesterday with today", lambda i: (f"/v1/projects/{proj(i)}/compare",
                                                    {"a_since": since_48h, "a_until": since_24h})),
        ("run rca (failed run)", lambda i: (f"/v1/runs/{rng.choice(failed_ids)}/rca", {})),
        ("run list, project+failure_category", lambda i: ("/v1/runs", {"project_id": proj(i),
                                                                       "failure_category": "timeout"})),
        ("failures by category, 24 h", lambda i: (f"/v1/projects/{proj(i)}/failures", {})),
        ("failures by tool, 7 d", lambda i: (f"/v1/projects/{proj(i)}/failures",
                                             {"group_by": "tool", "since": since_7d})),
        ("failures by agent, 24 h", lambda i: (f"/v1/projects/{proj(i)}/failures", {"group_by": "agent"})),
        ("failures by fingerprint, 24 h", lambda i: (f"/v1/projects/{proj(i)}/failures",
                                                     {"group_by": "fingerprint"})),
    ]
    if only:
        cases = [case for case in cases if only in case[0]]
    slow = ("projects", "run list, no filter", "run list, tool+has_errors", "decisions, project 24 h",
            "quality signals, project 24 h", "compare agent versions, 24 h", "compare yesterday with today")
    plan = []
    for label, paths in cases:
        heavy = "summary" in label or "overview" in label or "failures by" in label or label in slow
        count = max(10, repeat // 5) if heavy else repeat
        # warm-up: the first requests of each endpoint load its marks and plans
        urls = [path + ("?" + urlencode(params) if params else "") for path, params in map(paths, range(5 + count))]
        plan.append((label, urls, 5))
    receiving, sending = multiprocessing.Pipe(duplex=False)
    generator = multiprocessing.get_context("spawn").Process(target=time_requests, args=(port, plan, sending))
    generator.start()
    sending.close()  # the child holds the only write end now: if it dies, recv() raises EOFError
    try:
        results = receiving.recv()
    except EOFError:
        generator.join()
        sys.exit(f"the load generator process died (exit code {generator.exitcode})")
    generator.join()
    if "error" in results:
        sys.exit(results["error"])
    summary = {}
    for label, samples in results.items():
        p50, p99 = statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        summary[label] = (p50, p99, samples[-1])
        print(f"  {label:<34} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   max {samples[-1]:8.1f} ms", flush=True)
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=300, help="requests per endpoint (p99 of 100 would be the second-worst)")
    parser.add_argument("--data", help="chDB data directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="reuse --data if it already holds the runs")
    parser.add_argument("--only", help="time only the endpoints whose label contains this text (e.g. failures)")
    args = parser.parse_args(argv)
    data = args.data or tempfile.mkdtemp(prefix="agenttrail-bench-")
    store = Store.open(f"chdb://{data}", "bench")
    have = store.query("SELECT count() FROM runs FINAL").result_rows[0][0]  # rows not yet merged count once
    if not (args.keep and have == args.runs):
        for table in ("steps", "runs", "runs_by_start"):
            store.command(f"TRUNCATE TABLE {table}")
        print(f"generating {args.runs:,} runs / {args.runs * STEPS_PER_RUN:,} steps in {data}", flush=True)
        generate(store, args.runs, args.projects, args.days)
    counts = store.query("SELECT (SELECT count() FROM runs), (SELECT count() FROM steps)").result_rows[0]
    parts = store.query("SELECT table, count() FROM system.parts WHERE database = 'bench' AND active "
                        "GROUP BY table ORDER BY table").result_rows
    print(f"store: {counts[0]:,} runs, {counts[1]:,} steps; active parts {dict(parts)}", flush=True)
    port, server = serve(store)
    try:
        bench(port, store, args.projects, args.repeat, args.only)
    finally:
        server.should_exit = True
        store.close()


if __name__ == "__main__":
    main()
