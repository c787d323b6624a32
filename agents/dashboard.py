"""The figures on the control panel's home page: what runs now, what it costs, what failed.

Each figure is one bounded query: the running processes are a page (DASHBOARD_ROWS), the spend covers
DASHBOARD_DAYS of calls through the created_at index, the errors one hour. None grows with the tables.
"""

from datetime import timedelta

from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from . import pricing, spend
from .charts import spend_chart
from .display import ellipsis, human_duration, usd
from .models import CallerSession, LLMCall, Process

DASHBOARD_ROWS = 20
DASHBOARD_DAYS = 14
CALLER_COLUMN = 32


def running_processes() -> list[dict]:
    """The newest active processes with their persona and latest caller id (one query)."""
    latest_caller = CallerSession.objects.filter(process=OuterRef("pk")).order_by("-last_seen_at", "-id")
    processes = (
        Process.objects.active()
        .select_related("persona")
        .annotate(caller_id=Subquery(latest_caller.values("caller_id")[:1]))
        .order_by("-started_at", "-id")[:DASHBOARD_ROWS]
    )
    return [
        {
            "id": p.public_id,
            "url": reverse("admin:agents_process_change", args=[p.pk]),
            "persona": p.persona.name,
            "channel": p.get_channel_display(),
            "caller": ellipsis(p.caller_id or "-", CALLER_COLUMN),
            "duration": human_duration(p.duration),
            "tokens": p.total_tokens,
            "cost": usd(p.cost_usd),
        }
        for p in processes
    ]


def recent_errors(since) -> list[dict]:
    calls = (
        LLMCall.objects.filter(created_at__gte=since)
        .exclude(error="")
        .select_related("process__persona")
        .order_by("-created_at", "-id")[:DASHBOARD_ROWS]
    )
    return [
        {
            "at": call.created_at,
            "url": reverse("admin:agents_llmcall_change", args=[call.pk]),
            "persona": call.process.persona.name,
            "model": call.model,
            "error": ellipsis(call.error, 120),
        }
        for call in calls
    ]


def figures() -> dict:
    """Everything the agents app puts on the dashboard, in six queries."""
    now = timezone.now()
    rows = spend.daily_usage(spend.recent_calls(DASHBOARD_DAYS))
    today = spend.utc_today()
    today_rows = [row for row in rows if row["day"] == today]
    per_persona: dict[str, dict] = {}
    for row in today_rows:
        entry = per_persona.setdefault(
            row["persona_name"], {"persona": row["persona_name"], "calls": 0, "tokens": 0, "cost_usd": 0}
        )
        entry["calls"] += row["calls"]
        entry["tokens"] += (row["input_tokens"] or 0) + (row["output_tokens"] or 0)
        entry["cost_usd"] += row["cost_usd"] or 0
        entry["cost"] = usd(entry["cost_usd"])
        entry["unpriced"] = entry.get("unpriced", []) + (
            [pricing.missing_price(row["model"])] if pricing.price_for(row["model"]) is None else []
        )
    hour_ago = now - timedelta(hours=1)
    errors_query = LLMCall.objects.filter(created_at__gte=hour_ago).exclude(error="")
    return {
        "generated_at": now,
        "running": running_processes(),
        "running_count": Process.objects.active().count(),
        "sessions_open": CallerSession.objects.open().count(),
        "spend_today": usd(sum((row["cost_usd"] or 0) for row in today_rows)),
        "spend_today_per_persona": sorted(per_persona.values(), key=lambda e: (-e["cost_usd"], e["persona"])),
        "unpriced_today": spend.unpriced_models(today_rows),
        "unpriced_period": spend.unpriced_models(rows),
        "chart": spend_chart(rows, days=DASHBOARD_DAYS, today=today),
        "chart_days": DASHBOARD_DAYS,
        "errors_last_hour": errors_query.count(),
        "errors": recent_errors(hour_ago),
        "process_changelist": reverse("admin:agents_process_changelist"),
        "cost_summary": reverse("admin:agents_llmcall_cost_summary"),
    }
