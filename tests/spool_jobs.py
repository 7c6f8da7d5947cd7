"""Child-process steps of the crash test (chDB binds a data directory to one process).

``python spool_jobs.py refuse DATA_DIR``: open the embedded store of ``agenttrail serve
--data-dir DATA_DIR``, store a span in each of yesterday's, today's and tomorrow's partitions, then make ClickHouse refuse every further insert into
``steps`` (TOO_MANY_PARTS: one part allowed) — a real refusal, of the kind a loaded server gives.
``python spool_jobs.py accept DATA_DIR``: undo that.
``python spool_jobs.py count DATA_DIR``: print the steps rows and distinct span identities as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

from agenttrail.storage import StepBatch, Store


def main(action: str, data_dir: str) -> None:
    store = Store.open("chdb://" + os.path.join(os.path.abspath(data_dir), "clickhouse"))
    try:
        if action == "refuse":
            now = time.time_ns()
            for day in (-1, 0, 1):  # steps are partitioned by day: one part in each around now
                batch = StepBatch()
                batch.append(project_id="default", run_id="0" * 31 + "1", step_id=f"{day + 2:016x}",
                             name="before", start_time=now + day * 86_400 * 10**9)
                store.writer.write(batch, timeout=60)
            store.command("ALTER TABLE steps MODIFY SETTING parts_to_throw_insert = 1")
        elif action == "accept":
            store.command("ALTER TABLE steps RESET SETTING parts_to_throw_insert")
        elif action == "count":
            rows, distinct = store.query("SELECT count(), uniqExact(project_id, run_id, step_id) FROM steps").result_rows[0]
            print(json.dumps({"rows": rows, "distinct": distinct}))
        else:
            raise SystemExit(f"unknown action {action!r}")
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
