"""The strict runbook parser: the seed format, the full format, and hostile or malformed YAML."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from agenttrail.validator.parser import MAX_RUNBOOK_BYTES, RunbookError, parse_runbook
from agenttrail.validator.runbook import BUDGET_KEYS
from agenttrail.validator.patterns import PatternError, compile_glob, compile_regex

SEED = """allowed_tools: [httpx.post]
required_steps:
  - name: "shorten"
budgets:
  max_total_tokens: 100
  max_total_cost_usd: 1.0
"""

FULL = """version: 1
name: support-flow
applies_to: {agent: support-agent}
allowed_tools: [search, "fetch*"]
denied_tools: ["shell.*"]
required_steps:
  - name: plan
  - tool: order_lookup_api
  - kind: llm
budgets: {max_total_tokens: 5000, max_input_tokens: 4000, max_output_tokens: 1000,
          max_total_cost_usd: 0.5, max_steps: 40, max_llm_calls: 10, max_tool_calls: 20,
          max_duration_ms: 60000, max_errors: 0}
steps:
  - match: {tool: fetch}
    max_latency_ms: 2000
    status: ok
    max_count: 3
    arguments: {required: [url], url_allowlist: ["https://docs.example.com/*"], matches: {url: "^https://"}}
loops: {max_repeats: 3, max_retries_per_tool: 2}
"""


def test_seed_format_parses_unchanged():
    rb = parse_runbook(SEED)
    assert [g.text for g in rb.allowed_tools] == ["httpx.post"]
    assert rb.required_steps[0].name.text == "shorten"
    assert dict(rb.budgets) == {"max_total_tokens": 100, "max_total_cost_usd": 1.0}
    assert rb.rule_ids() == ["allowed_tools", "required_steps", "budgets.max_total_tokens",
                             "budgets.max_total_cost_usd"]


def test_full_format_parses_every_key():
    rb = parse_runbook(FULL)
    assert rb.name == "support-flow" and rb.applies_to.agent.text == "support-agent"
    assert len(rb.budgets) == 9
    assert rb.steps[0].arguments.matches[0][0] == "url"
    assert rb.loops.max_repeats == 3 and rb.loops.max_retries_per_tool == 2
    assert "steps[0].arguments.url_allowlist" in rb.rule_ids()
    assert rb.content_hash == parse_runbook(FULL).content_hash != parse_runbook(SEED).content_hash


def test_json_schema_ships_and_names_the_same_keys():
    schema = json.loads(resources.files("agenttrail.validator").joinpath("schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"version", "name", "description", "applies_to", "allowed_tools",
                                         "denied_tools", "required_steps", "budgets", "steps", "loops",
                                         "forbid_failure_categories", "max_retries"}
    assert tuple(schema["$defs"]["budgets"]["properties"]) == BUDGET_KEYS
    for key in BUDGET_KEYS:  # every key the schema names, the parser accepts
        assert dict(parse_runbook(f"budgets: {{{key}: 1}}").budgets) == {key: 1}


@pytest.mark.parametrize("text, line, column, fragment", [
    ("allowed_tool: [a]", 1, 1, "allowed_tool: unknown key"),
    ("budgets:\n  max_tokens: 5", 2, 3, "budgets.max_tokens: unknown key"),
    ("budgets: {max_steps: 1.5}", 1, 22, "expected an integer"),
    ("budgets: {max_steps: '3'}", 1, 22, "expected an integer"),
    ("budgets: {max_steps: true}", 1, 22, "expected an integer"),
    ("budgets: {max_steps: -1}", 1, 22, "must be between"),
    ("budgets: {max_total_cost_usd: .inf}", 1, 31, "must be finite"),
    ("loops: {max_repeats: 123456789012345678901234567890}", 1, 22, "must be between"),
    ("allowed_tools: search", 1, 16, "expected a list"),
    ("allowed_tools: [\"[abc\"]", 1, 17, "unclosed '['"),
    ("allowed_tools: [\"a]\"]", 1, 17, "unmatched ']'"),
    ("allowed_tools: [\"\"]", 1, 17, "non-empty"),
    ("denied_tools: [1]", 1, 16, "expected a string"),
    ("required_steps: [{}]", 1, 18, "at least one of"),
    ("required_steps: [{kind: robot}]", 1, 25, "unknown kind"),
    ("steps: [{max_count: 1}]", 1, 9, "missing required key 'match'"),
    ("steps: [{match: {tool: x}}]", 1, 9, "at least one constraint"),
    ("steps: [{match: {tool: x}, status: fine}]", 1, 36, "expected one of"),
    ("steps: [{match: {tool: x}, arguments: {matches: {url: '(a'}}}]", 1, 55, "invalid regex"),
    ("steps: [{match: {tool: x}, arguments: {matches: {url: '(?<=a)b'}}}]", 1, 55, "look-around"),
    ("steps: [{match: {tool: x}, arguments: {matches: {url: '(a)\\1'}}}]", 1, 55, "back-references"),
    ("budgets:\n  max_steps: 1\n  max_steps: 2", 3, 3, "duplicate key"),
    ("version: 2", 1, 10, "only runbook format version 1"),
    ("1: a", 1, 1, "keys must be strings"),
    ("- allowed_tools", 1, 1, "expected a mapping"),
    ("just text", 1, 1, "expected a mapping"),
    ("", 1, 1, "runbook is empty"),
    ("a: b: c", 1, 5, "invalid YAML"),
    ("a:\n  - 1\n  b: 2", 3, 3, "invalid YAML"),
    ("a: 1\n---\nb: 2", 2, 1, "single YAML document"),
    ("!!python/object/apply:os.system ['id']", 1, 1, "tags"),
    ("allowed_tools: !custom [a]", 1, 16, "tags"),
])
def test_malformed_runbooks_are_rejected_with_position(text, line, column, fragment):
    with pytest.raises(RunbookError) as info:
        parse_runbook(text)
    (got_line, got_column, _, _), = info.value.errors
    assert fragment in str(info.value)
    assert (got_line, got_column) == (line, column)


def test_billion_laughs_is_refused_without_expansion():
    text = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(9))
    with pytest.raises(RunbookError, match="anchors"):
        parse_runbook(text)
    with pytest.raises(RunbookError, match="aliases"):
        parse_runbook("allowed_tools: *undefined")


def test_oversized_and_non_text_input():
    with pytest.raises(RunbookError, match="larger than"):
        parse_runbook("name: x\n" + "#" * MAX_RUNBOOK_BYTES)
    with pytest.raises(RunbookError, match="larger than"):
        parse_runbook(b"a" * (MAX_RUNBOOK_BYTES + 1))
    with pytest.raises(RunbookError, match="not UTF-8"):
        parse_runbook(b"name: \xff\xfe")
    with pytest.raises(RunbookError, match="YAML text"):
        parse_runbook(123)
    with pytest.raises(RunbookError, match="at most"):
        parse_runbook("allowed_tools: [" + ", ".join(["a"] * 500) + "]")
    with pytest.raises(RunbookError, match="more than 20000 YAML nodes"):  # cheap to refuse
        parse_runbook("allowed_tools: [" + "1," * 100_000 + "1]")


def test_deeply_nested_yaml_does_not_crash():
    with pytest.raises(RunbookError):
        parse_runbook("a: " + "[" * 5000 + "]" * 5000)


def test_globs_translate_to_the_same_matches_as_fnmatch_semantics():
    cases = {"fetch*": (["fetch", "fetch_url"], ["Fetch", "xfetch"]),
             "f?tch": (["fetch", "fitch"], ["ftch"]),
             "[fs]*": (["search", "fetch"], ["answer"]),
             "[!p]*": (["answer"], ["plan"]),
             "a.b": (["a.b"], ["axb"]),
             "x(y)+": (["x(y)+"], ["xy"]),
             "[a-c]": (["b"], ["d"])}
    for glob, (good, bad) in cases.items():
        g = compile_glob(glob)
        assert all(g.matches(v) for v in good) and not any(g.matches(v) for v in bad), glob
    for broken in ("[c-a]", "[]", "[!]"):
        with pytest.raises(PatternError):
            compile_glob(broken)
    for unsupported in ("(?=x)", "(?>x)", "a*+", r"\Aa", "(?P=n)"):
        with pytest.raises(PatternError):
            compile_regex(unsupported)


def test_the_documented_runbooks_parse():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "runbooks.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    seed, full = parse_runbook(blocks[0]), parse_runbook(blocks[1])
    assert seed.rule_ids() == parse_runbook(SEED).rule_ids()
    assert len(full.rule_ids()) == 23 and full.applies_to.agent.text == "support-*"
    assert full.rule_ids()[-2:] == ["forbid_failure_categories", "max_retries"]
    for line in blocks[2].splitlines():  # one-line examples, each a runbook of its own
        parse_runbook(line.split("#")[0])
