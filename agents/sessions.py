"""Caller sessions: find or open the one session of a caller, and end idle ones."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .callers import Caller
from .models import CallerSession, Persona, Process

log = logging.getLogger(__name__)


def idle_cutoff(now=None):
    return (now or timezone.now()) - timedelta(minutes=settings.TRON_SESSION_IDLE_MINUTES)


def end_session(session: CallerSession, *, now=None) -> bool:
    """End an open session and complete its process; False if someone else ended it first."""
    now = now or timezone.now()
    with transaction.atomic():
        ended = CallerSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(ended_at=now)
        if ended:
            Process.objects.filter(pk=session.process_id, finished_at__isnull=True).update(
                status=Process.Status.COMPLETED, finished_at=now
            )
    session.ended_at = session.ended_at or now
    return bool(ended)


def open_session(caller: Caller, persona: Persona, *, task: str = "") -> CallerSession:
    """The caller's open session, or a new one with a new running process.

    Concurrent first requests from one caller race on the database's one-open-session-per-caller
    constraint: the loser's insert fails and it picks up the winner's session. A session idle longer
    than TRON_SESSION_IDLE_MINUTES, or serving another persona, is ended and replaced.
    """
    now = timezone.now()
    for _attempt in range(5):
        session = (
            CallerSession.objects.open()
            .filter(caller_id=caller.caller_id)
            .select_related("process__persona")
            .first()
        )
        if session is not None:
            process = session.process
            live = process.finished_at is None  # an operator may have failed the process
            if live and session.last_seen_at >= idle_cutoff(now) and process.persona_id == persona.pk:
                return session
            end_session(session, now=now)
        try:
            with transaction.atomic():
                process = Process.objects.create(
                    persona=persona, status=Process.Status.RUNNING, channel=caller.channel, task=task
                )
                return CallerSession.objects.create(
                    caller_id=caller.caller_id,
                    process=process,
                    channel=caller.channel,
                    provider_call_id=caller.provider_call_id,
                    created_at=now,
                    last_seen_at=now,
                )
        except IntegrityError:
            log.debug("Lost the race to open a session for %s; using the winner's", caller.caller_id)
    raise RuntimeError(f"could not open a session for {caller.caller_id}")


def end_idle_sessions(now=None) -> int:
    """End every session idle past the cutoff and complete its process (the scheduled sweep); returns
    how many ended. Two UPDATEs whatever the count: a session touched meanwhile no longer matches the
    idle condition, and only processes of sessions ended by this very sweep (stamped `now`) complete."""
    now = now or timezone.now()
    with transaction.atomic():
        ended = CallerSession.objects.idle_since(idle_cutoff(now)).update(ended_at=now)
        if ended:
            Process.objects.filter(
                sessions__in=CallerSession.objects.filter(ended_at=now), finished_at__isnull=True
            ).update(status=Process.Status.COMPLETED, finished_at=now)
    return ended
