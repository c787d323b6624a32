"""What a model call costs: USD per million input and output tokens, by model name.

The built-in table is a dated snapshot; TRON_PRICES_FILE and TRON_PRICES (JSON) override or add models.
A model the table does not know costs 0 and is logged once, so a missing price is visible, not guessed.
"""

import logging
from decimal import Decimal
from functools import cache

from django.conf import settings

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


@cache
def price_table() -> dict[str, tuple[Decimal, Decimal]]:
    table = {name: (Decimal(i), Decimal(o)) for name, (i, o) in BUILT_IN_PRICES.items()}
    for name, price in settings.TRON_PRICES.items():
        table[name] = (Decimal(str(price["input"])), Decimal(str(price["output"])))
    return table


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


def missing_price(model: str) -> str:
    """What the control panel shows beside spend recorded at $0 because `model` has no price."""
    return f"no price for {model}: set TRON_PRICES"


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price = price_for(model)
    if price is None:
        _warn_unpriced(model)
        return Decimal(0)
    cost = (Decimal(input_tokens) * price[0] + Decimal(output_tokens) * price[1]) / MILLION
    return cost.quantize(QUANTUM)


@cache
def _warn_unpriced(model: str) -> None:
    log.warning("No price for model %r: its calls are recorded at $0. Add it with TRON_PRICES_FILE.", model)
