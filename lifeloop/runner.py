"""Running one activity for one persona, and recording it: the ActivityRun, the process the engine
kept for it, the journal entry, what is shared on Slack, and a reflection when enough has happened.

A scheduled run is inserted with its slot first: the database allows one run per persona, activity and
slot, so a second worker (or a redelivered task) gets an IntegrityError and does nothing. Whatever the
activity does wrong (a feed down, a model error or timeout, a bug of ours) ends that run as failed with
the reason; it never reaches the caller, so other activities and personas go on.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from agents import errors
from agents.models import CallerSession
from agents.sessions import end_session

from . import slack
from .activities import ACTIVITIES
from .activities.reflection import importance_since_last_reflection
from .models import Activity, ActivityRun, JournalEntry
from .thinking import ActivityFailed, Outcome

log = logging.getLogger(__name__)

# A run still `running` after this long was stopped (a worker killed at the task timeout, a restart).
STALLED_AFTER = timedelta(minutes=30)


def run_activity(
    persona, activity: str, *, trigger=ActivityRun.Trigger.MANUAL, slot=None
) -> ActivityRun | None:
    """Run `activity` for `persona` now and return its finished ActivityRun; None when a run of the same
    slot exists already (it ran, or runs, elsewhere)."""
    run = start(persona, activity, trigger, slot)
    if run is None:
        return None
    try:
        outcome = ACTIVITIES[activity](run)
    except ActivityFailed as exc:
        outcome = Outcome(result="", error=str(exc))
    except errors.REFUSED as exc:  # refused: the reason as the persona's owner reads it
        outcome = Outcome(result="", error=exc.message)
    except errors.TurnError as exc:
        outcome = Outcome(result="", error=f"The model failed: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - one failing activity must not stop the others
        log.exception("The %s activity of %s failed", activity, persona.name)
        outcome = Outcome(result="", error=f"Internal error ({type(exc).__name__}): {exc}")
    finish(run, outcome)
    return run


def start(persona, activity, trigger, slot) -> ActivityRun | None:
    now = timezone.now()
    ActivityRun.objects.filter(
        persona=persona,
        activity=activity,
        status=ActivityRun.Status.RUNNING,
        started_at__lt=now - STALLED_AFTER,
    ).update(
        status=ActivityRun.Status.FAILED,
        finished_at=now,
        error="Stopped before it finished (the worker timed out or restarted).",
    )
    try:
        with transaction.atomic():
            return ActivityRun.objects.create(
                persona=persona,
                activity=activity,
                trigger=trigger,
                slot=slot,
                status=ActivityRun.Status.RUNNING,
                started_at=now,
            )
    except IntegrityError:
        log.info("%s %s for %s ran already; skipped", persona.name, activity, slot)
        return None


def finish(run: ActivityRun, outcome: Outcome) -> None:
    """Record the outcome; each step on its own, so a failure in one loses none of the others."""
    run.process_id = end_sessions(run) or run.process_id
    run.result = outcome.result
    run.error = outcome.error
    if outcome.skipped:
        run.status = ActivityRun.Status.SKIPPED
    else:
        run.status = ActivityRun.Status.FAILED if outcome.error else ActivityRun.Status.COMPLETED
    if outcome.journal and run.status != ActivityRun.Status.SKIPPED:
        try:
            JournalEntry.objects.create(
                persona=run.persona,
                run=run,
                kind=run.activity,
                text=outcome.journal,
                importance=outcome.importance,
            )
        except Exception:  # noqa: BLE001
            log.exception("Could not write the journal entry of %s", run)
    shared = outcome.share and run.status == ActivityRun.Status.COMPLETED
    if shared and (reason := slack.share(run.persona, run.activity, outcome.share)):
        run.error = f"Slack: {reason}"
    run.finished_at = timezone.now()
    run.save(update_fields=["process", "result", "error", "status", "finished_at"])
    if outcome.journal and run.activity != Activity.REFLECTION:
        queue_reflection_if_due(run.persona)


def end_sessions(run: ActivityRun) -> int | None:
    """End the run's session (its process completes, or fails after a failed turn); the process's id."""
    process_id = None
    try:
        for session in CallerSession.objects.filter(caller_id=run.caller_id).order_by("created_at"):
            process_id = session.process_id
            if session.ended_at is None:
                end_session(session)
    except Exception:  # noqa: BLE001 - the idle sweep ends it later
        log.exception("Could not end the session of %s", run)
    return process_id


def queue_reflection_if_due(persona) -> None:
    """Reflect when the importance of the journal since the last reflection reaches the threshold."""
    try:
        if importance_since_last_reflection(persona) >= settings.TRON_REFLECTION_THRESHOLD:
            async_task("lifeloop.tasks.reflect_if_due", persona.pk, group="lifeloop: reflections")
    except Exception:  # noqa: BLE001 - the scheduled reflection still comes
        log.exception("Could not queue a reflection for %s", persona.name)


def result_text(run: ActivityRun | None) -> str:
    """The outcome in one string, as the trigger reports it."""
    if run is None:
        return "Skipped: this slot ran already."
    if run.status == ActivityRun.Status.FAILED:
        return f"Failed: {run.error}" + (f" ({run.result})" if run.result else "")
    return run.result
