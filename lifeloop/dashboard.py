"""The life loop's part of the control panel's home: its latest runs, and the posts waiting for an
operator (two queries)."""

from django.urls import reverse

from agents.display import ellipsis

from .models import ActivityRun, Post

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


def posts_awaiting_approval() -> dict:
    """How many posts wait for an operator's approval, and where to review them."""
    url = reverse("admin:lifeloop_post_changelist") + f"?status__exact={Post.Status.AWAITING_APPROVAL}"
    return {"count": Post.objects.filter(status=Post.Status.AWAITING_APPROVAL).count(), "url": url}
