"""One turn at a time per conversation, in every web and worker process: a lock row per caller.

    holder = await acquire(caller_id)      # waits while another turn of this caller runs
    ...
    await db_write(release)(caller_id, holder)

The row is taken with an INSERT (the primary key refuses a second), so it works alike on SQLite and
PostgreSQL and across processes and machines. A waiter polls, backing off from 20 ms to 250 ms, for at
most TRON_TURN_WAIT_SECONDS, then gets a 409 with Retry-After. A lock whose holder died is taken
over: at once when the holder was a process of this host that no longer runs (the usual case, a web
process the supervisor restarted), else once it is older than LEASE_SECONDS.
"""

import asyncio
import contextlib
import os
import secrets
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .dbthread import db_write
from .llm.base import LLMError
from .models import TurnLock

# Longer than any turn runs (a stream is cut after TRON_LLM_TIMEOUT of silence, and answers are capped);
# only a holder on another machine that died waits this long to be taken over.
LEASE_SECONDS = 600
HOST = socket.gethostname()[:100]
FIRST_POLL, LAST_POLL = 0.02, 0.25


def try_acquire(caller_id: str, holder: str) -> bool:
    """Take the caller's lock for `holder` if it is free or abandoned (sync: a database thread)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            TurnLock.objects.create(caller_id=caller_id, holder=holder, acquired_at=now)
        return True
    except IntegrityError:
        pass
    lock = TurnLock.objects.filter(caller_id=caller_id).first()
    if lock is None or not _abandoned(lock, now):
        return False  # held (or released a moment ago: the next poll takes it)
    taken = TurnLock.objects.filter(caller_id=caller_id, holder=lock.holder).update(
        holder=holder, acquired_at=now
    )
    return bool(taken)


def release(caller_id: str, holder: str) -> None:
    TurnLock.objects.filter(caller_id=caller_id, holder=holder).delete()


def _abandoned(lock: TurnLock, now) -> bool:
    if lock.acquired_at < now - timedelta(seconds=LEASE_SECONDS):
        return True
    host, _, rest = lock.holder.partition(":")
    pid = rest.partition(":")[0]
    return host == HOST and pid.isdigit() and not _running(int(pid))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def acquire(caller_id: str) -> str:
    """Wait for the caller's lock and return its holder token; LLMError 409 after TRON_TURN_WAIT_SECONDS."""
    holder = f"{HOST}:{os.getpid()}:{secrets.token_hex(6)}"
    deadline = time.monotonic() + settings.TRON_TURN_WAIT_SECONDS
    delay = FIRST_POLL
    while True:
        attempt = asyncio.ensure_future(db_write(try_acquire)(caller_id, holder))
        try:
            acquired = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The caller left while the INSERT ran: it may have taken the lock all the same.
            with contextlib.suppress(Exception):
                if await attempt:
                    await db_write(release)(caller_id, holder)
            raise
        if acquired:
            return holder
        if time.monotonic() + delay > deadline:
            raise LLMError(
                f"another turn of this conversation is still running (waited {settings.TRON_TURN_WAIT_SECONDS}s"
                " for it, TRON_TURN_WAIT_SECONDS)",
                status=409,
                code="conversation_busy",
                retry_after=1,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, LAST_POLL)
