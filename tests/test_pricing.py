"""The price table: lookup rules, cost arithmetic, and strict override files."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from agenttrail.receiver.mapping import MappingOptions
from agenttrail.receiver.pricing import FIRST_PARTY_PROVIDERS, UNPRICEABLE_CHARGES, PriceTable, PriceTableError
from mapping_helpers import map_one


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.default()


def test_default_table_is_dated_and_sane(table):
    assert re.fullmatch(r"genai-prices \S+; prices\.yaml 20\d\d-\d\d-\d\d", table.as_of)
    assert len(table.models) > 100
    for name, price in table.models.items():
        assert price.cached_input <= price.input, name
        assert price.input >= 0 and price.output >= 0, name


@pytest.mark.parametrize("model, entry", [
    ("gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("GPT-4o", "gpt-4o"),
    ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
    ("claude-opus-4-5-20251101", "claude-opus-4-5"),
    ("claude-opus-4-20250514", "claude-opus-4"),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
    ("models/gemini-1.5-pro-002", "gemini-1.5-pro"),
    ("mistral-large-latest", "mistral-large"),
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
    ("ft:gpt-4o:my-org::abc123", "ft:gpt-4o"),  # fine-tuned models have prices of their own
    ("text-embedding-3-small", "text-embedding-3-small"),  # from prices.yaml: genai-prices lacks it
])
def test_lookup_exact_then_longest_prefix(table, model, entry):
    assert table.lookup(model) is table.models[entry]


@pytest.mark.parametrize("model", ["", "my-local-llama", "gpt-4o2", "gpt-unknown-9", "ft:my-own-model"])
def test_unknown_models_have_no_price(table, model):
    assert table.cost(model, 1000, 1000) is None
    if model:
        assert table.lookup(model) is None


def test_cost_prices_cache_tokens_apart_and_reasoning_once(table):
    # 1000 input of which 300 cache reads and 100 cache writes; 500 output (reasoning inside)
    cost = table.cost("claude-sonnet-4-20250514", 1000, 500, cache_read=300, cache_creation=100)
    assert cost == pytest.approx((600 * 3 + 300 * 0.3 + 100 * 3.75 + 500 * 15) / 1e6)
    assert table.cost("gpt-4o-mini", 0, 0) == 0.0


def _flat_first_party_models():
    """(provider, model, prices) of first-party genai-prices models whose token prices have no
    tiers, each model id once: from the first provider listing it, as the built-in table does."""
    from genai_prices import data_snapshot
    from genai_prices.types import TieredPrices

    now = datetime.now(timezone.utc)
    providers = {p.id: p for p in data_snapshot.get_snapshot().providers}
    seen = set()
    for provider_id in FIRST_PARTY_PROVIDERS:
        provider = providers.get(provider_id)
        for model in getattr(provider, "models", ()):
            prices = model.get_prices(now)
            fields = [getattr(prices, f, None) for f in ("input_mtok", "output_mtok", "cache_read_mtok",
                                                         "cache_write_mtok")]
            if (model.id.lower() in seen or "/" in model.id or fields[0] is None or fields[1] is None
                    or any(getattr(prices, charge, None) is not None for charge in UNPRICEABLE_CHARGES)):
                continue
            seen.add(model.id.lower())
            if not any(isinstance(f, TieredPrices) for f in fields):
                yield provider, model, prices


# Today at 02:00 and 12:00 UTC: inside and outside the off-peak windows genai-prices holds.
_TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
_TIMES = (_TODAY.replace(hour=2), _TODAY.replace(hour=12, minute=10))


@pytest.mark.parametrize("when", _TIMES, ids=["02:00", "12:10"])
def test_default_costs_agree_with_genai_prices_own_calculation(table, when):
    from genai_prices import Usage

    checked = 0
    for provider, model, prices in _flat_first_party_models():
        read = 3000 if getattr(prices, "cache_read_mtok", None) is not None else 0
        write = 2000 if getattr(prices, "cache_write_mtok", None) is not None else 0
        usage = Usage(input_tokens=10_000, output_tokens=700, cache_read_tokens=read, cache_write_tokens=write)
        expected = float(model.calc_price(usage, provider, genai_request_timestamp=when).total_price)
        name = model.id.lower()
        at_ns = int(when.timestamp()) * 10**9
        assert table.cost(name, 10_000, 700, cache_read=read, cache_creation=write,
                          at_ns=at_ns) == pytest.approx(expected), name
        checked += 1
    assert checked > 100


def test_a_price_that_changes_with_the_time_of_day_follows_the_span_start():
    # genai-prices holds deepseek-flash at twice its price 01:00-04:00 and 06:00-10:00 UTC.
    peak, off_peak = (int(t.timestamp()) * 10**9 - 86_400 * 10**9 for t in _TIMES)  # yesterday
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "deepseek-flash",
                  "gen_ai.usage.input_tokens": 10_000, "gen_ai.usage.output_tokens": 700}
    at_peak = map_one(attributes, start_time=peak)
    at_off_peak = map_one(attributes, start_time=off_peak)
    assert at_peak["cost_source"] == at_off_peak["cost_source"] == "price_table"
    assert at_peak["cost_usd"] == pytest.approx(2 * at_off_peak["cost_usd"])
    price = PriceTable.default().lookup("deepseek-flash")
    assert len(price.by_time_of_day) == 96 and price.at(None) is price
    assert PriceTable.default().lookup("gpt-4o").by_time_of_day == ()  # one price all day


def test_override_file_merges_over_defaults(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("as_of: '2026-11-01'\nmodels:\n  gpt-4o: {input: 1, output: 2}\n"
                    "  my-local-llama: {input: 0.5, output: 0.5, cached_input: 0.1}\n")
    table = PriceTable.load(str(path))
    assert table.as_of == "2026-11-01"
    assert table.cost("gpt-4o-2024-08-06", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert table.cost("my-local-llama", 1_000_000, 0, cache_read=1_000_000) == pytest.approx(0.1)
    assert table.lookup("claude-3-haiku") is PriceTable.default().models["claude-3-haiku"]
    assert PriceTable.default().cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)  # default untouched


@pytest.mark.parametrize("text, message", [
    ("models:\n  gpt-4o: {input: 1, output: 2, inptu: 3}\n", "models.gpt-4o: unknown key 'inptu'"),
    ("models:\n  gpt-4o: {input: -1, output: 2}\n", "models.gpt-4o.input: must be a non-negative number"),
    ("models:\n  gpt-4o: {input: cheap, output: 2}\n", "models.gpt-4o.input: must be a non-negative number"),
    ("models:\n  gpt-4o: {input: true, output: 2}\n", "models.gpt-4o.input: must be a non-negative number"),
    ("models:\n  gpt-4o: {input: .nan, output: 2}\n", "models.gpt-4o.input: must be a non-negative number"),
    ("models:\n  gpt-4o: {input: 1}\n", "models.gpt-4o: missing required key 'output'"),
    ("models:\n  gpt-4o: 3\n", "models.gpt-4o: must be a mapping"),
    ("models: [gpt-4o]\n", "'models' must be a mapping"),
    ("- just a list\n", "top level must be a mapping"),
    ("modles: {}\n", "unknown key 'modles'"),
    ("currency: EUR\nmodels: {}\n", "only USD"),
    ("unit: per_token\nmodels: {}\n", "only per_1m_tokens"),
    ("models: {gpt-4o: {input: 1, output: [2}\n", "not valid YAML"),
])
def test_bad_override_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PriceTableError) as caught:
        PriceTable.load(str(path))
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_override_file(tmp_path):
    with pytest.raises(PriceTableError, match="cannot read prices file"):
        PriceTable.load(str(tmp_path / "nope.yaml"))


def test_mapping_uses_the_configured_table(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  house-model: {input: 10, output: 20}\n")
    options = MappingOptions(prices=PriceTable.load(str(path)))
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "house-model-v2",
                  "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
    row = map_one(attributes, options=options)
    assert (row["cost_usd"], row["cost_source"]) == (pytest.approx(0.012), "price_table")
    assert map_one(attributes)["cost_usd"] is None  # unknown to the default table: unknown, not zero
    explicit = map_one({**attributes, "gen_ai.usage.cost": 0.5}, options=options)
    assert (explicit["cost_usd"], explicit["cost_source"]) == (0.5, "attribute")


def test_no_usage_means_unknown_cost_and_tools_are_not_priced():
    assert map_one({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})["cost_usd"] is None
    tool = map_one({"gen_ai.operation.name": "execute_tool", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 10})
    assert tool["cost_usd"] is None
