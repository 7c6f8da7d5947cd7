"""Malformed, oversized and hostile spans: rejected one by one, bounded, never fatal."""

from __future__ import annotations

import json
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agenttrail.receiver.mapping import MappingOptions, map_export_request
from mapping_helpers import Recorder, map_one, rows


def _three_spans():
    rec = Recorder()
    for name in ("a", "b", "c"):
        with rec.span(name):
            pass
    request = rec.request()
    return request, request.resource_spans[0].scope_spans[0].spans


def test_bad_ids_reject_only_their_span():
    request, spans = _three_spans()
    spans[0].trace_id = b"\x01" * 15
    spans[1].span_id = bytes(8)
    result = map_export_request(request)
    assert result.rejected == 2
    assert [row["name"] for row in rows(result)] == ["c"]
    assert "trace_id must be 16 non-zero bytes (got 15)" in result.errors[0]
    assert "span_id must be 8 non-zero bytes" in result.errors[1]


def test_zero_trace_id_bad_parent_and_zero_parent():
    request, spans = _three_spans()
    spans[0].trace_id = bytes(16)
    spans[1].parent_span_id = b"\x01\x02\x03\x04"
    spans[2].parent_span_id = bytes(8)  # all-zero parent: a root, not an error
    result = map_export_request(request)
    assert result.rejected == 2
    assert "parent_span_id must be empty or 8 bytes (got 4)" in result.errors[1]
    (row,) = rows(result)
    assert (row["name"], row["parent_step_id"]) == ("c", "")


def test_error_list_is_bounded_but_every_rejection_counted():
    rec = Recorder()
    for i in range(12):
        with rec.span(f"s{i}"):
            pass
    request = rec.request()
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.span_id = b"short"
    result = map_export_request(request)
    assert (result.rejected, len(result.errors), len(result.batch)) == (12, 5, 0)


def test_empty_request_maps_to_nothing():
    result = map_export_request(ExportTraceServiceRequest())
    assert (len(result.batch), result.rejected, result.errors) == (0, 0, [])


def test_oversized_values_are_cut_on_a_utf8_boundary_and_flagged():
    options = MappingOptions(max_value_bytes=64)  # resource values (a UUID, versions) fit
    row = map_one({"big": "ż" * 40, "small": "ok", "gen_ai.operation.name": "chat"}, name="n" * 100,
                  options=options)
    assert row["attributes"]["big"] == "ż" * 32  # 64 bytes of 2-byte characters
    assert row["attributes"]["small"] == "ok"
    assert row["name"] == "n" * 64
    assert row["truncated"] == 1
    odd = map_one({"big": "a" + "ż" * 40}, options=options)["attributes"]["big"]
    assert odd == "a" + "ż" * 31 and len(odd.encode()) == 63  # never half a character
    assert map_one({"small": "ok"}, options=options)["truncated"] == 0
    assert map_one({}, options=MappingOptions(max_value_bytes=8))["truncated"] == 1  # resource cut


def test_too_many_attributes_are_dropped_but_usage_still_counts():
    options = MappingOptions(max_attributes=5)
    attributes = {f"custom.{i}": str(i) for i in range(20)}
    attributes["gen_ai.usage.input_tokens"] = 77
    row = map_one(attributes, options=options)
    assert len(row["attributes"]) == 5 and row["truncated"] == 1
    assert row["input_tokens"] == 77


def test_huge_attribute_count_is_capped():
    rec = Recorder(max_attributes=5000)
    with rec.span("many", {f"k{i}": i for i in range(3000)}):
        pass
    (row,) = rows(map_export_request(rec.request(), options=MappingOptions(max_attributes=10)))
    assert len(row["attributes"]) == 10 and row["truncated"] == 1


def test_spans_the_sdk_already_cut_are_flagged():
    rec = Recorder(max_attributes=3)
    with rec.span("cut", {f"k{i}": i for i in range(5)}):
        pass
    (row,) = rows(map_export_request(rec.request()))
    assert len(row["attributes"]) == 3 and row["truncated"] == 1


def test_hostile_id_lengths_do_not_bloat_the_error():
    request, spans = _three_spans()
    spans[0].trace_id = b"\x07" * 1_000_000
    result = map_export_request(request)
    assert result.rejected == 1 and len(result.errors[0]) < 200


def test_too_many_events_are_capped():
    rec = Recorder()
    with rec.span("chatty") as span:
        for i in range(10):
            span.add_event(f"e{i}")
    (row,) = rows(map_export_request(rec.request(), options=MappingOptions(max_events=3)))
    assert row["events.name"] == ["e0", "e1", "e2"] and row["truncated"] == 1


def test_timestamps():
    now = time.time_ns()
    rec = Recorder()
    for name in ("no_start", "no_times", "future", "ancient", "skewed", "no_end"):
        with rec.span(name):
            pass
    request = rec.request()
    spans = {s.name: s for s in request.resource_spans[0].scope_spans[0].spans}
    spans["no_start"].start_time_unix_nano = 0
    spans["no_times"].start_time_unix_nano = spans["no_times"].end_time_unix_nano = 0
    spans["future"].start_time_unix_nano = now + 10 * 86_400 * 10**9
    spans["ancient"].start_time_unix_nano = 5
    spans["skewed"].end_time_unix_nano = spans["skewed"].start_time_unix_nano - 1000
    spans["no_end"].end_time_unix_nano = 0
    result = map_export_request(request)
    steps = {row["name"]: row for row in rows(result)}
    assert result.rejected == 3 and set(steps) == {"no_start", "skewed", "no_end"}
    assert any("neither start nor end" in e for e in result.errors)
    no_start = steps["no_start"]
    assert no_start["start_time"] == no_start["end_time"] == spans["no_start"].end_time_unix_nano
    skewed = steps["skewed"]
    assert skewed["duration_ns"] == 0 and skewed["end_time"] < skewed["start_time"]
    assert steps["no_end"]["end_time"] == steps["no_end"]["start_time"]


def test_content_dropped_by_default_and_kept_for_opted_in_projects():
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.input.messages": '[{"role":"user"}]',
        "gen_ai.output.messages": "[]", "gen_ai.system_instructions": "be nice",
        "gen_ai.prompt.0.content": "secret", "gen_ai.prompt.name": "greeting",
        "llm.output_messages.0.message.content": "answer", "input.value": "question",
        "gen_ai.request.model": "gpt-4o", "gen_ai.tool.definitions": "[]",
        "retrieval.documents.0.document.content": "doc", "traceloop.entity.output": "out",
    }

    def record(project: str, options: MappingOptions) -> dict:
        rec = Recorder({"agenttrail.project": project})
        with rec.span("chat", attributes) as span:
            span.add_event("gen_ai.user.message", {"gen_ai.system": "openai", "content": "hello there"})
            span.add_event("note", {"gen_ai.input.messages": "x", "keep": "y"})
        (row,) = rows(map_export_request(rec.request(), options=options))
        return row

    default = record("p1", MappingOptions())
    assert set(default["attributes"]) == {"gen_ai.operation.name", "gen_ai.prompt.name", "gen_ai.request.model"}
    assert default["events.attributes"] == [{"gen_ai.system": "openai"}, {"keep": "y"}]
    assert default["truncated"] == 0  # dropping content by policy is not truncation

    opted = MappingOptions(capture_content_projects=frozenset({"p1"}))
    kept = record("p1", opted)
    assert kept["attributes"]["gen_ai.input.messages"] == '[{"role":"user"}]'
    assert kept["attributes"]["gen_ai.prompt.0.content"] == "secret"
    assert kept["events.attributes"][0]["content"] == "hello there"
    other = record("p2", opted)
    assert "gen_ai.input.messages" not in other["attributes"]
    assert "input.value" in record("p2", MappingOptions(capture_content=True))["attributes"]


def test_bad_token_values_are_ignored_but_kept_as_attributes():
    row = map_one({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                   "gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": -5,
                   "llm.token_count.prompt": 1e30, "gen_ai.usage.cache_read.input_tokens": "12"})
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (12, 0, 12)
    assert row["attributes"]["gen_ai.usage.input_tokens"] == "lots"
    assert row["unmapped_usage"] == {}


def test_cache_reported_outside_input_is_folded_in():
    row = map_one({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10,
                   "gen_ai.usage.cache_read.input_tokens": 5000, "gen_ai.usage.output_tokens": 1})
    assert (row["input_tokens"], row["cache_read_tokens"], row["total_tokens"]) == (5010, 5000, 5011)


def test_unknown_usage_keys_are_reported_and_kept():
    rec = Recorder()
    with rec.span("chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.audio_input_tokens": 7,
                           "llm.token_count.prompt_details.audio": 3, "gen_ai.usage.input_tokens": 1}):
        pass
    result = map_export_request(rec.request())
    (row,) = rows(result)
    assert row["unmapped_usage"] == {"gen_ai.usage.audio_input_tokens": "7",
                                     "llm.token_count.prompt_details.audio": "3"}
    assert result.unmapped_usage_keys == set(row["unmapped_usage"])
    assert row["attributes"]["gen_ai.usage.audio_input_tokens"] == "7"


def test_tool_arguments_always_become_json():
    plain = map_one({"openinference.span.kind": "TOOL", "input.value": "London"})
    assert json.loads(plain["tool_arguments"]) == "London"
    broken = map_one({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '{"a": '})
    assert json.loads(broken["tool_arguments"]) == '{"a": '
    llm = map_one({"openinference.span.kind": "LLM", "input.value": '{"q": 1}'})
    assert llm["tool_arguments"] == ""  # an LLM's input is content, not tool arguments


def test_deeply_nested_json_text_does_not_break_the_span():
    nested = "[" * 5000 + "]" * 5000
    row = map_one({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": nested,
                   "gen_ai.response.finish_reasons": nested})
    assert json.loads(row["tool_arguments"]) == nested
    assert row["finish_reasons"] == [nested]


def test_hostile_finish_reasons_and_keys():
    row = map_one({"gen_ai.response.finish_reasons": '["a", "b"]', "k" * 5000: "v"})
    assert row["finish_reasons"] == ["a", "b"]
    assert any(len(k) <= 1024 and k.startswith("kkk") for k in row["attributes"])
    assert row["truncated"] == 1


def test_long_keys_that_collide_after_bounding_do_not_break_the_span():
    stem = "x" * 2000
    row = map_one({"llm.input_messages." + stem + "1": "a", "llm.input_messages." + stem + "2": "b",
                   "gen_ai.usage." + stem: 5, "ok": "1"})
    assert row["attributes"] == {"ok": "1", ("gen_ai.usage." + stem)[:1024]: "5"}
    assert row["unmapped_usage"] == {("gen_ai.usage." + stem)[:1024]: "5"}
    assert row["truncated"] == 1
