"""Why a run failed: the root-cause step, retry chains and loops, from its classified steps.

:func:`analyse_run` reads step dicts (the columns of ``steps``, in execution order) and
returns the run's ``failure`` block, or None when nothing failed, nothing was retried and
nothing looped.  Rules:

* **Retry chain**: calls are compared within their own sequence — the tool calls of the run,
  and the model calls — in execution order.  A call that failed, followed by the next call
  of the same tool (or the same model), starts a chain; each further call of that target
  while the previous attempt failed is the next attempt.  The arguments may change between
  attempts (an agent fixing a schema error retries with new arguments); ``same_arguments``
  says whether they did.  Outcome: ``recovered`` when the last attempt succeeded, else
  ``exhausted``.
* **Loop** (seed 001's cycle detection, seed 002's ``planner_loop``): at least
  :data:`LOOP_MIN_CALLS` consecutive tool calls of one tool with identical arguments and no
  failure among them.
* **Root cause**: failed attempts of a recovered chain are not candidates, nor (when another
  candidate exists) cancellations, which usually follow another failure.  From the candidates
  keep the "leaves" (no failed candidate below them: the deepest point of each error path).
  An ``agenttrail.failure`` event naming a step (``agenttrail.failure.step_id``) wins; else,
  when the root failed, the earliest leaf whose every ancestor up to the root failed too (the
  error travelled up to the root); else the earliest leaf; else the root itself.  With no
  failed step the first call of the first loop is the root cause (``planner_loop``).
* ``category`` is the root cause's category; an ``unknown`` root failure of a run that
  looped is ``planner_loop``; a run whose every failure was recovered has no category.

Steps stored before failure columns existed carry an empty category: a failed one is
classified here when its evidence was read with it, else counted ``unknown``.
"""

from __future__ import annotations

from .classify import classify_step

LOOP_MIN_CALLS = 3
_MODEL_KINDS = frozenset({"llm", "embedding"})


def _category(step: dict) -> str:
    category = step.get("failure_category") or ""
    if category or step.get("status") != "error":
        return category
    if "attributes" in step and "events.name" in step:
        return classify_step(step.get("kind", "other"), 2, step.get("status_message", ""), step["attributes"],
                             step["events.name"], step["events.attributes"], step.get("finish_reasons") or ())[0]
    return "unknown"


def _target(step: dict):
    kind = step.get("kind")
    if kind == "tool":
        return ("tool", step.get("tool_name") or step.get("name", ""))
    if kind in _MODEL_KINDS:
        return ("model", step.get("model") or step.get("name", ""))
    return None


def _chains(order: list[dict], failed: dict[str, str]) -> list[dict]:
    chains, open_chain = [], {}  # target family -> the chain its last call belongs to
    for step in order:
        target = _target(step)
        if target is None:
            continue
        family = target[0]
        current = open_chain.get(family)
        sid = step["step_id"]
        if current is not None and current["target"] == target and current["last_failed"]:
            current["steps"].append(step)
        else:
            if current is not None and len(current["steps"]) > 1:
                chains.append(current)
            current = {"target": target, "steps": [step]}
            open_chain[family] = current
        current["last_failed"] = bool(failed.get(sid))
    chains += [c for c in open_chain.values() if len(c["steps"]) > 1]
    chains = [c for c in chains if failed.get(c["steps"][0]["step_id"])]
    chains.sort(key=lambda c: c["steps"][0].get("index", 0))
    out = []
    for chain in chains:
        kind, name = chain["target"]
        steps = chain["steps"]
        arguments = {s.get("tool_arguments", "") for s in steps}
        out.append({
            "kind": kind, kind: name,
            "attempts": [{"attempt": n, "step_id": s["step_id"], "status": s.get("status"),
                          "failure_category": failed.get(s["step_id"]) or None}
                         for n, s in enumerate(steps, 1)],
            "outcome": "exhausted" if failed.get(steps[-1]["step_id"]) else "recovered",
            "same_arguments": len(arguments) == 1,
        })
    return out


def _loops(order: list[dict], failed: dict[str, str]) -> list[dict]:
    loops, run = [], []
    for step in [s for s in order if s.get("kind") == "tool"] + [None]:
        key = None if step is None or failed.get(step["step_id"]) else \
            (step.get("tool_name") or step.get("name", ""), step.get("tool_arguments", ""))
        if run and key is not None and key == run[0][0]:
            run.append((key, step))
            continue
        if len(run) >= LOOP_MIN_CALLS:
            loops.append({"tool": run[0][0][0], "count": len(run), "step_ids": [s["step_id"] for _, s in run]})
        run = [(key, step)] if key is not None else []
    return loops


def _linked_step(steps: list[dict], by_id: dict[str, dict]) -> tuple[str, dict] | None:
    """(the step an ``agenttrail.failure`` event names as the cause (the SDK's ``step=``),
    the step that carries the event)."""
    for step in steps:
        linked = step.get("failure_step_ref")
        if linked is None:
            for name, attrs in zip(step.get("events.name") or (), step.get("events.attributes") or ()):
                if name == "agenttrail.failure" and attrs.get("agenttrail.failure.step_id"):
                    linked = attrs["agenttrail.failure.step_id"]
                    break
        if linked and linked in by_id:
            return linked, step
    return None


def _root_cause(order, by_id, failed, excluded) -> str | None:
    candidates = [s for s in order if failed.get(s["step_id"]) and s["step_id"] not in excluded]
    if not candidates:
        return None
    real = [s for s in candidates if failed[s["step_id"]] != "cancelled"]
    candidates = real or candidates
    ids = {s["step_id"] for s in candidates}
    above = set()  # candidates with a failed candidate somewhere below them
    for step in candidates:
        parent, seen = step.get("parent_step_id") or "", set()
        while parent and parent in by_id and parent not in seen:
            seen.add(parent)
            if parent in ids:
                above.add(parent)
            parent = by_id[parent].get("parent_step_id") or ""
    leaves = [s for s in candidates if s["step_id"] not in above]
    roots = [s for s in order if not s.get("parent_step_id")]
    root = roots[0] if roots else None
    if root is not None and failed.get(root["step_id"]):
        def reaches_root(step):
            parent, seen = step.get("parent_step_id") or "", set()
            while parent and parent not in seen:
                seen.add(parent)
                if parent not in by_id or not failed.get(parent):
                    return False
                if parent == root["step_id"]:
                    return True
                parent = by_id[parent].get("parent_step_id") or ""
            return step is root
        connected = [s for s in leaves if reaches_root(s)]
        if connected:
            return connected[0]["step_id"]
    return leaves[0]["step_id"] if leaves else candidates[0]["step_id"]


def analyse_run(run: dict, steps: list[dict]) -> dict | None:
    """The ``failure`` block of one run (see the module docstring), or None.

    ``steps`` are dicts with at least ``step_id``, ``parent_step_id``, ``kind``, ``status``,
    ``failure_category`` (and, for retries and loops, ``tool_name``, ``tool_arguments``,
    ``model``), in execution order (``index``).
    """
    order = sorted(steps, key=lambda s: s.get("index", 0))
    failed = {s["step_id"]: _category(s) for s in order}
    retries = _chains(order, failed)
    loops = _loops(order, failed)
    failed_ids = [s["step_id"] for s in order if failed[s["step_id"]]]
    if not failed_ids and not retries and not loops:
        return None
    by_id = {s["step_id"]: s for s in order}
    recovered = {a["step_id"] for c in retries if c["outcome"] == "recovered" for a in c["attempts"]}
    linked = _linked_step(order, by_id)
    if linked is not None:
        root_cause, holder = linked
        # a linked step that did not fail itself takes the failure the agent declared
        explained = by_id[root_cause] if failed[root_cause] else holder
    else:
        root_cause = _root_cause(order, by_id, failed, recovered)
        explained = by_id.get(root_cause) if root_cause else None
    category = failed[explained["step_id"]] if explained else None
    failure_type = (explained.get("failure_type") or None) if explained else None
    if loops and (root_cause is None or (category == "unknown" and not by_id[root_cause].get("parent_step_id"))):
        root_cause, category, failure_type = loops[0]["step_ids"][0], "planner_loop", "orchestration"
    return {
        "category": category or None,
        "failure_type": failure_type,
        "root_cause_step_id": root_cause,
        "failed_step_ids": failed_ids,
        "retries": retries,
        "loops": loops,
    }


__all__ = ["LOOP_MIN_CALLS", "analyse_run"]
