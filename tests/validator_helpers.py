"""Helpers for validator tests: build step dicts and write them through the real writer."""

from __future__ import annotations

from agenttrail.storage import StepBatch

STEP_DEFAULTS = dict(parent_step_id="", name="step", kind="other", tool_name="", tool_arguments="",
                     status="ok", start_time=0, end_time=0, duration_ns=0, input_tokens=0,
                     output_tokens=0, total_tokens=0, cost_usd=None, model="", failure_category="")


def step(step_id: str, **fields) -> dict:
    """A step dict with defaults; ``end_time`` follows ``start_time + duration_ns`` unless given."""
    s = {**STEP_DEFAULTS, **fields, "step_id": step_id}
    if "end_time" not in fields:
        s["end_time"] = s["start_time"] + s["duration_ns"]
    return s


def write_runs(store, project: str, runs: dict[str, list[dict]]) -> None:
    """Write every run's steps in one batch through ``store.writer``."""
    batch = StepBatch()
    for run_id, steps in runs.items():
        for s in steps:
            batch.append(project_id=project, run_id=run_id, **s)
    store.writer.write(batch, timeout=60)
