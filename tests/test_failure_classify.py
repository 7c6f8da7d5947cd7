"""agenttrail.analysis.classify: every category reached by its evidence, the evidence order,
the fingerprint rule, and hostile input that must never raise."""

from __future__ import annotations

import pytest

from agenttrail.analysis.classify import (FAILURE_CATEGORIES, FAILURE_TYPES, NOT_FAILED, classify_step,
                                          error_fingerprint, handled_errors)

ERROR, OK, UNSET = 2, 1, 0


def classify(kind="tool", status=ERROR, message="", attrs=None, events=(), finish=()):
    names = [name for name, _ in events]
    maps = [ev for _, ev in events]
    return classify_step(kind, status, message, attrs or {}, names, maps, list(finish))


def exc(type_, message=""):
    return ("exception", {"exception.type": type_, "exception.message": message})


CASES = [
    # (step kind, evidence, category, type)
    ("llm", dict(attrs={"error.type": "openai.RateLimitError"}), "rate_limited", "model"),
    ("llm", dict(events=[exc("AuthenticationError", "Incorrect API key provided")]), "auth", "model"),
    ("tool", dict(attrs={"http.response.status_code": "403"}), "auth", "tool"),
    ("tool", dict(attrs={"http.response.status_code": "404"}), "not_found", "tool"),
    ("llm", dict(events=[exc("InternalServerError")]), "server_error", "model"),
    ("tool", dict(attrs={"http.response.status_code": "503"}), "server_error", "tool"),
    ("tool", dict(attrs={"error.type": "TimeoutError"}), "timeout", "tool"),
    ("tool", dict(attrs={"rpc.grpc.status_code": "4"}), "timeout", "tool"),
    ("tool", dict(events=[exc("pydantic_core.ValidationError", "1 validation error for Args")]),
     "tool_schema_mismatch", "tool"),
    ("llm", dict(events=[exc("openai.BadRequestError", "This model's maximum context length is 8192 tokens")]),
     "context_length", "model"),
    ("llm", dict(status=OK, finish=["content_filter"]), "content_filter", "model"),
    ("retrieval", dict(status=OK, attrs={"db.response.returned_rows": "0"}), "retrieval_empty", "retrieval"),
    ("agent", dict(events=[("agenttrail.failure", {"agenttrail.failure.type": "orchestration",
                                                    "agenttrail.failure.code": "cycle_detection"})]),
     "planner_loop", "orchestration"),
    ("guardrail", dict(message="blocked"), "guardrail_blocked", "guardrail"),
    ("tool", dict(message="Tool call denied by policy: rule arg_schema"), "policy_denied", "policy"),
    ("tool", dict(events=[exc("asyncio.CancelledError")]), "cancelled", "tool"),
    ("workflow", dict(message="Internal Server Error"), "unknown", "orchestration"),
]


@pytest.mark.parametrize("kind, evidence, category, failure_type", CASES, ids=[c[2] for c in CASES])
def test_each_category_is_reached_by_its_evidence(kind, evidence, category, failure_type):
    got_category, got_type, fingerprint = classify(kind, **evidence)
    assert (got_category, got_type) == (category, failure_type)
    assert got_category in FAILURE_CATEGORIES and got_type in FAILURE_TYPES
    assert fingerprint


def test_every_category_is_covered_by_the_cases():
    assert {c[2] for c in CASES} == set(FAILURE_CATEGORIES)


def test_ok_steps_with_nothing_to_read_are_not_failed():
    assert classify("llm", status=OK, finish=["stop"]) == NOT_FAILED
    assert classify("tool", status=UNSET) == NOT_FAILED
    assert classify("retrieval", status=OK, attrs={"db.response.returned_rows": "3"}) == NOT_FAILED
    # content off: the documents are not stored, which says nothing about their number
    assert classify("retrieval", status=OK) == NOT_FAILED


def test_handled_errors_do_not_fail_a_step_but_stay_visible():
    events = [exc("RateLimitError", "slow down"),
              ("agent.step_recovery", {"severity": "expected", "message": "tool raised; retrying"})]
    assert classify("llm", status=OK, events=events) == NOT_FAILED
    handled = handled_errors("ok", [n for n, _ in events], [e for _, e in events])
    assert [(h["event"], h["type"], h["message"]) for h in handled] == [
        ("exception", "RateLimitError", "slow down"), ("agent.step_recovery", None, "tool raised; retrying")]
    # on a failed step the exception is the failure, not a handled error
    assert handled_errors("error", ["exception"], [{"exception.type": "X"}]) == []


def test_evidence_order_declared_failure_then_names_then_codes_then_words():
    declared = ("agenttrail.failure", {"agenttrail.failure.type": "tool", "agenttrail.failure.code": "timeout"})
    assert classify("agent", attrs={"error.type": "RateLimitError"}, events=[declared])[:2] == ("timeout", "tool")
    assert classify("tool", attrs={"error.type": "RateLimitError", "http.response.status_code": "401"})[0] \
        == "rate_limited"
    assert classify("tool", message="rate limit", attrs={"http.response.status_code": "401"})[0] == "auth"
    # a weak name (BadRequestError) lets the words decide; without words it stays unknown
    assert classify("llm", events=[exc("BadRequestError", "bad")])[0] == "unknown"
    assert classify("llm", finish=["length"])[0] == "context_length"


def test_an_unset_status_with_an_exception_was_handled():
    assert classify("tool", status=UNSET, events=[exc("ValueError", "x")]) == NOT_FAILED


@pytest.mark.parametrize("message, fingerprint", [
    ("Order 12345 not found (request 'abc')", "Order <n> not found (request <v>)"),
    ("GET https://api.example.com/v1/orders/12?x=1 failed", "GET <url> failed"),
    ("run 3f2b8c1e-9a4d-4c6b-8e2f-0d1a2b3c4d5e crashed", "run <uuid> crashed"),
    ('key "sk-abc" rejected for req_8f3a1 at 0xdeadbeef', "key <v> rejected for <id> at <hex>"),
    ("trace 4bf92f3577b34da6a3ce929d0e0e4736 lost", "trace <hex> lost"),
    ("  many   spaces\n\there ", "many spaces here"),
    ("", ""),
])
def test_fingerprint_strips_what_varies(message, fingerprint):
    assert error_fingerprint(message) == fingerprint


def test_two_occurrences_of_one_error_share_a_fingerprint():
    a = error_fingerprint("Missing required field: 'customer_id'. Request 991 at 2024-01-15T10:30:08Z")
    b = error_fingerprint("Missing required field: 'order_id'. Request 7 at 2025-03-01T00:00:00Z")
    assert a == b


@pytest.mark.parametrize("attrs, message, events", [
    ({"error.type": "x" * 1_000_000}, "y" * 1_000_000, []),
    ({"http.response.status_code": "not a number", "rpc.grpc.status_code": "9" * 100}, "", []),
    ({"error.type": "\x00\ud800é"}, "\x00" * 10, [("exception", {})]),
    ({}, "", [("exception", {"exception.type": "", "exception.message": "'" * 100_000})]),
    ({"db.response.returned_rows": "-1e999"}, "", [("agenttrail.failure", {"agenttrail.failure.code": "."})]),
])
@pytest.mark.parametrize("kind", ["tool", "llm", "retrieval", "guardrail", "other"])
def test_hostile_evidence_never_raises_and_stays_bounded(kind, attrs, message, events):
    category, failure_type, fingerprint = classify(kind, message=message, attrs=attrs, events=events)
    assert category in FAILURE_CATEGORIES and failure_type in FAILURE_TYPES
    assert len(fingerprint) <= 256


def test_codes_and_names_are_read_as_words_after_the_messages():
    declared = ("agenttrail.failure", {"agenttrail.failure.type": "tool", "agenttrail.failure.code": "order_not_found"})
    assert classify("agent", events=[declared])[:2] == ("not_found", "tool")
    assert classify("tool", attrs={"error.type": "shipping_unavailable"})[0] == "server_error"
    assert classify("tool", events=[exc("ConnectionError", "shipping API unavailable (503)")])[0] == "server_error"
    # but "Internal Server Error" alone stays unknown (seed 002: a generic message is no evidence)
    assert classify("agent", message="Internal Server Error")[0] == "unknown"
