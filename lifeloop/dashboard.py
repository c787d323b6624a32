"""The life loop's part of the control panel's home: its latest runs (one query)."""

from agents.display import ellipsis

from .models import ActivityRun

DASHBOARD_ROWS = 10


def latest_activities() -> list[dict]:
    runs = ActivityRun.objects.select_related("persona").order_by("-started_at", "-id")[:DASHBOARD_ROWS]
    return [
        {
            "at": run.started_at,
            "persona": run.persona.name,
            "activity": run.get_activity_display(),
            "status": run.status,
            "summary": ellipsis(run.error or run.result, 100),
        }
        for run in runs
    ]
