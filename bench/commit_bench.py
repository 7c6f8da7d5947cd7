"""What one writer commit costs, by group size: the fixed part and the part per span.

Maps and encodes 512-span requests of realistic agent runs (as the ingest workers do), then
commits them into a fresh embedded store in groups of 1, 4, 8, 16 and 32 requests, through
the writer's own commit (duplicate check, insert, run recompute).  Reports CPU and wall time
per span for each size and a least-squares fit ``cost = fixed + per_span * spans``, which
tells how large a group must be before the per-commit cost stops mattering.

``--prefill N`` first stores about N spans (within 1%) of other runs in the same project,
ingested ``--prefill-age`` seconds earlier (two hours by default; mapped requests, then copied
in SQL under new run ids: the whole table while that fits, then the share still missing), to
show what a commit costs once the store is large.  A few minutes' age stands for a store that
is taking spans right now: what the writer reads for runs already stored depends on how much
was ingested lately, not only on the table's size.

    python bench/commit_bench.py [--rounds 3] [--prefill 8000000] [--prefill-age 7200] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ingest_bench import build_requests  # noqa: E402

from agenttrail.proto import otlp  # noqa: E402
from agenttrail.receiver.mapping import map_export_request  # noqa: E402
from agenttrail.storage import EncodedSteps, Store  # noqa: E402
from agenttrail.storage.runs_sql import runs_insert_sql  # noqa: E402

SIZES = (1, 4, 8, 16, 32)


def cpu_seconds() -> float:
    """CPU time of this process so far (every thread, the embedded engine's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x``: (a, b)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


def prefill(store, seed_requests: list[bytes], spans: int, age: float) -> int:
    """Store ~``spans`` spans of runs no commit below touches, ingested ``age`` seconds ago."""
    ingested = time.time_ns() // 1_000_000 - int(age * 1000)
    seed = [EncodedSteps.of(map_export_request(otlp.decode_export(b, "protobuf")).batch, ingested)
            for b in seed_requests]
    store.writer._commit(seed, store.client())
    copy, stored = 0, store.query("SELECT count() FROM steps").result_rows[0][0]
    while stored < spans * 0.99:
        copy += 1  # every run again under a new id, same shape: the whole table, or the share still missing
        per_mille = min(1000, int((spans - stored) / stored * 1000))
        store.command("INSERT INTO steps SELECT * REPLACE (lower(hex(MD5(concat(run_id, {copy:String})))) AS run_id) "
                      "FROM steps WHERE cityHash64(run_id) % 1000 < {per_mille:UInt32}",
                      parameters={"copy": f"copy {copy}", "per_mille": per_mille})
        stored = store.query("SELECT count() FROM steps").result_rows[0][0]
    store.command(runs_insert_sql("steps FINAL", version="1"))
    # chDB merges only while a process holds the store: let this one finish its merges, so that
    # they do not land in the next process's measurement.
    while store.query("SELECT count() FROM system.merges WHERE database = currentDatabase()").result_rows[0][0]:
        time.sleep(1)
    return store.query("SELECT count() FROM steps").result_rows[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="groups committed per size")
    parser.add_argument("--prefill", type=int, default=0, help="spans stored before measuring (default 0)")
    parser.add_argument("--prefill-age", type=float, default=7200.0,
                        help="seconds before now the prefilled spans count as ingested (default 7200)")
    parser.add_argument("--data", help="store directory (default: a temporary one, removed after)")
    args = parser.parse_args()
    if args.rounds <= 0 or args.prefill < 0 or args.prefill_age < 0:
        parser.error("--rounds must be positive, --prefill and --prefill-age not negative")
    needed = sum(SIZES) * args.rounds
    print(f"mapping {needed} requests of 512 spans…", file=sys.stderr)
    bodies, _ = build_requests(needed + 16, 512)
    seed_requests, bodies = bodies[needed:], bodies[:needed]
    encoded = []
    for body in bodies:
        batch = map_export_request(otlp.decode_export(body, "protobuf")).batch
        steps = EncodedSteps.of(batch, time.time_ns() // 1_000_000)
        encoded.append(steps)

    data = args.data or tempfile.mkdtemp(prefix="agenttrail-commit-")
    store = Store.open(f"chdb://{data}", "commit_bench")
    store.writer.close()  # commits are driven here, one group at a time
    writer, client = store.writer, store.client()
    try:
        if args.prefill:
            print(f"prefilling ~{args.prefill} spans…", file=sys.stderr)
            print(f"stored before measuring: {prefill(store, seed_requests, args.prefill, args.prefill_age)} spans")
        cpu_points, rows, position = [], [], 0
        for size in SIZES:
            cpu_total = wall_total = spans = 0.0
            for _ in range(args.rounds):
                group = encoded[position:position + size]
                position += size
                cpu0, wall0 = cpu_seconds(), time.perf_counter()
                writer._commit(group, client)
                cpu_spent, wall_spent = cpu_seconds() - cpu0, time.perf_counter() - wall0
                n = sum(len(g) for g in group)
                cpu_points.append((n, cpu_spent))
                cpu_total, wall_total, spans = cpu_total + cpu_spent, wall_total + wall_spent, spans + n
            rows.append((size, int(spans / args.rounds), cpu_total / spans * 1e6, wall_total / spans * 1e6))
        print(f"{'requests':>8} {'spans':>6} {'cpu µs/span':>12} {'wall µs/span':>13}")
        for size, spans, cpu_us, wall_us in rows:
            print(f"{size:>8} {spans:>6} {cpu_us:>12.1f} {wall_us:>13.1f}")
        fixed, per_span = fit(cpu_points)
        print(f"fit: {fixed * 1e3:.0f} ms CPU per commit + {per_span * 1e6:.1f} µs CPU per span")
    finally:
        # The commits above ran outside the writer's thread, whose clean stop would have said
        # so: say it here, or the next process to open --data takes this one for a crash and
        # recomputes every run from steps for ten minutes.
        writer._drop_commit_view()
        store.close()
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
