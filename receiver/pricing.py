"""Model prices and the cost of one LLM call.

:class:`PriceTable` holds USD prices per million tokens, per model.  The built-in table is
the model providers' own prices from `genai-prices <https://github.com/pydantic/genai-prices>`_
(Pydantic's maintained price data, installed with agenttrail: ``pip install -U genai-prices``
refreshes it), over ``prices.yaml`` next to this module for the names it does not carry; a user
file in the same format is merged over both with :meth:`PriceTable.load`.  Validation is
strict — unknown keys, negative or non-numeric prices are errors that name the offending key.

From genai-prices, only first-party providers count (:data:`FIRST_PARTY_PROVIDERS`, the first
one listing a model wins): a reseller's price for the same model name is not the model's price.
Prices that vary with the prompt's length take their base tier (up to the first threshold,
e.g. 200k input tokens); prices that vary with time take the ones in force when the table is
built.  genai-prices' own ``calc_price`` is not called per span: one call costs more than mapping
the whole span (``bench/mapping_bench.py`` times the mapping).

Cost rules (OpenTelemetry GenAI semantics): cache-read and cache-creation tokens are *part of*
the input tokens, so they are priced at their own rates and only the rest at the input rate;
reasoning tokens are part of the output tokens and are not added again.

Lookup: the model name is lower-cased, a ``provider/`` path and a Bedrock ``[region.]vendor.``
prefix are dropped; then an exact match wins, else the longest table entry that is a prefix
followed by ``-``, ``:`` or ``@`` (``gpt-4o-2024-08-06`` → ``gpt-4o``, never ``gpt-4o`` →
``gpt-4``).  Unknown model → no price (the cost is unknown, not zero).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from importlib import metadata, resources

import yaml

_TOP_KEYS = frozenset({"as_of", "currency", "unit", "models"})
_PRICE_KEYS = frozenset({"input", "output", "cached_input", "cache_write"})
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21)\.")
_CACHE_LIMIT = 4096
FIRST_PARTY_PROVIDERS = ("openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "cohere",
                         "moonshotai", "zai", "minimax", "perplexity", "voyageai")
"""genai-prices provider ids whose prices are the model maker's own, in order of preference."""
UNPRICEABLE_CHARGES = ("requests_kcount", "output_reasoning_mtok", "output_citation_mtok",
                       "input_text_messages_kcount")
"""genai-prices charges a step's token counts cannot price (per call, reasoning or citation
tokens at their own rate): models with any of them are left out, their cost unknown."""


class PriceTableError(ValueError):
    """A price file is unreadable or invalid; the message names the file and the bad key."""


# Prices that change with the time of day (genai-prices' off-peak windows) are kept per quarter
# hour of the UTC day, the granularity of those windows.
_SLOT_SECONDS = 900
_SLOTS = 86_400 // _SLOT_SECONDS


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model.

    ``by_time_of_day``: when the price depends on the time of day, the price in force in each
    quarter hour of the UTC day (96 entries); empty otherwise.
    """

    input: float
    output: float
    cached_input: float
    cache_write: float
    by_time_of_day: tuple["ModelPrice", ...] = ()

    def at(self, time_ns: int | None) -> "ModelPrice":
        """The price in force at ``time_ns`` (ns since the epoch; None: this one)."""
        if not self.by_time_of_day or time_ns is None:
            return self
        return self.by_time_of_day[time_ns // 1_000_000_000 % 86_400 // _SLOT_SECONDS]

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int = 0,
             cache_creation: int = 0) -> float:
        """USD for one call; cache tokens are included in ``input_tokens``."""
        uncached = max(input_tokens - cache_read - cache_creation, 0)
        micro = (uncached * self.input + cache_read * self.cached_input
                 + cache_creation * self.cache_write + output_tokens * self.output)
        return micro / 1_000_000


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PriceTableError(f"{where}: must be a non-negative number, not {value!r}")
    return float(value)


def _parse_models(models, source: str) -> dict[str, ModelPrice]:
    if not isinstance(models, dict):
        raise PriceTableError(f"{source}: 'models' must be a mapping of model name to prices")
    parsed = {}
    for name, entry in models.items():
        where = f"{source}: models.{name}"
        if not isinstance(name, str) or not name.strip():
            raise PriceTableError(f"{where}: model names must be non-empty strings")
        if not isinstance(entry, dict):
            raise PriceTableError(f"{where}: must be a mapping with input and output prices")
        unknown = sorted(str(k) for k in entry.keys() - _PRICE_KEYS)
        if unknown:
            raise PriceTableError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_PRICE_KEYS))})")
        for required in ("input", "output"):
            if required not in entry:
                raise PriceTableError(f"{where}: missing required key {required!r}")
        prices = {k: _number(v, f"{where}.{k}") for k, v in entry.items()}
        parsed[name.strip().lower()] = ModelPrice(
            input=prices["input"], output=prices["output"],
            cached_input=prices.get("cached_input", prices["input"]),
            cache_write=prices.get("cache_write", prices["input"]),
        )
    return parsed


def _parse(data, source: str) -> tuple[str, dict[str, ModelPrice]]:
    if not isinstance(data, dict):
        raise PriceTableError(f"{source}: top level must be a mapping with a 'models' key")
    unknown = sorted(str(k) for k in data.keys() - _TOP_KEYS)
    if unknown:
        raise PriceTableError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if data.get("currency", "USD") != "USD":
        raise PriceTableError(f"{source}: currency: only USD is supported, not {data['currency']!r}")
    if data.get("unit", "per_1m_tokens") != "per_1m_tokens":
        raise PriceTableError(f"{source}: unit: only per_1m_tokens is supported, not {data['unit']!r}")
    return str(data.get("as_of", "")), _parse_models(data.get("models", {}), source)


def _read(text: str, source: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{source}: not valid YAML: {exc}") from None


class PriceTable:
    """Model name → :class:`ModelPrice`, with exact-then-longest-prefix lookup."""

    def __init__(self, models: dict[str, ModelPrice], as_of: str = ""):
        self.models = dict(models)
        self.as_of = as_of
        self._by_length = sorted(self.models, key=len, reverse=True)
        self._lookups: dict[str, ModelPrice | None] = {}

    @classmethod
    @functools.cache
    def default(cls) -> "PriceTable":
        """The built-in table: genai-prices over ``prices.yaml`` (module docstring), built once."""
        text = resources.files(__package__).joinpath("prices.yaml").read_text("utf-8")
        as_of, models = _parse(_read(text, "prices.yaml"), "prices.yaml")
        maintained = genai_prices_models(datetime.now(timezone.utc))
        return cls({**models, **maintained}, f"genai-prices {metadata.version('genai-prices')}; "
                                             f"prices.yaml {as_of}")

    @classmethod
    def load(cls, path: str) -> "PriceTable":
        """The built-in table with the models of the YAML file at ``path`` merged over it."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise PriceTableError(f"cannot read prices file {path}: {exc}") from None
        as_of, models = _parse(_read(text, path), path)
        base = cls.default()
        return cls({**base.models, **models}, as_of or base.as_of)

    def lookup(self, model: str) -> ModelPrice | None:
        """The price for ``model`` (see module docstring), or None when it is not known."""
        found = self._lookups.get(model, False)
        if found is not False:
            return found
        found = self._match(model)
        if len(self._lookups) >= _CACHE_LIMIT:  # model names come from clients: stay bounded
            self._lookups.clear()
        self._lookups[model] = found
        return found

    def _match(self, model: str) -> ModelPrice | None:
        name = _BEDROCK_PREFIX.sub("", model.strip().lower().rsplit("/", 1)[-1])
        exact = self.models.get(name)
        if exact is not None:
            return exact
        for prefix in self._by_length:
            if name.startswith(prefix) and len(name) > len(prefix) and name[len(prefix)] in "-:@":
                return self.models[prefix]
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int, cache_read: int = 0,
             cache_creation: int = 0, at_ns: int | None = None) -> float | None:
        """USD for one call of ``model`` made at ``at_ns`` (ns since the epoch: it matters for
        prices that change with the time of day), or None when the model has no price."""
        price = self.lookup(model) if model else None
        if price is None:
            return None
        return price.at(at_ns).cost(input_tokens, output_tokens, cache_read, cache_creation)


def _per_million(price) -> float | None:
    if price is None:
        return None
    return float(getattr(price, "base", price))  # TieredPrices: the base tier


def genai_prices_models(when: datetime) -> dict[str, ModelPrice]:
    """The first-party token prices genai-prices holds, as in force at ``when``, by model id.

    Models without both an input and an output token price (images, audio), or with a charge
    in :data:`UNPRICEABLE_CHARGES`, are left out: their cost stays unknown rather than wrong.
    """
    from genai_prices import data_snapshot  # ~20 ms to import: only when a table is built

    providers = {p.id: p for p in data_snapshot.get_snapshot().providers}
    found: dict[str, ModelPrice] = {}
    for provider_id in FIRST_PARTY_PROVIDERS:
        for model in getattr(providers.get(provider_id), "models", ()):
            name = model.id.strip().lower()
            if not name or "/" in name or name in found:  # lookups drop a "vendor/" path
                continue
            prices = model.get_prices(when)
            if any(getattr(prices, charge, None) is not None for charge in UNPRICEABLE_CHARGES):
                continue
            price = _token_price(prices)
            if price is None:
                continue
            if _varies_by_time_of_day(model):
                day = datetime.combine(when.date(), time(0), tzinfo=timezone.utc)
                slots = tuple(_token_price(model.get_prices(day + timedelta(seconds=slot * _SLOT_SECONDS)))
                              for slot in range(_SLOTS))
                if all(slots):
                    price = replace(price, by_time_of_day=slots)
                else:  # a window without token prices: no price is right all day
                    continue
            found[name] = price
    return found


def _token_price(prices) -> ModelPrice | None:
    """The token prices of a genai-prices ``ModelPrice`` (None without input and output prices)."""
    input_price = _per_million(getattr(prices, "input_mtok", None))
    output_price = _per_million(getattr(prices, "output_mtok", None))
    if input_price is None or output_price is None:
        return None
    cached = _per_million(getattr(prices, "cache_read_mtok", None))
    write = _per_million(getattr(prices, "cache_write_mtok", None))
    return ModelPrice(input=input_price, output=output_price, cached_input=input_price if cached is None else cached,
                      cache_write=input_price if write is None else write)


def _varies_by_time_of_day(model) -> bool:
    from genai_prices.types import TimeOfDateConstraint

    return isinstance(model.prices, list) and any(isinstance(conditional.constraint, TimeOfDateConstraint)
                                                  for conditional in model.prices)


__all__ = ["FIRST_PARTY_PROVIDERS", "UNPRICEABLE_CHARGES", "ModelPrice", "PriceTable", "PriceTableError",
           "genai_prices_models"]
