"""Run explorer benchmark: how long the pages take to draw in a real browser on a big store.

    .venv/bin/python bench/ui_bench.py --runs 1000000 --data /path/qb1m --keep
    .venv/bin/python bench/ui_bench.py --runs 2000 --steps 200 --repeat 2      # a quick look

The store is the query benchmark's (``bench/query_bench.py``: N runs of 10 steps, reused with
``--keep``); one run of ``--steps`` steps is added to it through the storage writer.  The API
and the page are served by uvicorn in this process; Debian's Chromium, driven by Playwright,
opens each page ``--repeat`` times in a fresh tab and reads the page's own
``performance.mark`` (set once the data is on screen), i.e. milliseconds from navigation start
to a drawn page: HTML, scripts, every API request of the view, rendering.  One JSON line per
page: p50 and max.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query_bench import STEPS_PER_RUN, generate, serve  # noqa: E402

from agenttrail.storage import Store, StepBatch  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def add_long_run(store: Store, steps: int) -> str:
    """One run of ``steps`` steps (root agent; rounds of workflow → llm, tool), every 50th
    tool failing, started a minute ago; returns its run id."""
    run_id, project = uuid.uuid4().hex, "proj-0"
    start = time.time_ns() - 60_000_000_000
    batch = StepBatch()
    common = dict(project_id=project, run_id=run_id, service_name="svc-long", agent_name="agent-long")
    root = uuid.uuid4().hex[:16]
    rounds = max(1, (steps - 1) // 3)
    batch.append(**common, step_id=root, parent_step_id="", name="invoke_agent agent-long", kind="agent",
                 status="ok", start_time=start, end_time=start + rounds * 30_000_000, duration_ns=rounds * 30_000_000)
    for i in range(rounds):
        t, parent = start + i * 30_000_000, uuid.uuid4().hex[:16]
        batch.append(**common, step_id=parent, parent_step_id=root, name=f"Step {i + 1}", kind="workflow",
                     status="ok", start_time=t, end_time=t + 28_000_000, duration_ns=28_000_000)
        batch.append(**common, step_id=uuid.uuid4().hex[:16], parent_step_id=parent, name="chat gpt-4o", kind="llm",
                     model="gpt-4o", provider="openai", status="ok", start_time=t, end_time=t + 20_000_000,
                     duration_ns=20_000_000, input_tokens=400, output_tokens=60, total_tokens=460, cost_usd=0.001)
        failed = i % 50 == 49
        batch.append(**common, step_id=uuid.uuid4().hex[:16], parent_step_id=parent, name="execute_tool search",
                     kind="tool", tool_name="search", status="error" if failed else "ok",
                     error_type="TimeoutError" if failed else "", start_time=t + 20_000_000,
                     end_time=t + 28_000_000, duration_ns=8_000_000, tool_arguments=json.dumps({"q": i}))
    store.writer.write(batch)
    return run_id


def measure(page, url: str, mark: str, repeat: int) -> list[float]:
    """Milliseconds from navigation start to ``mark``, once per fresh load of ``url``."""
    samples = []
    for _ in range(repeat):
        page.goto("about:blank")
        page.goto(url)
        page.wait_for_function("m => performance.getEntriesByName(m).length > 0", arg=mark, timeout=120_000)
        samples.append(page.evaluate("m => performance.getEntriesByName(m)[0].startTime", mark))
    return sorted(samples)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1000, help="steps of the long run timed on its page")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", help="chDB data directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="reuse --data if it already holds the runs")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 4 or args.repeat < 1:
        parser.error("--runs, --repeat must be at least 1 and --steps at least 4")
    data = args.data or tempfile.mkdtemp(prefix="agenttrail-ui-bench-")
    store = Store.open(f"chdb://{data}", "bench")
    have = store.query("SELECT count() FROM runs WHERE agent_name != 'agent-long'").result_rows[0][0]
    if not (args.keep and have == args.runs):
        store.command("TRUNCATE TABLE steps")
        store.command("TRUNCATE TABLE runs")
        print(f"generating {args.runs:,} runs / {args.runs * STEPS_PER_RUN:,} steps in {data}", file=sys.stderr, flush=True)
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON lines alone
            generate(store, args.runs, 10, 7.0)
    long_run = add_long_run(store, args.steps)
    counts = store.query("SELECT (SELECT count() FROM runs), (SELECT count() FROM steps)").result_rows[0]
    short_run = store.query("SELECT run_id FROM runs WHERE project_id = 'proj-1' LIMIT 1").result_rows[0][0]
    port, server = serve(store)
    base = f"http://127.0.0.1:{port}"
    pages = [
        ("runs page", "/runs", "agenttrail:runs-ready"),
        ("runs page, project", "/runs?project_id=proj-1", "agenttrail:runs-ready"),
        ("runs page, project+status=error", "/runs?project_id=proj-1&status=error", "agenttrail:runs-ready"),
        (f"run page, {args.steps} steps", f"/runs/{long_run}", "agenttrail:run-ready"),
        ("run page, 10 steps", f"/runs/{short_run}", "agenttrail:run-ready"),
        ("overview, 24 h", "/overview?project=proj-1", "agenttrail:overview-ready"),
    ]
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for label, path, mark in pages:
                samples = measure(page, base + path, mark, args.repeat)
                print(json.dumps({"page": label, "runs": counts[0], "steps": counts[1], "repeat": args.repeat,
                                  "p50_ms": round(statistics.median(samples), 1), "max_ms": round(samples[-1], 1)}),
                      flush=True)
            browser.close()
    finally:
        server.should_exit = True
        store.command("DELETE FROM steps WHERE run_id = {r:String}", parameters={"r": long_run})
        store.command("DELETE FROM runs WHERE run_id = {r:String}", parameters={"r": long_run})
        store.close()
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
