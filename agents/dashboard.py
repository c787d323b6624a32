"""The figures on the control panel's home page: who is talking now, what it costs, what goes wrong.

Each figure is one bounded query: the conversations are a page (DASHBOARD_ROWS), the spend covers
DASHBOARD_DAYS of calls through the created_at index, latency and errors one day, the error list one
hour. None grows with the tables.
"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from . import latency, spend
from .charts import spend_chart
from .display import compact, ellipsis
from .live import live_state, since_text
from .models import CallerSession, LLMCall, Process

DASHBOARD_ROWS = 20
DASHBOARD_DAYS = 14
CALLER_COLUMN = 32


def conversations(now) -> list[dict]:
    """The active processes, those in a turn now first, then the newest, with their persona, latest
    caller and state (one query)."""
    processes = (
        Process.objects.active()
        .with_live_state(now)
        .with_last_model()
        .with_latest_caller()
        .select_related("persona")
        .order_by("-in_turn", "-started_at", "-id")[:DASHBOARD_ROWS]
    )
    rows = []
    for p in processes:
        state = live_state(p, now)
        rows.append(
            {
                "id": p.public_id,
                "url": reverse("admin:agents_process_change", args=[p.pk]),
                "persona": p.persona.name,
                "channel": p.get_channel_display(),
                "caller": ellipsis(p.caller_id or "-", CALLER_COLUMN),
                "state": state,
                "since": since_text(state),
                "started_at": p.started_at,
                "tokens": compact(p.total_tokens),
                "cost": spend.cost_text(p.cost_usd, [p.last_model]),
            }
        )
    return rows


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


def by_cost(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda entry: (-entry["cost_usd"], -entry["tokens"], entry["key"]))


def figures() -> dict:
    """Everything the agents app puts on the dashboard, in nine queries."""
    now = timezone.now()
    rows = spend.daily_usage(spend.recent_calls(DASHBOARD_DAYS))
    today = spend.utc_today()
    today_rows = [row for row in rows if row["day"] == today]
    hour_ago = now - timedelta(hours=1)
    errors_query = LLMCall.objects.filter(created_at__gte=hour_ago).exclude(error="")
    # A chart of $0 says nothing: when no call of the period cost money, it shows their tokens.
    in_tokens = bool(rows) and not any(row["cost_usd"] for row in rows)
    return {
        "generated_at": now,
        "conversations": conversations(now),
        # The counts, in /api/status's words (docs/api.md says what each counts).
        "in_turn_count": CallerSession.objects.in_turn(now).count(),
        "process_count": Process.objects.active().count(),
        "session_count": CallerSession.objects.open().count(),
        "spend_today": spend.grand_total(today_rows),
        "spend_today_per_persona": by_cost(spend.totals(today_rows, lambda row: row["persona_name"])),
        "spend_today_per_model": by_cost(spend.totals(today_rows, lambda row: row["model"])),
        "unpriced_period": spend.unpriced_models(rows),
        "chart": spend_chart(rows, days=DASHBOARD_DAYS, today=today, tokens=in_tokens),
        "chart_in_tokens": in_tokens,
        "chart_days": DASHBOARD_DAYS,
        "latency": latency.over_time(now),
        "errors_last_hour": errors_query.count(),
        "errors": recent_errors(hour_ago),
        "process_changelist": reverse("admin:agents_process_changelist"),
        "llmcall_changelist": reverse("admin:agents_llmcall_changelist"),
        "cost_summary": reverse("admin:agents_llmcall_cost_summary"),
    }
