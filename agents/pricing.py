"""What a model call costs: USD per million input and output tokens, by model name.

Three layers, each over the one before: the built-in table (a dated snapshot), TRON_PRICES_FILE and
TRON_PRICES (JSON, the deployment's defaults), and the prices operators set in the admin (ModelPrice).
A model none of them knows costs 0 and is logged once, and the control panel says "no price set" beside
its spend, so a missing price is visible, not guessed; a model priced at 0 is "free".

Every call is priced from memory: each process keeps the table (agents.cache), dropped when a ModelPrice
is saved or deleted in this process, and read again by other processes within TRON_CACHE_SECONDS.
Prices are read in sync code only (the engine's database threads, the admin, tasks).
"""

import logging
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.db import DatabaseError

from .cache import ProcessCache
from .models import ModelPrice

log = logging.getLogger(__name__)

PRICE_TABLE_VERSION = "2026-11-25"

# model name (or prefix of a dated variant): (input USD / 1M tokens, output USD / 1M tokens)
BUILT_IN_PRICES: dict[str, tuple[str, str]] = {
    "gpt-5": ("1.25", "10.00"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "o3": ("2.00", "8.00"),
    "o3-mini": ("1.10", "4.40"),
    "o4-mini": ("1.10", "4.40"),
    "claude-opus-4": ("15.00", "75.00"),
    "claude-sonnet-4": ("3.00", "15.00"),
    "claude-3-7-sonnet": ("3.00", "15.00"),
    "claude-3-5-sonnet": ("3.00", "15.00"),
    "claude-3-5-haiku": ("0.80", "4.00"),
    "claude-3-haiku": ("0.25", "1.25"),
    "smollm2-135m-instruct": ("0", "0"),  # the embedded local model runs on this machine
}

MILLION = Decimal(1_000_000)
QUANTUM = Decimal("0.000000001")

Prices = dict[str, tuple[Decimal, Decimal]]

prices = ProcessCache("model prices")


@cache
def default_table() -> Prices:
    """The built-in table with TRON_PRICES_FILE / TRON_PRICES over it: what applies without the admin."""
    table = {name: (Decimal(i), Decimal(o)) for name, (i, o) in BUILT_IN_PRICES.items()}
    for name, price in settings.TRON_PRICES.items():
        table[name.strip().lower()] = (Decimal(str(price["input"])), Decimal(str(price["output"])))
    return table


def price_table() -> Prices:
    """Every price in effect, by lower-case model name: the admin's over the defaults (one query when
    the process's copy is due)."""
    return prices.get_or_load("table", _read)


def _read() -> Prices:
    table = dict(default_table())
    rows = ModelPrice.objects.values_list("model", "input_usd_per_million", "output_usd_per_million")
    try:
        for name, input_price, output_price in rows:
            table[name.strip().lower()] = (input_price, output_price)
    except DatabaseError:  # not migrated yet (a command before `migrate`): the defaults still price calls
        log.exception("Could not read the model prices; using the built-in table and TRON_PRICES")
    return table


def clear_cache() -> None:
    """Forget the copy and the defaults (a test changed TRON_PRICES)."""
    default_table.cache_clear()
    prices.clear()


def price_for(model: str) -> tuple[Decimal, Decimal] | None:
    """Exact name first, then without a provider prefix (openai/gpt-4o), then the longest known prefix
    (gpt-4o-mini-2024-07-18 → gpt-4o-mini)."""
    table = price_table()
    name = (model or "").strip().lower()
    for candidate in (name, name.rsplit("/", 1)[-1]):
        if candidate in table:
            return table[candidate]
    bare = name.rsplit("/", 1)[-1]
    matches = [key for key in table if bare.startswith(key + "-") or bare.startswith(key + ":")]
    return table[max(matches, key=len)] if matches else None


def is_free(model: str) -> bool:
    """The model is priced at $0 in and out (the embedded model, or one an operator set to 0)."""
    return price_for(model) == (0, 0)


def missing_price(model: str) -> str:
    """What the control panel shows beside spend recorded at $0 because `model` has no price."""
    return f"no price set for {model}: add it under Model prices"


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price = price_for(model)
    if price is None:
        _warn_unpriced(model)
        return Decimal(0)
    cost = (Decimal(input_tokens) * price[0] + Decimal(output_tokens) * price[1]) / MILLION
    return cost.quantize(QUANTUM)


@cache
def _warn_unpriced(model: str) -> None:
    log.warning(
        "No price for model %r: its calls are recorded at $0. Set one in the admin (Model prices).", model
    )
