"""django-q2 tasks: answer a Slack thread's messages, and resume threads a worker left.

Messages of one thread are answered one at a time, oldest first: the task that holds the thread's lease
(a conditional UPDATE on its SlackThread row, so it works across workers and machines) answers every
waiting message, then lets go and looks again, so a message stored while it was answering is never
left behind. A task that finds the lease taken ends at once: the holder will get to its message. Tasks
of different threads run side by side.
"""

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from integrations.models import SlackMessage, SlackThread

from .answer import APOLOGY, answer, deliver
from .client import web_client

log = logging.getLogger(__name__)

WAITING = [SlackMessage.Status.PENDING, SlackMessage.Status.ANSWERING]
MAX_ATTEMPTS = 2  # a message whose worker died twice while answering it is given up (and apologised for)
RESUME_AFTER = timedelta(seconds=60)  # a message this old with no worker on it is handed out again


def lease() -> timedelta:
    """Longer than a task may run (django-q2 kills it at Q_CLUSTER["timeout"]): a lease that runs out
    belongs to a worker that is gone."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"] + 30)


def enqueue(thread_id: int) -> bool:
    """Hand the thread to a worker; False (logged) when the broker refused. The message is stored
    either way, and `resume_waiting` hands it out again."""
    try:
        async_task("integrations.slack.tasks.answer_thread", thread_id, group="slack")
    except Exception:  # noqa: BLE001 - the broker is down: the row waits for the sweep
        log.exception("Could not queue Slack thread %s: the sweep will hand it out again", thread_id)
        return False
    return True


def answer_thread(thread_id: int) -> str:
    """Answer the thread's waiting messages, oldest first, one at a time."""
    holder = uuid.uuid4().hex
    started = time.monotonic()
    budget = settings.Q_CLUSTER["timeout"] / 2  # leave the rest of the task's time for the last answer
    client = web_client()
    answered = 0
    while _claim(thread_id, holder):
        try:
            while (message := _next_message(thread_id, client)) is not None:
                _answer_safely(message, client)
                answered += 1
                if time.monotonic() - started > budget or not _renew(thread_id, holder):
                    break
        finally:
            _release(thread_id, holder)
        if not SlackMessage.objects.filter(thread_id=thread_id, status__in=WAITING).exists():
            break
        if time.monotonic() - started > budget:
            enqueue(thread_id)  # a fresh task goes on with the rest
            break
    return f"answered {answered} message(s) of thread {thread_id}"


def _claim(thread_id: int, holder: str) -> bool:
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    claimed = SlackThread.objects.filter(free, pk=thread_id).update(
        lease_holder=holder, lease_until=now + lease()
    )
    return claimed == 1


def _renew(thread_id: int, holder: str) -> bool:
    renewed = SlackThread.objects.filter(pk=thread_id, lease_holder=holder).update(
        lease_until=timezone.now() + lease()
    )
    return renewed == 1


def _release(thread_id: int, holder: str) -> None:
    SlackThread.objects.filter(pk=thread_id, lease_holder=holder).update(lease_holder="", lease_until=None)


def _next_message(thread_id: int, client) -> SlackMessage | None:
    """The thread's oldest waiting message, marked answering. One found answering already was left by a
    worker that died on it (this task holds the lease): it is tried again, up to MAX_ATTEMPTS."""
    while True:
        message = (
            SlackMessage.objects.filter(thread_id=thread_id, status__in=WAITING)
            .select_related("thread")
            .order_by("ts", "id")
            .first()
        )
        if message is None:
            return None
        if message.attempts >= MAX_ATTEMPTS:
            log.error(
                "Giving up on Slack message %s: its worker stopped %d times",
                message.event_id,
                message.attempts,
            )
            message.error = f"gave up after {message.attempts} attempts: the worker stopped while answering"
            deliver(message, client, APOLOGY)
            if message.status != SlackMessage.Status.FAILED:
                SlackMessage.objects.filter(pk=message.pk).update(status=SlackMessage.Status.FAILED)
            continue
        SlackMessage.objects.filter(pk=message.pk).update(
            status=SlackMessage.Status.ANSWERING, attempts=F("attempts") + 1
        )
        message.status = SlackMessage.Status.ANSWERING
        message.attempts += 1
        return message


def _answer_safely(message: SlackMessage, client) -> None:
    """Answer one message; a failure of Tron's own is logged and recorded on the row (and apologised for
    in the thread), and the thread's next message still gets its turn."""
    try:
        answer(message, client)
    except Exception as exc:  # noqa: BLE001 - one message's failure must not stall its thread
        log.exception("Answering Slack message %s failed", message.event_id)
        message.error = f"{exc.__class__.__name__}: {exc}"[:1000]
        try:
            deliver(message, client, APOLOGY)
            SlackMessage.objects.filter(pk=message.pk).update(status=SlackMessage.Status.FAILED)
        except Exception:  # noqa: BLE001
            log.exception("Could not record the failure of Slack message %s", message.event_id)


def resume_waiting() -> str:
    """Schedule, every minute: hand out again the threads whose messages wait with no worker on them (a
    message stored while the broker was down, or left by a worker that died)."""
    now = timezone.now()
    threads = (
        SlackThread.objects.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .filter(messages__status__in=WAITING, messages__received_at__lt=now - RESUME_AFTER)
        .values_list("pk", flat=True)
        .distinct()
    )
    resumed = [thread_id for thread_id in threads if enqueue(thread_id)]
    return f"resumed {len(resumed)} Slack thread(s)"
