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
    """End an open session and finish its process (completed, or failed after a failed last turn); False
    if someone else ended it first."""
    now = now or timezone.now()
    with transaction.atomic():
        ended = CallerSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(ended_at=now)
        if ended:
            Process.objects.filter(pk=session.process_id).finish_by_outcome(now)
    session.ended_at = session.ended_at or now
    return bool(ended)


def continuing_session(caller: Caller, persona: Persona) -> CallerSession | None:
    """The caller's open session if this turn continues it (read only, one query): live process, not
    idle past TRON_SESSION_IDLE_MINUTES, same persona. None when a new session is due."""
    session = _open_session_of(caller.caller_id)
    if session is None or not _continues(session, persona, timezone.now()):
        return None
    return session


def _open_session_of(caller_id: str) -> CallerSession | None:
    """The caller's open session and its process; the database allows at most one. (No ORDER BY and
    no persona join: compiling those cost more than running the query.)"""
    sessions = CallerSession.objects.open().filter(caller_id=caller_id).select_related("process")
    found = list(sessions.order_by()[:1])
    return found[0] if found else None


def _continues(session: CallerSession, persona: Persona, now) -> bool:
    process = session.process
    live = process.finished_at is None  # an operator may have failed the process
    return live and session.last_seen_at >= idle_cutoff(now) and process.persona_id == persona.pk


def open_session(
    caller: Caller, persona: Persona, *, task: str = "", known: CallerSession | None = None
) -> CallerSession:
    """The caller's open session, marked seen now, or a new one with a new running process.

    `known` is the session `continuing_session` found a moment ago: when it is still open, touching
    it is the whole job (one UPDATE). Otherwise a new session is inserted straight away, and the
    database's one-open-session-per-caller constraint settles the rest: when the insert fails, the
    caller has an open session (a concurrent first request's, which this turn then shares, or one
    idle past TRON_SESSION_IDLE_MINUTES or serving another persona, which is ended and replaced).
    """
    now = timezone.now()
    if known is not None and _touch(known, now):
        return known
    for _attempt in range(5):
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
            log.debug("%s already has an open session", caller.caller_id)
        session = _open_session_of(caller.caller_id)
        if session is not None:
            if _continues(session, persona, now) and _touch(session, now):
                return session
            end_session(session, now=now)
    raise RuntimeError(f"could not open a session for {caller.caller_id}")


def _touch(session: CallerSession, now) -> bool:
    """Mark an open session seen; False if it ended, or an operator failed its process, meanwhile."""
    touched = CallerSession.objects.filter(
        pk=session.pk, ended_at__isnull=True, process__finished_at__isnull=True
    ).update(last_seen_at=now)
    if touched:
        session.last_seen_at = now
    return bool(touched)


def end_idle_sessions(now=None) -> int:
    """End every session idle past the cutoff and complete its process (the scheduled sweep); returns
    how many ended. Two UPDATEs whatever the count: a session touched meanwhile no longer matches the
    idle condition, and only processes of sessions ended by this very sweep (stamped `now`) complete."""
    now = now or timezone.now()
    with transaction.atomic():
        ended = CallerSession.objects.idle_since(idle_cutoff(now)).update(ended_at=now)
        if ended:
            Process.objects.filter(sessions__in=CallerSession.objects.filter(ended_at=now)).finish_by_outcome(
                now
            )
    return ended
