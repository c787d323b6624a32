"""django-q2 entry points of the life loop (referenced by dotted path in schedules and async_task)."""

import logging

from django.conf import settings
from django.utils import timezone

from agents.models import Persona

from . import schedules
from .activities.reflection import importance_since_last_reflection
from .models import Activity, ActivityRun, Post
from .runner import result_text, run_activity
from .social import publish

log = logging.getLogger(__name__)


def run_scheduled(persona_id: int, activity: str) -> str:
    """A schedule's run: the persona's latest slot of `activity` at or before now, once."""
    persona = Persona.objects.filter(pk=persona_id).first()
    if persona is None:
        return "No such persona."
    now = timezone.now()
    try:
        schedules.sync([persona], now=now)  # the next fire at the exact hour of the persona's zone
    except Exception:  # noqa: BLE001 - the run does not depend on it
        log.exception("Could not update the life-loop schedules of %s", persona.name)
    slot = schedules.latest_slot(persona, activity, now)
    if slot is None:
        return f"{persona.name} has no {activity} schedule now."
    run = run_activity(persona, activity, trigger=ActivityRun.Trigger.SCHEDULE, slot=slot)
    return f"{persona.name} {activity} {slot:%Y-%m-%d %H:%M} UTC: {result_text(run)}"


def reflect_if_due(persona_id: int) -> str:
    """A reflection earned by importance; at most one per hour of the persona's time (its slot is the
    hour, shared with a scheduled reflection of that hour)."""
    persona = Persona.objects.filter(pk=persona_id, enabled=True).first()
    if persona is None:
        return "No such persona."
    total = importance_since_last_reflection(persona)
    if total < settings.TRON_REFLECTION_THRESHOLD:
        return f"Importance {total} is below the threshold."
    slot = schedules.hour_start(persona, timezone.now())
    run = run_activity(persona, Activity.REFLECTION, trigger=ActivityRun.Trigger.IMPORTANCE, slot=slot)
    return f"{persona.name} reflection (importance {total}): {result_text(run)}"


def publish_approved(post_id: int) -> str:
    """Publish a post an operator approved (lifeloop.admin); a post in any other state is left alone."""
    post = Post.objects.select_related("persona").filter(pk=post_id, status=Post.Status.APPROVED).first()
    if post is None:
        return "No approved post to publish."
    publish(post)
    return f"Post {post.pk} of {post.persona.name}: {post.get_status_display()}"
