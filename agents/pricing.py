"""What a model call costs: USD per million input and output tokens, by model name.

Three layers, each over the one before: the built-in table (a dated snapshot), TRON_PRICES_FILE and
TRON_PRICES (JSON, the deployment's defaults), and the prices operators set in the admin (ModelPrice).
A model none of them knows costs 0 and is logged once, and the control panel says "no price set" beside
its spend, so a missing price is visible, not guessed; a model priced at 0 is "free".

The engine prices every call on the event loop, so the table is read from memory, never from the
database per call. Each process keeps a copy: a ModelPrice saved or deleted in this process drops it at
once (signals connected in AgentsConfig.ready()), other processes read it again within
TRON_PERSONA_CACHE_SECONDS. Sync code (the admin, the worker's tasks) reads it again in place when it is
due; on an event loop the copy in hand is used and a thread reads the new one, except the very first
time (no copy yet), when the loop waits for that one read.
"""

import asyncio
import logging
import threading
import time
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.db import DatabaseError, connections

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

_lock = threading.Lock()
_table: Prices | None = None  # the defaults with the admin's prices over them
_loaded_at = 0.0
_generation = 0  # bumped by every clear, so a read that raced an edit is not kept
_reading: threading.Thread | None = None


@cache
def default_table() -> Prices:
    """The built-in table with TRON_PRICES_FILE / TRON_PRICES over it: what applies without the admin."""
    table = {name: (Decimal(i), Decimal(o)) for name, (i, o) in BUILT_IN_PRICES.items()}
    for name, price in settings.TRON_PRICES.items():
        table[name.strip().lower()] = (Decimal(str(price["input"])), Decimal(str(price["output"])))
    return table


def clear_cache(**_signal_kwargs) -> None:
    """Forget the copy (a ModelPrice was saved or deleted here, or the settings changed in a test)."""
    global _table, _generation
    default_table.cache_clear()
    with _lock:
        _table = None
        _generation += 1


def price_table() -> Prices:
    """Every price in effect, by lower-case model name (see the module's docstring for when it is read)."""
    with _lock:
        table, due = _table, time.monotonic() - _loaded_at >= settings.TRON_PERSONA_CACHE_SECONDS
    if table is not None and not due:
        return table
    if not _on_event_loop():
        return _read()
    reading = _read_in_background()
    if table is None:
        reading.join()  # once per process (and after an edit in it): a copy is needed to price this call
        with _lock:
            table = _table
    return table if table is not None else default_table()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _read() -> Prices:
    """Read the admin's prices over the defaults, and keep the result (one query)."""
    global _table, _loaded_at
    from .models import ModelPrice  # the models import nothing from here; this keeps it that way

    with _lock:
        generation = _generation
    table = dict(default_table())
    try:
        for name, input_price, output_price in ModelPrice.objects.values_list(
            "model", "input_usd_per_million", "output_usd_per_million"
        ):
            table[name.strip().lower()] = (input_price, output_price)
    except DatabaseError:  # not migrated yet, or the database is away: the defaults still price calls
        log.exception("Could not read the model prices; using the built-in table and TRON_PRICES")
    with _lock:
        if generation == _generation:
            _table, _loaded_at = table, time.monotonic()
    return table


def _read_in_background() -> threading.Thread:
    """A thread reading the prices (one at a time per process); the loop goes on meanwhile."""
    global _reading
    with _lock:
        if _reading is not None and _reading.is_alive():
            return _reading
        _reading = threading.Thread(target=_read_and_close, name="tron-prices", daemon=True)
        _reading.start()
        return _reading


def _read_and_close() -> None:
    try:
        _read()
    finally:
        connections.close_all()  # this thread's connection (handed back to the pool on PostgreSQL)


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
