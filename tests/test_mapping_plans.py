"""Key plans (receiver/attributes.py): what a shape of keys means is cached; values never are."""

from __future__ import annotations

from mapping_helpers import Recorder, map_one, rows

from agenttrail.receiver import attributes
from agenttrail.receiver.mapping import map_export_request

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}


def test_spans_of_one_shape_keep_their_own_values():
    recorder = Recorder()
    for model, tokens, operation in (("gpt-4o", 100, "chat"), ("claude-3-5-haiku", 7, "embeddings"),
                                     ("m3", 0, "execute_tool")):
        with recorder.span("s", {"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                                 "gen_ai.usage.input_tokens": tokens, "gen_ai.usage.output_tokens": 1}):
            pass
    mapped = sorted(rows(map_export_request(recorder.request())), key=lambda r: r["model"])
    assert [(r["model"], r["input_tokens"], r["kind"]) for r in mapped] == [
        ("claude-3-5-haiku", 7, "embedding"), ("gpt-4o", 100, "llm"), ("m3", 0, "tool")]


def test_the_best_ranked_key_wins_whatever_the_attribute_order():
    for given in ({"gen_ai.request.model": "asked", "gen_ai.response.model": "served"},
                  {"gen_ai.response.model": "served", "gen_ai.request.model": "asked"}):
        assert map_one({"gen_ai.operation.name": "chat", **given})["model"] == "served"


def test_an_empty_best_value_falls_through_to_the_next_key_of_the_same_shape():
    first = map_one({"gen_ai.operation.name": "chat", "gen_ai.response.model": "", "gen_ai.request.model": "asked"})
    second = map_one({"gen_ai.operation.name": "chat", "gen_ai.response.model": "served",
                      "gen_ai.request.model": "asked"})
    assert (first["model"], second["model"]) == ("asked", "served")


def test_content_and_unmapped_usage_follow_the_plan_and_the_capture_setting():
    row = map_one({**CHAT, "gen_ai.input.messages": "[...]", "gen_ai.usage.image_tokens": 3,
                   "gen_ai.completion.0.finish_reason": "stop"})
    assert "gen_ai.input.messages" not in row["attributes"]
    assert row["unmapped_usage"] == {"gen_ai.usage.image_tokens": "3"}
    assert row["finish_reasons"] == ["stop"]


def _fresh_caches(monkeypatch, limit: int | None = None) -> None:
    for name in ("_PLANS", "_PLANS_BY_MEANING"):
        monkeypatch.setattr(attributes, name, {})
    monkeypatch.setattr(attributes, "_SEEN", {})
    monkeypatch.setattr(attributes, "_held_units", 0)
    if limit is not None:
        monkeypatch.setattr(attributes, "_PLAN_CACHE_LIMIT", limit)


def test_a_shape_is_cached_on_its_second_sighting_and_caches_stay_bounded(monkeypatch):
    _fresh_caches(monkeypatch, limit=8)
    for i in range(30):
        for _ in range(2):
            assert map_one({**CHAT, f"custom.key{i}": "x"})["model"] == "gpt-4o-mini"
        assert tuple([*CHAT, f"custom.key{i}"]) in attributes._PLANS  # just remembered
        assert max(len(attributes._PLANS), len(attributes._SEEN), len(attributes._PLANS_BY_MEANING)) <= 8


def test_shapes_that_never_repeat_share_a_plan_by_meaning_and_are_not_cached(monkeypatch):
    _fresh_caches(monkeypatch)
    for i in range(5):
        assert map_one({**CHAT, f"request.{i}.id": "x"})["input_tokens"] == 10
    assert attributes._PLANS == {} and len(attributes._SEEN) == 5
    assert len(attributes._PLANS_BY_MEANING) == 1  # the custom keys are boring: one meaning


def test_long_keys_are_cut_and_keep_their_meaning_uncached(monkeypatch):
    _fresh_caches(monkeypatch)
    long_usage = "gen_ai.usage." + "x" * 2000
    row = map_one({**CHAT, long_usage: 4})
    (cut_key,) = row["unmapped_usage"]
    assert long_usage.startswith(cut_key) and len(cut_key) == attributes.KEY_MAX_BYTES
    assert row["truncated"] == 1 and row["input_tokens"] == 10
    assert attributes._PLANS == {} and attributes._SEEN == {}  # a hostile shape is not cached


def test_hostile_key_sets_cannot_grow_the_caches_past_their_budget(monkeypatch):
    _fresh_caches(monkeypatch)
    monkeypatch.setattr(attributes, "_PLAN_CACHE_UNITS", 60_000)
    recorder = Recorder(max_attributes=256)
    for i in range(12):  # each span: 100 keys of ~200 characters, never seen before
        with recorder.span("s", {f"k{i}.{j}." + "x" * 200: "v" for j in range(100)}):
            pass
        with recorder.span("s", {f"k{i}.{j}." + "x" * 200: "v" for j in range(100)}):
            pass  # the same shape again: promoted to the shape cache
    mapped = rows(map_export_request(recorder.request()))
    assert len(mapped) == 24 and all(len(r["attributes"]) == 100 for r in mapped)
    held = sum(attributes._units(shape) for cache in (attributes._PLANS, attributes._SEEN) for shape in cache)
    assert held <= attributes._held_units <= 60_000
