"""The step tree of a run, laid out for drawing: offsets and durations relative to the run."""

from __future__ import annotations

from .serialize import iso


def _ns(value) -> int:
    from datetime import timezone

    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    whole = int(value.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + value.microsecond * 1000


def build_timeline(run: dict, steps: list[dict]) -> dict:
    """``{"run_id", "started_at", "duration_ms", "roots": [node…]}``.

    Each node: the step's identity and labels, ``offset_ms`` from the earliest step start,
    ``duration_ms``, its ``failure_category`` (null when it did not fail) and its ``children`` in
    start order.  A step whose parent is not in the run
    (an orphan) is a root, flagged ``orphan``.  ``steps`` must be in :func:`get_steps` order.
    """
    origin = min((_ns(s["start_time"]) for s in steps), default=0)
    end = max((_ns(s["start_time"]) + s["duration_ns"] for s in steps), default=origin)
    nodes, roots = {}, []
    for step in steps:
        nodes[step["step_id"]] = {
            "step_id": step["step_id"],
            "parent_step_id": step["parent_step_id"] or None,
            "index": step["index"],
            "depth": step["depth"],
            "name": step["name"],
            "kind": step["kind"],
            "status": step["status"],
            "tool": step["tool_name"] or None,
            "model": step["model"] or None,
            "failure_category": step.get("failure_category") or None,
            "offset_ms": (_ns(step["start_time"]) - origin) / 1e6,
            "duration_ms": step["duration_ns"] / 1e6,
            "children": [],
        }
    for step in steps:
        node, parent = nodes[step["step_id"]], nodes.get(step["parent_step_id"])
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            node["orphan"] = bool(step["parent_step_id"])
            roots.append(node)
    return {
        "run_id": run["run_id"],
        "project_id": run["project_id"],
        "status": run["status"],
        "started_at": iso(run["started_at"]),
        "duration_ms": (end - origin) / 1e6,
        "step_count": len(steps),
        "roots": roots,
    }
