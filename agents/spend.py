"""What the team spent: LLM calls totalled per UTC day, persona and model, and the spend no price covers.

The cost summary and the dashboard read spend through here, so both say the same about unknown prices.
"""

from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import pricing
from .models import LLMCall


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


def unpriced(rows: list[dict]) -> list[dict]:
    """The rows of `daily_usage` whose model the price table does not know: recorded at $0."""
    return [row for row in rows if pricing.price_for(row["model"]) is None]


def unpriced_models(rows: list[dict]) -> list[dict]:
    """Per model with no price: its calls and tokens, and the note to show beside the money."""
    models: dict[str, dict] = {}
    for row in unpriced(rows):
        entry = models.setdefault(
            row["model"],
            {"model": row["model"], "calls": 0, "tokens": 0, "note": pricing.missing_price(row["model"])},
        )
        entry["calls"] += row["calls"]
        entry["tokens"] += (row["input_tokens"] or 0) + (row["output_tokens"] or 0)
    return sorted(models.values(), key=lambda entry: entry["model"])


def recent_calls(days: int):
    return LLMCall.objects.filter(created_at__gte=since_days(days))
