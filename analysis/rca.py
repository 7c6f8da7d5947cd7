"""Evidence-first root-cause report of one run, in seed 002's report shape.

Evidence comes first: every hypothesis cites ``evidence_ids`` from ``evidence_index``, and no
hypothesis is produced without them.  Evidence items are the run's failed steps that say
something (a category other than ``unknown``, a specific error type, or a message that is not
generic), guardrail steps, retry chains, loops and handled errors.

Insufficient evidence (seed 002 workflow 2): the run made no tool call, no step has an error
type and there is no guardrail step; or the failure is ``unknown`` and its messages are
generic ("Internal Server Error", "error" …).  The report then says why, has no hypothesis,
and its action items are about collecting data.
"""

from __future__ import annotations

from .classify import handled_errors

MAX_EVIDENCE = 30
MAX_SNIPPET = 500
GENERIC_MESSAGES = frozenset({
    "", "error", "errors", "internal server error", "internal error", "server error", "failed", "failure",
    "exception", "unknown", "unknown error", "an error occurred", "something went wrong", "run failed",
    "step failed", "tool failed", "bad request",
})
_TITLES = {"tool": "Failed tool call", "llm": "Failed model call", "embedding": "Failed model call",
           "retrieval": "Failed retrieval", "guardrail": "Guardrail"}
_EVIDENCE_KINDS = {"tool": "tool_call", "llm": "model_call", "embedding": "model_call", "retrieval": "retrieval",
                   "guardrail": "guardrail"}

# category -> (hypothesis title, verification steps, action items (type, title, description, priority))
_PLAYBOOK = {
    "rate_limited": ("Provider rate limit", [
        "Check the provider's rate-limit headers and quota for the key used",
        "Compare the run's request rate with the account's limits"], [
        ("config_change", "Add backoff and client-side rate limiting",
         "Retry 429 answers with exponential backoff and jitter; cap concurrent calls per key.", "high"),
        ("capacity", "Raise the quota or spread load", "Request a higher limit or use more keys/deployments.",
         "medium")]),
    "auth": ("Credentials or permissions rejected", [
        "Check which credential the failing call used and whether it is valid and scoped",
        "Look for a recent key rotation or permission change"], [
        ("config_change", "Fix the credential or its permissions",
         "Rotate or re-scope the key used by the failing call; add a start-up credential check.", "high")]),
    "not_found": ("A resource or model was not found", [
        "Check the identifier the failing call asked for", "Check whether the resource or model was renamed"], [
        ("code_change", "Validate identifiers before calling",
         "Resolve and check ids (or model names) before the call; handle not-found explicitly.", "medium")]),
    "server_error": ("Upstream server error", [
        "Check the upstream service's status for the run's time window",
        "Compare with other runs calling the same endpoint"], [
        ("code_change", "Retry transient server errors",
         "Retry 5xx answers with backoff and a budget; fall back when the budget is spent.", "medium"),
        ("monitoring", "Alert on upstream error rate", "Track the dependency's 5xx rate per hour.", "low")]),
    "timeout": ("Call timed out", [
        "Compare the failing call's duration with its configured timeout",
        "Check the dependency's latency for the run's time window"], [
        ("config_change", "Tune timeouts and retries",
         "Set timeouts from the dependency's observed p99 and retry idempotent calls.", "high"),
        ("monitoring", "Track dependency latency", "Alert when the dependency's p95 nears the timeout.", "medium")]),
    "tool_schema_mismatch": ("Tool schema mismatch", [
        "Compare the tool call's arguments with the tool's current schema",
        "Check for a recent change of the tool's API or of the prompt describing it"], [
        ("code_change", "Update tool schema validation",
         "Align the tool's declared argument schema with the API contract and validate arguments "
         "before calling.", "high"),
        ("code_change", "Return schema errors to the model",
         "Send validation errors back as a retry prompt so the model can fix its arguments.", "medium")]),
    "context_length": ("Context window exceeded", [
        "Compare the request's input tokens with the model's context window",
        "Find which messages or documents grew the prompt"], [
        ("code_change", "Bound the prompt", "Trim or summarise history and retrieved documents to fit.", "high")]),
    "content_filter": ("Answer withheld by a content filter", [
        "Read the provider's filter result for the call", "Check the input for content that trips the filter"], [
        ("code_change", "Handle filtered answers",
         "Detect content_filter finish reasons and answer with a safe fallback.", "medium")]),
    "retrieval_empty": ("Retrieval returned nothing", [
        "Re-run the retrieval query against the index", "Check that the index holds the expected documents"], [
        ("code_change", "Handle empty retrieval",
         "Broaden the query or tell the user when nothing was found instead of answering blind.", "medium"),
        ("monitoring", "Track empty retrievals", "Alert on the share of retrievals returning nothing.", "low")]),
    "planner_loop": ("Planner loop", [
        "Read the repeated calls' arguments and the model output between them",
        "Check the agent's stop condition and iteration budget"], [
        ("code_change", "Break repeated identical calls",
         "Detect identical consecutive tool calls and stop or re-plan; set an iteration budget.", "high")]),
    "guardrail_blocked": ("Blocked by a guardrail", [
        "Read the guardrail's verdict and the input it judged", "Check whether the guardrail fired correctly"], [
        ("code_change", "Review the guardrail or the blocked behaviour",
         "Fix the behaviour the guardrail caught, or its rule if it fired wrongly.", "medium")]),
    "policy_denied": ("Denied by a policy", [
        "Find the policy rule that denied the call", "Check whether the call should have been allowed"], [
        ("code_change", "Respect or update the policy",
         "Teach the agent the policy's constraint, or change the rule if it is wrong.", "medium")]),
    "cancelled": ("Run or step cancelled", [
        "Check who cancelled (client disconnect, deadline, shutdown)",
        "Check whether cancellation followed another failure"], [
        ("monitoring", "Separate cancellations from failures",
         "Count cancelled runs apart; they are often not agent failures.", "low")]),
    "unknown": ("Unclassified failure", [
        "Read the failing step's full message and attributes", "Reproduce the run with verbose tracing"], [
        ("code_change", "Add structured error codes",
         "Record error.type (an exception name or code) on failing steps so failures can be classified.",
         "medium")]),
}
_DATA_COLLECTION = [
    {"type": "monitoring", "title": "Enable detailed tracing",
     "description": "Add structured logging and tracing to capture more diagnostic information: instrument "
                    "tool and model calls so their spans carry error.type and the error message.",
     "priority": "high"},
    {"type": "code_change", "title": "Add structured error codes",
     "description": "Implement error code taxonomy to enable better classification in future RCAs "
                    "(error.type, or the SDK's record_failure).", "priority": "medium"},
]


def _message(step: dict) -> str:
    for name, attrs in zip(step.get("events.name") or (), step.get("events.attributes") or ()):
        if name in ("exception", "gen_ai.client.operation.exception") and attrs.get("exception.message"):
            return attrs["exception.message"]
        if name == "agenttrail.failure" and attrs.get("agenttrail.failure.message"):
            return attrs["agenttrail.failure.message"]
    return step.get("status_message") or ""


def _generic(text: str) -> bool:
    return text.strip().strip(".!").lower() in GENERIC_MESSAGES


def _specific_type(step: dict) -> bool:
    return (step.get("error_type") or "") not in ("", "error")


def _step_evidence(step: dict, category: str) -> dict:
    kind = step.get("kind", "other")
    target = step.get("tool_name") or step.get("model") or step.get("name") or step["step_id"]
    title = f"{_TITLES.get(kind, 'Failed step')}: {target}" if step.get("status") == "error" or category \
        else f"{_TITLES.get(kind, 'Step')}: {target}"
    attrs = step.get("attributes") or {}
    facts = {"failure_category": category or None, "failure_type": step.get("failure_type") or None,
             "error_type": step.get("error_type") or None,
             "status_code": attrs.get("http.response.status_code") or attrs.get("http.status_code")
             or attrs.get("rpc.grpc.status_code"),
             "error_fingerprint": step.get("error_fingerprint") or None,
             "finish_reasons": step.get("finish_reasons") or None, "tool_arguments": step.get("tool_arguments") or None}
    return {"evidence_id": f"ev_step_{step['step_id']}", "kind": _EVIDENCE_KINDS.get(kind, "step"),
            "step_id": step["step_id"], "title": title, "snippet": _message(step)[:MAX_SNIPPET],
            "attributes": {k: v for k, v in facts.items() if v}}


def build_report(run: dict, steps: list[dict], failure: dict | None) -> dict:
    """The RCA report of ``run`` from its steps (full rows) and its ``failure`` block."""
    by_id = {s["step_id"]: s for s in steps}
    failed = set(failure["failed_step_ids"]) if failure else set()
    evidence, cites = [], {}  # evidence item ids by step id / chain
    for step in steps:
        sid, category = step["step_id"], step.get("failure_category") or ""
        says_something = (category not in ("", "unknown") or _specific_type(step)
                          or not _generic(_message(step)))
        if (sid in failed and says_something) or step.get("kind") == "guardrail":
            item = _step_evidence(step, category)
            evidence.append(item)
            cites[sid] = item["evidence_id"]
        elif step.get("status") != "error":
            for n, handled in enumerate(handled_errors(step.get("status"), step.get("events.name"),
                                                       step.get("events.attributes"))):
                evidence.append({"evidence_id": f"ev_handled_{sid}_{n}", "kind": "handled_error", "step_id": sid,
                                 "title": f"Handled error in {step.get('name') or sid}",
                                 "snippet": (handled["message"] or "")[:MAX_SNIPPET],
                                 "attributes": {k: v for k, v in handled.items() if v and k != "message"}})
    for chain in (failure or {}).get("retries", []):
        first = chain["attempts"][0]["step_id"]
        target = chain.get("tool") or chain.get("model")
        evidence.append({"evidence_id": f"ev_retry_{first}", "kind": "retry_chain", "step_id": first,
                         "title": f"{len(chain['attempts'])} attempts of {target}: {chain['outcome']}",
                         "snippet": "", "attributes": {"outcome": chain["outcome"],
                                                       "attempts": len(chain["attempts"])}})
    for loop in (failure or {}).get("loops", []):
        first = loop["step_ids"][0]
        evidence.append({"evidence_id": f"ev_loop_{first}", "kind": "loop", "step_id": first,
                         "title": f"{loop['count']} identical calls of {loop['tool']}",
                         "snippet": (by_id.get(first, {}).get("tool_arguments") or "")[:MAX_SNIPPET],
                         "attributes": {"count": loop["count"]}})
    evidence = evidence[:MAX_EVIDENCE]
    known = {e["evidence_id"] for e in evidence}
    report = {"run_id": run.get("run_id"), "category": "unknown", "insufficient_evidence": False,
              "insufficient_reason": None,
              "root_cause_step_id": failure["root_cause_step_id"] if failure else None,
              "evidence_index": evidence, "hypotheses": [], "action_items": []}
    reason = _insufficient(run, steps, failure, evidence)
    if reason:
        report.update(insufficient_evidence=True, insufficient_reason=reason,
                      action_items=[dict(a) for a in _DATA_COLLECTION])
        return report
    category = failure["category"] or "unknown"
    report["category"] = category
    root = failure["root_cause_step_id"]
    primary = [i for i in (cites.get(root), f"ev_loop_{root}", f"ev_retry_{root}") if i in known]
    related = [e["evidence_id"] for e in evidence if e["evidence_id"] not in primary and (
        e["kind"] == "guardrail" or e["attributes"].get("failure_category") == category
        or (e["kind"] == "retry_chain" and e["step_id"] in failed))]
    cited = primary + related
    if cited:
        title, verify, actions = _PLAYBOOK[category]
        step = by_id.get(root, {})
        what = f"{step.get('tool_name') or step.get('model') or step.get('name') or root}"
        strong = category != "unknown" and (_specific_type(step) or len(cited) > 1)
        report["hypotheses"].append({
            "title": f"{title} Root Cause",
            "description": f"{what} failed ({category}) and its failure explains the run's outcome"
                           + (f": {_message(step)[:200]}" if _message(step) else "."),
            "evidence_ids": cited, "confidence": "high" if strong else "medium" if category != "unknown" else "low",
            "verification_steps": list(verify)})
        report["action_items"] = [{"type": t, "title": a, "description": d, "priority": p} for t, a, d, p in actions]
    for other in sorted({e["attributes"].get("failure_category") for e in evidence} - {category, None}):
        ids = [e["evidence_id"] for e in evidence if e["attributes"].get("failure_category") == other]
        title, verify, _ = _PLAYBOOK.get(other, _PLAYBOOK["unknown"])
        report["hypotheses"].append({"title": f"Contributing: {title}", "description":
                                     f"Other steps failed with {other}; they may have contributed.",
                                     "evidence_ids": ids, "confidence": "low", "verification_steps": list(verify)})
    return report


def _insufficient(run: dict, steps: list[dict], failure: dict | None, evidence: list[dict]) -> str | None:
    if failure is None:
        return "Nothing failed in this run: no failed step, no retry and no loop to analyse"
    tools = any(s.get("kind") == "tool" for s in steps)
    typed = any(_specific_type(s) for s in steps)
    guarded = any(s.get("kind") == "guardrail" for s in steps)
    if not tools and not typed and not guarded and failure["category"] in (None, "unknown") and not failure["loops"]:
        return "Limited telemetry: no tool failures or specific error details captured"
    if not evidence:
        return "Only generic error messages with no details were captured"
    if failure["category"] is None:
        return "Every failure in this run was recovered by a retry; nothing explains a failed outcome"
    return None


__all__ = ["GENERIC_MESSAGES", "build_report"]
