"""Caller sessions: the one open session of each caller, claimed by one turn at a time, and ended when idle.

A caller's turns run one at a time: a turn claims the caller's session (`claim_session`) before it reads
the transcript and calls the model, and releases it when it is recorded. A second turn of the same caller
finds the session claimed and waits (agents.runtime). The claim is a time on the session row, so it holds
across web processes and machines; one left by a server that died mid-turn lapses after CLAIM_SECONDS.

Processes are created here and nowhere else, so this is where their number is bounded: however many
have completed (they stay as history), at most TRON_MAX_RUNNING_PROCESSES run at once; a conversation
that would start one more is refused (`TooManyProcesses`, a 503) until some end.
"""

import functools
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import prepared
from .callers import Caller
from .llm.base import LLMError
from .models import CallerSession, Persona, Process

log = logging.getLogger(__name__)

# How long a turn's claim on its session outlives a server that died during the turn. Longer than any
# turn runs; a live turn releases its claim when it is recorded.
CLAIM_SECONDS = 600
FULL_RETRY_AFTER_SECONDS = 30  # what a refused caller is told to wait: an idle session's end, or a turn's


class TooManyProcesses(LLMError):
    """TRON_MAX_RUNNING_PROCESSES processes run already: no new one starts until some end (HTTP 503)."""

    def __init__(self, limit: int):
        super().__init__(
            f"The server is at its limit of {limit:,} running conversations and processes "
            "(TRON_MAX_RUNNING_PROCESSES); a new one can start when some end. Try again shortly.",
            status=503,
            code="server_overloaded",
            retry_after=FULL_RETRY_AFTER_SECONDS,
        )


def refuse_when_full() -> None:
    """Raise TooManyProcesses when TRON_MAX_RUNNING_PROCESSES processes are pending or running (one
    COUNT through the status index, over at most that many rows). Where processes are created, in the
    transaction that begins a turn while the model works on its first token: that call is then dropped
    before any of it reaches the caller, and for FULL_MEMORY_SECONDS this process refuses new
    conversations before calling the model (`refuse_if_recently_full`), without a query.

    The limit is soft (concurrent first turns pass the count together). The count was 0.8 ms of ORM CPU
    in every new conversation's begin, growing with the processes running, so when fewer than half the
    limit run, this process starts the difference up to half without counting again, for at most
    ROOM_MEMORY_SECONDS."""
    global _full_at, _room
    now = time.monotonic()
    if _room[1] > 0 and now < _room[0]:
        _room = (_room[0], _room[1] - 1)
        return
    limit = settings.TRON_MAX_RUNNING_PROCESSES
    running = Process.objects.active()[:limit].count()
    if running >= limit:
        _full_at = now
        log.warning("Refused a new process: %d are running (TRON_MAX_RUNNING_PROCESSES)", limit)
        raise TooManyProcesses(limit)
    _room = (now + ROOM_MEMORY_SECONDS, limit // 2 - running - 1)


ROOM_MEMORY_SECONDS = 1.0
_room = (0.0, 0)  # (until when, how many more processes) this process may start without counting
FULL_MEMORY_SECONDS = 1.0
_full_at: float | None = None  # when this process last found the limit reached (time.monotonic)


def refuse_if_recently_full() -> None:
    if _full_at is not None and time.monotonic() - _full_at < FULL_MEMORY_SECONDS:
        raise TooManyProcesses(settings.TRON_MAX_RUNNING_PROCESSES)


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


@dataclass(frozen=True)
class Seen:
    """The caller's open session as a turn read it before calling the model (`read_open_session`)."""

    session: CallerSession | None  # the caller's open session (the database allows one)
    continues: bool  # the turn continues it (CallerSessionQuerySet.with_continuation)


# On the way to every first token (agents.prepared: 575 µs of CPU through the ORM, 88 µs so).
_open_session = prepared.read(
    lambda caller_id, persona, cutoff: (
        CallerSession.objects.filter(caller_id=caller_id)
        .open()
        .with_continuation(persona, cutoff)
        .order_by()[:1]
    ),
    CallerSession,
    caller_id="caller_id",
    persona=Process._meta.get_field("persona"),
    cutoff="last_seen_at",
)


def read_open_session(caller: Caller, persona: Persona, now=None) -> Seen:
    found = _open_session(caller_id=caller.caller_id, persona=persona.pk, cutoff=idle_cutoff(now))
    session = found[0] if found else None
    return Seen(session, session is not None and session.continues)


def claim_session(
    caller: Caller, persona: Persona, *, task: str = "", seen: Seen | None = None
) -> tuple[CallerSession | None, bool]:
    """Claim the caller's session for one turn: the open session this turn continues (the rule is
    CallerSessionQuerySet.with_continuation), marked seen now, or a new one with a new running process.

    Returns (session, created); (None, False) while another turn of this caller holds the session (try
    again shortly). With `seen` (what the turn read before the model was called), the claim is of
    exactly that, without reading again: (None, False) when the conversation is not the one that was
    read (another turn came between); a claim refused because its INSERT failed (the caller's session
    was opened meanwhile, or the process id drawn is taken) leaves the enclosing atomic block to roll back, so make it the block's first
    work, as begin_turn does. Any other open session of the caller (idle, another persona's,
    or its process ended by an operator) is ended first: the database allows one open session per
    caller, and concurrent first turns race on that constraint, not in Python. Raises TooManyProcesses
    when a new process would be one too many (`refuse_when_full`).
    """
    return _find_or_open(caller, persona, task=task, claim=True, seen=seen)


def open_session(caller: Caller, persona: Persona, *, task: str = "") -> CallerSession:
    """The caller's session for this persona, marked seen now, or a new one, without claiming it for a
    turn (a call that starts before anyone speaks). Raises TooManyProcesses as `claim_session` does."""
    session, _created = _find_or_open(caller, persona, task=task, claim=False)
    return session


# In every turn's record (agents.prepared: 0.10 ms of CPU through the ORM, 0.02 ms so).
_release = prepared.update(
    lambda pk: (CallerSession.objects.filter(pk=pk), {"turn_claimed_until": None}),
    CallerSession,
    pk="id",
)


def release_session(session: CallerSession) -> None:
    """End a turn's claim on its session (part of the transaction that records the turn)."""
    _release(pk=session.pk)
    session.turn_claimed_until = None


def _touch(claim: bool, as_seen: bool):
    """The UPDATE that marks a continuing session seen `now`: only while it is open and, `as_seen`, as
    last seen when the turn read it (no turn came between); with `claim`, only while no turn holds it,
    and then held `until`."""

    def build(caller_id, pk, seen_at, now, until):
        claimable = CallerSession.objects.filter(caller_id=caller_id, pk=pk, ended_at__isnull=True)
        if as_seen:
            claimable = claimable.filter(last_seen_at=seen_at)
        changes = {"last_seen_at": now}
        if claim:
            claimable, changes["turn_claimed_until"] = claimable.unclaimed(now), until
        return claimable, changes

    return prepared.update(
        build,
        CallerSession,
        caller_id="caller_id",
        pk="id",
        seen_at="last_seen_at",
        now="last_seen_at",
        until="turn_claimed_until",
    )


# Each continuing turn's claim, and its process (agents.prepared: 0.81 ms of CPU through the ORM, 0.25
# ms so).
_TOUCH = {(claim, as_seen): _touch(claim, as_seen) for claim in (True, False) for as_seen in (True, False)}
_process = prepared.read(lambda pk: Process.objects.filter(pk=pk), Process, pk="id")
# Each new conversation's process and session (agents.prepared: 0.39 ms of CPU through the ORM, 0.25 ms
# so, most of that the two savepoints, which begin_turn's claim no longer takes: see _find_or_open).
_insert_process = prepared.insert(Process)
_insert_session = prepared.insert(CallerSession)


def _find_or_open(caller: Caller, persona: Persona, *, task: str, claim: bool, seen: Seen | None = None):
    now = timezone.now()
    until = now + timedelta(seconds=CLAIM_SECONDS) if claim else None
    for _attempt in range(5):
        current = seen or read_open_session(caller, persona, now)
        session = current.session
        if current.continues:
            # Claimed in the UPDATE itself, so two turns cannot both claim it.
            touch = _TOUCH[claim, seen is not None]
            if touch(
                caller_id=caller.caller_id, pk=session.pk, seen_at=session.last_seen_at, now=now, until=until
            ):
                session.last_seen_at, session.turn_claimed_until = now, until
                session.process = _process(pk=session.process_id)[0]  # for the caller's async code
                return session, False
            if claim or seen is not None:
                return None, False  # another turn holds it or came between (or it just ended: look again)
            continue
        if session is not None:
            end_session(session, now=now)  # idle, another persona's, or its process ended
        refuse_when_full()
        try:
            # A claim of what was read (`seen`, begin_turn's) takes no savepoints: were the caller's
            # session opened meanwhile, or the process id drawn taken, the whole transaction rolls back
            # (Django rolls back the enclosing atomic block) and the turn reads again. Two savepoints
            # fewer in every new conversation's begin: 0.74 -> 0.49 ms of CPU (bench/turn_writes.py).
            with transaction.atomic(savepoint=seen is None):
                process = Process(
                    persona=persona, status=Process.Status.RUNNING, channel=caller.channel, task=task
                )
                if seen is None:
                    process.insert_with_a_free_id(functools.partial(_insert_process, process))
                else:
                    _insert_process(process)
                session = _insert_session(
                    CallerSession(
                        caller_id=caller.caller_id,
                        process=process,
                        channel=caller.channel,
                        provider_call_id=caller.provider_call_id,
                        created_at=now,
                        last_seen_at=now,
                        turn_claimed_until=until,
                    )
                )
                return session, True
        except IntegrityError:
            if seen is not None:
                return None, False  # another turn opened one since the read
            log.debug("%s opened a session concurrently", caller.caller_id)
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
