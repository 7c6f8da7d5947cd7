"""What one background merge of ``steps`` parts costs per row: row by row, by column, and with
the short text columns as ``LowCardinality`` (before migration 11).

ClickHouse rewrites every inserted row several times as it merges small parts into larger
ones, so on a busy store merges take a share of the CPU comparable to the inserts
themselves.  This script inserts ``--parts`` parts of ``--requests-per-part`` 512-span
requests (mapped and encoded as the ingest workers do) into a fresh copy of the ``steps``
table, with background merges stopped, then times one ``OPTIMIZE TABLE … FINAL`` that merges
them.  It does so with ClickHouse's default threshold for vertical merges (131,072 rows), with
the one agenttrail sets (8,192 rows), and with that threshold but the columns migration 11 made
``String`` back as ``LowCardinality(String)``, alternating, and reports the CPU per merged row.

    python bench/merge_bench.py [--parts 10] [--requests-per-part 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from commit_bench import cpu_seconds  # noqa: E402
from ingest_bench import build_requests  # noqa: E402

from agenttrail.proto import otlp  # noqa: E402
from agenttrail.receiver.mapping import map_export_request  # noqa: E402
from agenttrail.storage import EncodedSteps, Store  # noqa: E402
from agenttrail.storage.native import INSERT_COLUMNS  # noqa: E402
from agenttrail.storage.schema import STEP_STRING_COLUMNS  # noqa: E402
from agenttrail.storage.writer import INSERT_SETTINGS  # noqa: E402


def low_cardinality(ddl: str) -> str:
    """``ddl`` with the columns of :data:`STEP_STRING_COLUMNS` as ``LowCardinality(String)``."""
    for column in STEP_STRING_COLUMNS:
        ddl, found = re.subn(rf"`?\b{column}\b`? String\b", f"{column} LowCardinality(String)", ddl, count=1)
        if not found:
            raise SystemExit(f"column {column} is not a String in the steps table")
    return ddl


# (label, vertical merge threshold, change to the table's DDL)
VARIANTS = (
    ("row by row (ClickHouse default)", 131072, lambda ddl: ddl),
    ("by column (agenttrail)", 8192, lambda ddl: ddl),
    ("by column, LowCardinality texts", 8192, low_cardinality),
)


def merge_cost(client, ddl: str, blocks: list[bytes], threshold: int) -> tuple[float, str]:
    """CPU seconds of merging ``blocks`` (one part each) in a fresh table; the result's part type."""
    client.command("DROP TABLE IF EXISTS merge_bench_steps")
    client.command(ddl)
    client.command("ALTER TABLE merge_bench_steps MODIFY SETTING vertical_merge_algorithm_min_rows_to_activate = "
                   "{threshold:UInt64}", parameters={"threshold": threshold})
    for block in blocks:
        client.raw_insert("merge_bench_steps", INSERT_COLUMNS, insert_block=block, fmt="Native",
                          settings=INSERT_SETTINGS)
    before = cpu_seconds()
    client.command("OPTIMIZE TABLE merge_bench_steps FINAL")
    spent = cpu_seconds() - before
    part_type = client.query("SELECT any(part_type) FROM system.parts WHERE database = currentDatabase() "
                             "AND table = 'merge_bench_steps' AND active").result_rows[0][0]
    return spent, part_type


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=10, help="parts merged at once (default 10)")
    parser.add_argument("--requests-per-part", type=int, default=16, help="512-span requests per part (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="merges timed per threshold (default 3)")
    args = parser.parse_args()
    if args.parts < 2 or args.requests_per_part <= 0 or args.rounds <= 0:
        parser.error("--parts must be at least 2, --requests-per-part and --rounds positive")
    count = args.parts * args.requests_per_part
    print(f"mapping {count} requests of 512 spans…", file=sys.stderr)
    bodies, _ = build_requests(count, 512)
    encoded = [EncodedSteps.of(map_export_request(otlp.decode_export(body, "protobuf")).batch,
                               time.time_ns() // 1_000_000).native for body in bodies]
    per = args.requests_per_part
    blocks = [b"".join(encoded[i:i + per]) for i in range(0, count, per)]
    rows = count * 512

    data = tempfile.mkdtemp(prefix="agenttrail-merge-")
    store = Store.open(f"chdb://{data}", "merge_bench")
    store.writer.close()
    try:
        client = store.writer._client_factory()
        client.command("SYSTEM STOP MERGES")  # only the OPTIMIZE below merges
        ddl = client.query("SHOW CREATE TABLE steps").result_rows[0][0]
        ddl = ddl.replace("CREATE TABLE merge_bench.steps", "CREATE TABLE merge_bench.merge_bench_steps", 1)
        results: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
        part_types: dict[str, str] = {}
        for _ in range(args.rounds):
            for label, threshold, change in VARIANTS:
                spent, part_types[label] = merge_cost(client, change(ddl), blocks, threshold)
                results[label].append(spent / rows * 1e6)
        print(f"merging {args.parts} parts of {per * 512} rows ({rows} rows in all):")
        for label, costs in results.items():
            print(f"  {label:32} {statistics.median(costs):5.2f} µs CPU per row "
                  f"(runs: {', '.join(f'{c:.2f}' for c in costs)}; result {part_types[label]})")
    finally:
        store.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
