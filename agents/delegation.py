"""Delegation: a persona hands a task to a team member, who works on it in the background. The child's
process and session (`open_child`), its queueing, its end, and the delivery of its result to the
conversation that delegated it; the tools are agents.tools.delegate, the child's turn
agents.background.run_child. Bounds: TRON_SPAWN_MAX_DEPTH, TRON_SPAWN_MAX_CHILDREN.
"""

import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import tracing
from .cache import ProcessCache
from .callers import Caller
from .display import ellipsis
from .models import CallerSession, Channel, Message, Persona, Process
from .principals import Principal
from .prompts import quoted
from .sessions import end_session, open_session

log = logging.getLogger(__name__)

TASK_MAX_CHARS = 4000  # the longest brief a model may hand on
TASK_FIELD_CHARS = Process._meta.get_field("task").max_length  # the brief's start, as the process's task
RESULT_MAX_CHARS = 4000  # what one delivered result may put into a prompt
DELIVERIES_PER_READ = 10  # results one read delivers; more wait for the next round or turn
MAX_LEVELS = 50  # how far a walk along parents goes: deeper than any bound allows, a guard only


class Refused(Exception):
    """The delegation cannot be made; the message says why, for the model."""


def open_child(
    parent_id: int, delegator: Persona, member: Persona, task: str, principal: Principal
) -> Process:
    """The child process of `parent_id` for `member`, pending, with the brief stored. Raises Refused
    past a bound, and agents.errors.Overloaded past TRON_MAX_RUNNING_PROCESSES."""
    with transaction.atomic():
        # Locked (PostgreSQL; SQLite's writes are serial anyway) so two calls cannot both take the last
        # free place below the same process.
        parent = Process.objects.select_for_update().get(pk=parent_id)
        depth = parent.spawn_depth + 1
        if depth > settings.TRON_SPAWN_MAX_DEPTH:
            raise Refused(_too_deep(parent.spawn_depth))
        unfinished = parent.children.active().count()
        if unfinished >= settings.TRON_SPAWN_MAX_CHILDREN:
            raise Refused(
                f"{unfinished} tasks you delegated are still unfinished, the most at once "
                "(TRON_SPAWN_MAX_CHILDREN); wait for one to finish (check_task) or do it yourself."
            )
        caller = Caller(f"delegated-{secrets.token_hex(8)}", Channel.DELEGATED)
        session = open_session(caller, member, task=task[:TASK_FIELD_CHARS], principal=principal)
        child = session.process
        Process.objects.filter(pk=child.pk).update(
            parent=parent, spawn_depth=depth, status=Process.Status.PENDING
        )
        Message.objects.create(
            process=child, session=session, role=Message.Role.USER, content=_brief(delegator, task)
        )
    log.info("%s delegated process %s to %s", delegator.name, child.public_id, member.name)
    return child


def _too_deep(depth: int) -> str:
    limit = settings.TRON_SPAWN_MAX_DEPTH
    if limit == 0:
        return "delegation is switched off here (TRON_SPAWN_MAX_DEPTH is 0); do the task yourself."
    return (
        f"this conversation is already delegated work {depth} level(s) deep, the most is {limit} "
        "(TRON_SPAWN_MAX_DEPTH); do the task yourself."
    )


def _brief(delegator: Persona, task: str) -> str:
    role = f" ({delegator.role})" if delegator.role else ""
    return (
        f"{delegator.name}{role} has delegated this task to you:\n\n{task}\n\n"
        f"Do it and answer with the result: your answer goes back to {delegator.name} as it is."
    )


def queue_child(process_id: int) -> None:
    """Queue the child's run. If the broker refuses, the child fails at once."""
    from django_q.tasks import async_task

    try:
        async_task(
            "agents.tasks.run_delegated",
            process_id,
            traceparent=tracing.traceparent(),  # the child's turn continues the trace of the tool's span
            task_name=f"delegated process {process_id}",
        )
    except Exception:
        end_child(process_id, error="The task could not be queued for a worker.")
        raise


def end_child(process_id: int, *, result: str = "", error: str = "") -> None:
    """Store the outcome and end the child's session: it completes, or fails with `error`."""
    with transaction.atomic():
        Process.objects.filter(pk=process_id).update(result=result, **({"error": error} if error else {}))
        for session in CallerSession.objects.filter(process_id=process_id).open():
            end_session(session)
        if error:  # a process without an open session (it never had one) still ends
            Process.objects.filter(pk=process_id, finished_at__isnull=True).update(
                status=Process.Status.FAILED, finished_at=timezone.now()
            )
    waiting.clear()  # a result waits now


# --- delivery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A finished child's outcome, as a turn's prompt carries it."""

    process_id: int
    text: str


def undelivered_results(persona: Persona, caller: Caller, exclude=()) -> list[Delivery]:
    """Delegated work of `persona`'s conversations with `caller` that has finished and not reached them
    yet (at most DELIVERIES_PER_READ, oldest first, none of `exclude`). Read only; nothing for a persona
    that cannot delegate, nor while no work the persona delegated waits (`waiting`)."""
    if "spawn_agent" not in persona.tools or persona.pk not in waiting.get_or_load(
        "parents", _parents_waiting
    ):
        return []
    children = Process.objects.filter(
        parent__sessions__caller_id=caller.caller_id,
        parent__persona_id=persona.pk,
        finished_at__isnull=False,
        delivered_at__isnull=True,
    )
    if exclude:
        children = children.exclude(pk__in=list(exclude))
    rows = children.order_by("finished_at", "id").values_list(
        "pk", "persona__name", "public_id", "task", "status", "error", "result"
    )
    found = {row[0]: row for row in rows[:DELIVERIES_PER_READ]}  # a parent with two sessions: once
    return [Delivery(pk, _delivery_text(*row[1:])) for pk, row in found.items()]


# The personas whose delegated work has finished and waits for delivery: one query for all, kept per
# process (agents.cache), so the turns of a persona that may delegate skip the join while none waits. A
# child that ends in this process drops it at once; one that ends in the worker is seen within
# TRON_CACHE_SECONDS.
waiting = ProcessCache("delegated results waiting")


def _parents_waiting() -> set[int]:
    children = Process.objects.filter(
        parent__isnull=False, delivered_at__isnull=True, finished_at__isnull=False
    )
    return set(children.order_by().values_list("parent__persona_id", flat=True).distinct())


def _delivery_text(name: str, public_id: str, task: str, status: str, error: str, result: str) -> str:
    if status == Process.Status.FAILED:
        outcome = f"failed: {error or 'no reason was recorded.'}"
    else:
        answer = ellipsis(result, RESULT_MAX_CHARS) or "(no answer)"
        outcome = f"finished. Their answer:\n{quoted(f'{name} answer', answer)}"
    return (
        f'Work you delegated: {name} (task id {public_id}, "{ellipsis(task, 120)}") {outcome}\n'
        "(This is given to you once. Pass on what matters to whoever you are speaking with.)"
    )


def mark_delivered(process_ids) -> int:
    return Process.objects.filter(pk__in=list(process_ids), delivered_at__isnull=True).update(
        delivered_at=timezone.now()
    )


# --- check_task -----------------------------------------------------------------------------------


def task_of(task_id: str, persona: Persona, process: Process | None, caller: Caller | None) -> Process | None:
    """The delegated task `task_id` if it descends from `process`, or from another conversation of
    `persona` with `caller` (the conversations results are delivered to); else None."""
    task = Process.objects.select_related("persona").filter(public_id=task_id).first()
    if task is None:
        return None
    ancestors, parent_id = [], task.parent_id
    while parent_id is not None and len(ancestors) < MAX_LEVELS:
        ancestors.append(parent_id)
        parent_id = Process.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    if process is not None and process.pk in ancestors:
        return task
    if caller is not None and (
        CallerSession.objects.filter(
            process__in=ancestors, caller_id=caller.caller_id, process__persona=persona
        ).exists()
    ):
        return task
    return None
