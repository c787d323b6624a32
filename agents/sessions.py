"""Caller sessions: the one open session of each caller, which maps them to the process of their
conversation, and its end when they are idle.

Processes are created here and nowhere else, so this is where their number is bounded: however many
have completed (they stay as history), at most TRON_MAX_RUNNING_PROCESSES run at once.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .callers import Caller
from .errors import Overloaded
from .models import CallerSession, Persona, Process
from .principals import Principal

log = logging.getLogger(__name__)

FULL_RETRY_AFTER_SECONDS = 30  # what a refused caller is told to wait: an idle session's end, or a turn's


def idle_cutoff(now=None):
    return (now or timezone.now()) - timedelta(minutes=settings.TRON_SESSION_IDLE_MINUTES)


def refuse_when_full() -> None:
    """Raise Overloaded when TRON_MAX_RUNNING_PROCESSES processes are pending or running (one COUNT
    through the status index, over at most that many rows). The limit is soft: concurrent first turns
    pass the count together."""
    limit = settings.TRON_MAX_RUNNING_PROCESSES
    if Process.objects.active()[:limit].count() >= limit:
        log.warning("Refused a new process: %d are running (TRON_MAX_RUNNING_PROCESSES)", limit)
        raise Overloaded(
            f"The server is at its limit of {limit:,} running conversations and processes "
            "(TRON_MAX_RUNNING_PROCESSES); a new one can start when some end. Try again shortly.",
            retry_after=FULL_RETRY_AFTER_SECONDS,
        )


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


def open_session(caller: Caller, persona: Persona, *, principal: Principal, task: str = "") -> CallerSession:
    """The caller's session for a conversation with `persona` (`continue_or_open`)."""
    return continue_or_open(caller, persona, principal=principal, task=task)[0]


def continue_or_open(
    caller: Caller, persona: Persona, *, principal: Principal, task: str = ""
) -> tuple[CallerSession, bool]:
    """The caller's session for a conversation with `persona`, marked seen now, and whether it is new:
    the open session it continues (the rule is CallerSessionQuerySet.with_continuation), or a new one
    with a new running process started for `principal`. Any other open session of the caller (idle, another persona's, or its process ended by an
    operator) is ended first: the database allows one open session per caller, and two openings at once
    race on that constraint, not in Python. Raises Overloaded when a new process would be one too many."""
    for _attempt in range(5):
        now = timezone.now()
        session = (
            CallerSession.objects.filter(caller_id=caller.caller_id)
            .open()
            .with_continuation(persona, idle_cutoff(now))
            .select_related("process")
            .first()
        )
        if session is not None and session.continues:
            if CallerSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(last_seen_at=now):
                session.last_seen_at = now
                return session, False
            continue  # it ended meanwhile: look again
        if session is not None:
            end_session(session, now=now)
        refuse_when_full()
        try:
            # One savepoint for both inserts: the caller's session opened meanwhile elsewhere (the
            # one-open-session constraint), or the process's public id drawn already taken (eight hex
            # digits collide by the birthday bound: about even odds near 77,000 rows): look again, with
            # a new id.
            with transaction.atomic():
                process = Process.objects.create(
                    persona=persona,
                    status=Process.Status.RUNNING,
                    channel=caller.channel,
                    task=task[:500],
                    trust=principal.trust,
                    principal_caller_id=principal.caller_id,
                    principal_name=principal.name,
                    allowance=principal.allowance,
                )
                session = CallerSession.objects.create(
                    caller_id=caller.caller_id,
                    process=process,
                    channel=caller.channel,
                    provider_call_id=caller.provider_call_id,
                    created_at=now,
                    last_seen_at=now,
                )
                return session, True
        except IntegrityError:
            log.debug("%s: a session opened concurrently, or the process id drawn is taken", caller.caller_id)
    raise RuntimeError(f"could not open a session for {caller.caller_id}")


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
