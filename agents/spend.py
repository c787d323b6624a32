"""What the team spent: LLM calls totalled per UTC day, persona and model, and how to say a cost.

The cost summary and the dashboard read spend through here, so both say the same: one money format, and
a zero that is explained ("free" for models priced at $0, "no price set" for models with no price).
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import pricing
from .display import usd
from .models import LLMCall

FREE = "free"
NO_PRICE = "no price set"


def utc_today():
    return timezone.now().astimezone(UTC).date()


def since_days(days: int) -> datetime:
    """The start (UTC midnight) of a period of `days` days that ends today."""
    return datetime.combine(utc_today() - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)


def daily_usage(calls) -> list[dict]:
    """`calls` (an LLMCall queryset) totalled per UTC day, persona and model: one GROUP BY query, whose
    rows grow with days × personas × models, not with the calls.

    Each row: day, persona_id, persona_name, model, calls, input_tokens, output_tokens, cost_usd."""
    return list(
        calls.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "model", persona_id=F("process__persona_id"), persona_name=F("process__persona__name"))
        .annotate(
            calls=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by("day", "persona_name", "model")
    )


def cost_text(cost, models: Iterable[str]) -> str:
    """A cost as the control panel writes it: the amount, or, when it is zero and calls of `models` made
    it, why: "no price set" when one of them has no price, else "free" (all priced at $0)."""
    models = {model for model in models if model}
    if cost or not models:
        return usd(cost)
    return NO_PRICE if any(pricing.price_for(model) is None for model in models) else FREE


def totals(rows: list[dict], key: Callable[[dict], object]) -> list[dict]:
    """The rows of `daily_usage` added up per `key(row)` (a persona, a model, a day), in first-seen order.

    Each total: key, calls, input_tokens, output_tokens, tokens, cost_usd, cost (as `cost_text` writes
    it) and unpriced (the notes of its models that have no price)."""
    found: dict = {}
    for row in rows:
        entry = found.setdefault(
            key(row),
            {
                "key": key(row),
                "calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": Decimal(0),
                "models": set(),
            },
        )
        entry["calls"] += row["calls"]
        entry["input_tokens"] += row["input_tokens"] or 0
        entry["output_tokens"] += row["output_tokens"] or 0
        entry["cost_usd"] += row["cost_usd"] or 0
        entry["models"].add(row["model"])
    for entry in found.values():
        entry["tokens"] = entry["input_tokens"] + entry["output_tokens"]
        entry["cost"] = cost_text(entry["cost_usd"], entry["models"])
        entry["unpriced"] = [pricing.missing_price(m) for m in sorted(entry["models"]) if is_unpriced(m)]
    return list(found.values())


def grand_total(rows: list[dict]) -> dict:
    """All the rows in one total (as `totals` makes them), zeros when there are none."""
    if rows:
        return totals(rows, lambda row: "all")[0]
    zero = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "tokens": 0, "cost_usd": Decimal(0)}
    return {"key": "all", **zero, "models": set(), "cost": usd(0), "unpriced": []}


def is_unpriced(model: str) -> bool:
    return pricing.price_for(model) is None


def unpriced_models(rows: list[dict]) -> list[dict]:
    """Per model with no price: its calls and tokens, and the note to show beside the money."""
    found = [entry for entry in totals(rows, lambda row: row["model"]) if is_unpriced(entry["key"])]
    for entry in found:
        entry["model"], entry["note"] = entry["key"], pricing.missing_price(entry["key"])
    return sorted(found, key=lambda entry: entry["key"])


def recent_calls(days: int):
    return LLMCall.objects.filter(created_at__gte=since_days(days))
