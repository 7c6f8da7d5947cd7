"""Why one step failed: a category from a closed list, a failure type and a message fingerprint.

:func:`classify_step` is pure and runs on the ingest hot path for every span, so a step with
nothing that could mean failure (status not ERROR, no events, no content-filter finish
reason, not a retrieval) returns :data:`NOT_FAILED` after four comparisons.

A step has failed when its status is ERROR, when it carries an ``agenttrail.failure`` event
(the agent said so), when a model's finish reason is ``content_filter`` (the answer was
withheld), or when a retrieval says it returned no documents.  Exceptions recorded on a step
whose status is not ERROR were handled (OpenInference's ``agent.step_recovery`` events too):
the step did not fail, and :func:`handled_errors` lists them.

Evidence for the category, in this order — the first that names a category wins:

1. the SDK's ``agenttrail.failure`` event (``agenttrail.failure.code``) — the agent's own word;
2. ``error.type``, then each ``exception`` event's ``exception.type``: provider error names
   (``RateLimitError``, ``AuthenticationError``, ``APITimeoutError`` …) and other exception names;
3. ``http.response.status_code`` (``http.status_code``), ``rpc.grpc.status_code``;
4. the finish reasons ``content_filter`` and ``length``;
5. the words of the status message and of the exception messages ("maximum context length",
   "rate limit", "timed out", "missing required field" …), then of the codes and error names
   themselves (``order_not_found``, ``shipping_unavailable``);
6. the step itself: a guardrail step that failed is ``guardrail_blocked``, a retrieval with no
   documents ``retrieval_empty``;
7. weak evidence last: a 4xx/5xx code or an error name that says only "bad request" or
   "server error" gives ``server_error`` (5xx, ``InternalServerError``), else ``unknown``.

``planner_loop`` is reached from the SDK's failure codes here; loops across steps are found
per run (:mod:`.runs`).
"""

from __future__ import annotations

import re

FAILURE_CATEGORIES = (
    "rate_limited", "auth", "not_found", "server_error", "timeout", "tool_schema_mismatch",
    "context_length", "content_filter", "retrieval_empty", "planner_loop", "guardrail_blocked",
    "policy_denied", "cancelled", "unknown",
)
FAILURE_TYPES = ("tool", "model", "retrieval", "orchestration", "guardrail", "policy")
NOT_FAILED = ("", "", "")

EXCEPTION_EVENTS = frozenset({"exception", "gen_ai.client.operation.exception"})
RECOVERY_EVENT = "agent.step_recovery"
FAILURE_EVENT = "agenttrail.failure"
_WATCHED_EVENTS = EXCEPTION_EVENTS | {RECOVERY_EVENT, FAILURE_EVENT}
MAX_MESSAGE = 2048  # only the head of a message is read: bounded work for a hostile megabyte

# Error / exception type names (lower-case, module prefix removed) → category.
_ERROR_NAMES = {
    "ratelimiterror": "rate_limited", "ratelimitexceeded": "rate_limited", "toomanyrequests": "rate_limited",
    "resourceexhausted": "rate_limited", "throttlingexception": "rate_limited", "rate_limited": "rate_limited",
    "authenticationerror": "auth", "permissiondeniederror": "auth", "unauthorized": "auth",
    "forbidden": "auth", "permissionerror": "auth", "unauthenticated": "auth", "permission_denied": "auth",
    "tool_permission": "auth", "auth": "auth",
    "notfounderror": "not_found", "not_found": "not_found", "filenotfounderror": "not_found",
    "modelnotfounderror": "not_found",
    "internalservererror": "server_error", "serviceunavailableerror": "server_error",
    "apiconnectionerror": "server_error", "overloadederror": "server_error", "server_error": "server_error",
    "timeout": "timeout", "timeouterror": "timeout", "apitimeouterror": "timeout", "readtimeout": "timeout",
    "connecttimeout": "timeout", "timeoutexception": "timeout", "deadline_exceeded": "timeout",
    "deadlineexceeded": "timeout", "timeout_error": "timeout",
    "validationerror": "tool_schema_mismatch", "schema_invalid": "tool_schema_mismatch",
    "schema_mismatch": "tool_schema_mismatch", "tool_schema_mismatch": "tool_schema_mismatch",
    "jsondecodeerror": "tool_schema_mismatch", "toolretryerror": "tool_schema_mismatch",
    "modelretry": "tool_schema_mismatch",
    "contextwindowexceedederror": "context_length", "context_length_exceeded": "context_length",
    "context_length": "context_length",
    "contentfiltererror": "content_filter", "content_filter": "content_filter",
    "retrieval_empty": "retrieval_empty", "no_results": "retrieval_empty",
    "planner_loop": "planner_loop", "cycle_detection": "planner_loop", "loop_budget": "planner_loop",
    "usagelimitexceeded": "planner_loop", "recursionerror": "planner_loop", "graphrecursionerror": "planner_loop",
    "guardrail_blocked": "guardrail_blocked", "guardrailtripwiretriggered": "guardrail_blocked",
    "inputguardrailtripwiretriggered": "guardrail_blocked", "outputguardrailtripwiretriggered": "guardrail_blocked",
    "policy_denied": "policy_denied", "policy_denial": "policy_denied", "policyviolation": "policy_denied",
    "cancellederror": "cancelled", "cancelled": "cancelled", "canceled": "cancelled", "generatorexit": "cancelled",
    "keyboardinterrupt": "cancelled",
}
# Names that say only "the request was bad" / "the server failed": weak evidence (rule 7).
_WEAK_NAMES = {"badrequesterror": "unknown", "unprocessableentityerror": "tool_schema_mismatch",
               "apistatuserror": "unknown", "apierror": "unknown"}
_HTTP = {401: "auth", 403: "auth", 404: "not_found", 408: "timeout", 413: "context_length",
         422: "tool_schema_mismatch", 429: "rate_limited", 504: "timeout"}
# gRPC status codes: 1 CANCELLED, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND, 7 PERMISSION_DENIED,
# 8 RESOURCE_EXHAUSTED, 16 UNAUTHENTICATED; 13 INTERNAL / 14 UNAVAILABLE are weak.
_GRPC = {1: "cancelled", 4: "timeout", 5: "not_found", 7: "auth", 8: "rate_limited", 16: "auth"}
_FINISH = {"content_filter": "content_filter", "length": "context_length"}
_WORDS = [(re.compile(p, re.IGNORECASE), category) for p, category in (
    (r"context.length|context window|maximum context|too many tokens|prompt is too long|token limit", "context_length"),
    (r"rate.?limit|too many requests|quota exceeded|throttl", "rate_limited"),
    (r"timed? ?out|deadline exceeded|timeout", "timeout"),
    (r"policy (denied|denial|violation)|denied by policy", "policy_denied"),
    (r"guardrail", "guardrail_blocked"),
    (r"unauthori[sz]ed|invalid api key|incorrect api key|permission denied|forbidden|access denied|"
     r"not allowed to", "auth"),
    (r"missing required|required (field|property|argument)|schema|validation (error|failed)|"
     r"invalid (argument|parameter)|unexpected keyword|validation errors? for", "tool_schema_mismatch"),
    (r"content.?filter|content management policy|safety system", "content_filter"),
    (r"no (documents|results) (found|returned)|empty (result|retrieval)", "retrieval_empty"),
    (r"\bnot found\b|no such|does not exist", "not_found"),
    (r"\bcancel+ed\b", "cancelled"),
    (r"\bunavailable\b|bad gateway|overloaded|connection (refused|reset)", "server_error"),
)]
_TYPE_BY_CATEGORY = {"retrieval_empty": "retrieval", "planner_loop": "orchestration",
                     "guardrail_blocked": "guardrail", "policy_denied": "policy"}
_TYPE_BY_KIND = {"tool": "tool", "llm": "model", "embedding": "model", "retrieval": "retrieval",
                 "guardrail": "guardrail"}
_RETRIEVAL_COUNTS = ("db.response.returned_rows", "agenttrail.retrieval.documents", "retrieval.documents.count")
_EMPTY_LISTS = ("[]", "")


def _name(value: str) -> str:
    """``openai.RateLimitError`` → ``ratelimiterror``; ``Rate Limited`` → ``rate_limited``."""
    return value[:256].rsplit(".", 1)[-1].strip().lower().replace(" ", "_").replace("-", "_")


def _int(value) -> int | None:
    try:
        return int(str(value)[:16])
    except ValueError:
        return None


def _from_words(text: str) -> str | None:
    if not text:
        return None
    head = text[:MAX_MESSAGE]
    for pattern, category in _WORDS:
        if pattern.search(head):
            return category
    return None


def _retrieval_empty(attrs: dict) -> bool:
    for key in _RETRIEVAL_COUNTS:
        if key in attrs:
            return _int(attrs[key]) == 0
    docs = attrs.get("gen_ai.retrieval.documents")
    return docs is not None and docs.strip() in _EMPTY_LISTS


def classify_step(kind: str, status_code: int, status_message: str, attrs: dict,
                  event_names, event_attrs, finish_reasons) -> tuple[str, str, str]:
    """``(failure_category, failure_type, error_fingerprint)`` of one step, or
    :data:`NOT_FAILED` (three empty strings) when it did not fail.

    ``status_code`` is the OTLP code (2 = ERROR); ``attrs`` the span attributes and
    ``event_names`` / ``event_attrs`` its events, all as stored text.
    """
    if status_code != 2 and not event_names and kind != "retrieval" and not finish_reasons:
        return NOT_FAILED  # the common case: an ok span with nothing to read
    failure_event = None
    exceptions = []
    if event_names:
        for name, ev in zip(event_names, event_attrs):
            if name in _WATCHED_EVENTS:
                if name == FAILURE_EVENT:
                    failure_event = failure_event or ev
                elif name in EXCEPTION_EVENTS:
                    exceptions.append(ev)
    filtered = "content_filter" in finish_reasons if finish_reasons else False
    empty = kind == "retrieval" and status_code != 2 and _retrieval_empty(attrs)
    if status_code != 2 and failure_event is None and not filtered and not empty:
        return NOT_FAILED
    category, declared_type = _category(kind, status_message, attrs, failure_event, exceptions,
                                        finish_reasons, filtered, empty)
    failure_type = declared_type or _TYPE_BY_CATEGORY.get(category) or _TYPE_BY_KIND.get(kind, "orchestration")
    # The most specific message: an exception's own, the agent's, then the status description
    # (often generic: "tool failed", or "<Type>: <exception message>" again).
    message = (next((e.get("exception.message", "") for e in exceptions if e.get("exception.message")), "")
               or (failure_event or {}).get("agenttrail.failure.message", "") or status_message)
    fingerprint = error_fingerprint(message) or _name(attrs.get("error.type", "") or
                                                      (exceptions[0].get("exception.type", "") if exceptions else "")
                                                      or category)
    return category, failure_type, fingerprint


def _category(kind, status_message, attrs, failure_event, exceptions, finish_reasons, filtered, empty):
    """(category, declared failure type or None), by the evidence order of the module docstring."""
    declared = None
    if failure_event is not None:
        declared = failure_event.get("agenttrail.failure.type", "")
        declared = declared if declared in FAILURE_TYPES else None
        found = _ERROR_NAMES.get(_name(failure_event.get("agenttrail.failure.code", "")))
        if found:
            return found, declared
    weak = None
    names = [attrs.get("error.type", "")] + [e.get("exception.type", "") for e in exceptions]
    for raw in names:
        if raw:
            key = _name(raw)
            found = _ERROR_NAMES.get(key)
            if found:
                return found, declared
            weak = weak or _WEAK_NAMES.get(key) or ("server_error" if "server" in key else None)
    for key in ("http.response.status_code", "http.status_code"):
        code = _int(attrs.get(key, ""))
        if code is not None:
            if code in _HTTP:
                return _HTTP[code], declared
            if code >= 500:
                weak = weak or "server_error"
            break
    grpc = _int(attrs.get("rpc.grpc.status_code", ""))
    if grpc is not None:
        if grpc in _GRPC:
            return _GRPC[grpc], declared
        if grpc in (13, 14):
            weak = weak or "server_error"
    if filtered:
        return "content_filter", declared
    if finish_reasons and "length" in finish_reasons:
        return "context_length", declared
    for text in [status_message, (failure_event or {}).get("agenttrail.failure.message", "")] + \
            [e.get("exception.message", "") for e in exceptions]:
        found = _from_words(text)
        if found:
            return found, declared
    # names and codes read as words: "order_not_found", "shipping_unavailable"
    for raw in [(failure_event or {}).get("agenttrail.failure.code", "")] + names:
        found = _from_words(_name(raw).replace("_", " ")) if raw else None
        if found:
            return found, declared
    if kind == "guardrail":
        return "guardrail_blocked", declared
    if empty:
        return "retrieval_empty", declared
    return weak or "unknown", declared


# -- fingerprint ----------------------------------------------------------------------------

_FINGERPRINT_RULES = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\b[a-z][a-z0-9+.-]*://\S+", "<url>"),
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
    (r"\"[^\"]{0,200}\"|'[^']{0,200}'|`[^`]{0,200}`", "<v>"),
    (r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", "<hex>"),
    (r"\b[a-z]+[_-](?=[a-z0-9_-]*\d)[a-z0-9_-]{3,}\b", "<id>"),
    (r"[-+]?\d+(?:[.,:]\d+)*", "<n>"),
    (r"\s+", " "),
)]
MAX_FINGERPRINT = 200


def error_fingerprint(message: str) -> str:
    """``message`` with what varies between occurrences of one error replaced by placeholders:
    URLs, UUIDs, quoted values, hex strings, ids with digits (``req_8f3a1``), numbers.

    "Order 12345 not found (request 'abc')" and "Order 9 not found (request 'x')" share the
    fingerprint "Order <n> not found (request <v>)".  At most 200 characters, from the
    message's first 2048.
    """
    if not message:
        return ""
    text = message[:MAX_MESSAGE]
    for pattern, replacement in _FINGERPRINT_RULES:
        text = pattern.sub(replacement, text)
    return text.strip()[:MAX_FINGERPRINT]


def handled_errors(status: str, event_names, event_attrs) -> list[dict]:
    """The errors a step recorded and got past: exception events on a step whose status is not
    ``error``, and OpenInference ``agent.step_recovery`` events (on any step)."""
    out = []
    for name, ev in zip(event_names or (), event_attrs or ()):
        if name == RECOVERY_EVENT or (name in EXCEPTION_EVENTS and status != "error"):
            out.append({"event": name,
                        "type": ev.get("exception.type") or ev.get("error.type") or None,
                        "message": (ev.get("exception.message") or ev.get("message") or "")[:MAX_MESSAGE] or None,
                        "severity": ev.get("severity") or None})
    return out


__all__ = ["FAILURE_CATEGORIES", "FAILURE_TYPES", "NOT_FAILED", "classify_step", "error_fingerprint",
           "handled_errors"]
