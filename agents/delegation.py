"""Delegation: a persona hands a task to a team member, who works on it in the background.

    spawn_agent(agent, task)  # -> "Started Sarah on the task (task id 1a2b3c4d) ..." at once
    check_task(task_id)       # -> where the task stands, and its result once it has one

`spawn_agent` opens the child's own session and process (channel `delegated`, a caller id of its own,
`parent` the delegating conversation's process, `spawn_depth` one below it), stores the brief as its
first message, and queues the django-q2 task `agents.tasks.run_delegated`. That runs the child's turn
through the engine (`run_child`) as the named persona, with that persona's own tools, stores its final
answer on the process (`result`), or its failure (`error`), and ends its session.

A finished child's result (or failure) is delivered once to the conversation that delegated it: to the
turns of the delegating persona with the same caller (`undelivered_results`). A turn still running gets
it between its tool rounds, else the next turn does, as system text after the persona's prompt
(agents.runtime). It is marked delivered when a turn that carried it is recorded with an answer
(agents.transcript.record_turn), or when check_task reports it.

Bounds: TRON_SPAWN_MAX_DEPTH (levels below a conversation) and TRON_SPAWN_MAX_CHILDREN (unfinished
children of one process at once). A refusal (an unknown, disabled or the same persona, a bound) is a
tool error the model reads.
"""

import logging
import secrets
import time
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .callers import Caller
from .display import ellipsis
from .llm.base import LLMError
from .models import CallerSession, Channel, Message, Persona, Process
from .sessions import TooManyProcesses, end_session, open_session
from .tools import ToolContext, ToolResult, tool

log = logging.getLogger(__name__)

TASK_MAX_CHARS = 4000  # the longest brief a model may hand on
TASK_FIELD_CHARS = Process._meta.get_field("task").max_length  # the brief's start, as the process's task
RESULT_MAX_CHARS = 4000  # what one delivered result may put into a prompt
DELIVERIES_PER_READ = 10  # results one read delivers; more wait for the next round or turn
MAX_LEVELS = 50  # how far a walk along parents goes: deeper than any bound allows, a guard only


def refused(reason: str) -> ToolResult:
    return ToolResult(f"Error: {reason}", error=True)


# --- spawn_agent ----------------------------------------------------------------------------------


@tool(
    "spawn_agent",
    "Hand a task to a team member (list_team names them). They work on it in the background with their "
    "own tools; this answers at once with the task's id, and their result (or failure) reaches you in "
    "this conversation when they finish. check_task tells where a task stands.",
    {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "minLength": 1, "maxLength": 64, "description": "The member's name."},
            "task": {
                "type": "string",
                "minLength": 1,
                "maxLength": TASK_MAX_CHARS,
                "description": "What to do, with everything they need to know: they do not see this "
                "conversation.",
            },
        },
        "required": ["agent", "task"],
        "additionalProperties": False,
    },
)
def spawn_agent(context: ToolContext, arguments: dict) -> ToolResult:
    name, task = arguments["agent"].strip(), arguments["task"].strip()
    if not task:
        return refused("the task is empty.")
    if context.process is None:
        return refused("delegation needs a conversation for the result to come back to.")
    member = Persona.objects.filter(name__iexact=name).first()
    if member is None:
        return refused(f"unknown team member: {name!r} (list_team names the team).")
    if not member.enabled:
        return refused(f"{member.name} is not available: switched off by an operator.")
    if member.pk == context.persona.pk:
        return refused("you cannot delegate to yourself; do the task, or pick a team member.")
    with transaction.atomic():
        # Locked (PostgreSQL; SQLite's writes are serial anyway) so two calls cannot both take the last
        # free place below the same process.
        parent = Process.objects.select_for_update().get(pk=context.process.pk)
        depth = parent.spawn_depth + 1
        if depth > settings.TRON_SPAWN_MAX_DEPTH:
            return refused(_too_deep(parent.spawn_depth))
        unfinished = parent.children.active().count()
        if unfinished >= settings.TRON_SPAWN_MAX_CHILDREN:
            return refused(
                f"{unfinished} tasks you delegated are still unfinished, the most at once "
                "(TRON_SPAWN_MAX_CHILDREN); wait for one to finish (check_task) or do it yourself."
            )
        caller = Caller(f"delegated-{secrets.token_hex(8)}", Channel.DELEGATED)
        try:
            session = open_session(caller, member, task=task[:TASK_FIELD_CHARS])
        except TooManyProcesses:
            return refused(
                "the server runs all the processes it may (TRON_MAX_RUNNING_PROCESSES); try again later "
                "or do the task yourself."
            )
        child = session.process
        Process.objects.filter(pk=child.pk).update(
            parent=parent, spawn_depth=depth, status=Process.Status.PENDING
        )
        Message.objects.create(
            process=child, session=session, role=Message.Role.USER, content=_brief(context.persona, task)
        )
    log.info("%s delegated process %s to %s", context.persona.name, child.public_id, member.name)
    return ToolResult(
        f"Started {member.name} on the task (task id {child.public_id}). The result will reach you in "
        "this conversation when they finish; check_task tells where it stands.",
        start=partial(queue_child, child.pk),
    )


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
    """Queue the child's run (the tool's `start`). If the broker refuses, the child fails at once."""
    from django_q.tasks import async_task

    try:
        async_task("agents.tasks.run_delegated", process_id, task_name=f"delegated process {process_id}")
    except Exception:
        _end(process_id, error="The task could not be queued for a worker.")
        raise


# --- the child's run (django-q2) ------------------------------------------------------------------


def run_child(process_id: int) -> str:
    """Run the delegated process `process_id`: one turn of its persona on its brief. Stores the answer as
    its `result` (or the failure as its `error`) and ends it; returns what happened."""
    from .runtime import TurnInput, complete_turn_sync  # the engine imports this app's tools

    child = Process.objects.select_related("persona").get(pk=process_id)
    session = child.sessions.order_by("created_at", "id").first()
    if child.finished_at is not None or session is None:  # an operator stopped it while it waited
        _end(child.pk)
        return f"process {child.public_id}: ended before it ran"
    # Seen now, so the turn continues this session however long the task waited in the queue; an
    # idle sweep or an operator that ended it meanwhile leaves nothing to continue.
    alive = CallerSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
        last_seen_at=timezone.now()
    )
    if not alive or not child.persona.enabled:
        reason = "it was ended" if not alive else f"{child.persona.name} was switched off"
        _end(child.pk, error=f"The task did not run: {reason} before a worker started it.")
        return f"process {child.public_id}: did not run ({reason})"
    Process.objects.filter(pk=child.pk, status=Process.Status.PENDING).update(status=Process.Status.RUNNING)
    brief = child.messages.filter(role=Message.Role.USER).order_by("id").values_list("content", flat=True)
    result, error = "", ""
    try:
        end = complete_turn_sync(
            TurnInput(
                messages=[{"role": "user", "content": brief.first() or child.task}],
                caller=Caller(session.caller_id, Channel.DELEGATED),
                persona_name=child.persona.name,
                task=child.task,
            )
        )
        if end.process_id == child.pk:
            result = end.text.strip()
        else:  # cannot happen while the session lives (checked above); loud if it does
            log.error("Delegated process %s ran in process %s", child.public_id, end.process_id)
            error = "The task ran outside its own process; see the logs."
    except LLMError as exc:
        error = exc.message  # the engine recorded it on the process too, if the turn had begun
    except Exception:
        log.exception("Delegated process %s failed", child.public_id)
        error = "The task failed in the server; it has been logged."
    _end(child.pk, result=result, error=error)
    return f"process {child.public_id}: {'failed: ' + error if error else 'completed'}"


def _end(process_id: int, *, result: str = "", error: str = "") -> None:
    """Store the outcome and end the child's session: it completes, or fails with `error`."""
    with transaction.atomic():
        Process.objects.filter(pk=process_id).update(result=result, **({"error": error} if error else {}))
        sessions = CallerSession.objects.filter(process_id=process_id).open()
        for session in sessions:
            end_session(session)
        if error:  # a process without an open session (it never had one) still ends
            Process.objects.filter(pk=process_id, finished_at__isnull=True).update(
                status=Process.Status.FAILED, finished_at=timezone.now()
            )
    forget_waiting()  # a result waits now: this process's next turns look for it at once


# --- delivery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A finished child's outcome, as a turn's prompt carries it."""

    process_id: int
    text: str


def undelivered_results(persona: Persona, caller: Caller, exclude=()) -> list[Delivery]:
    """Delegated work of `persona`'s conversations with `caller` that has finished and not reached them
    yet (at most DELIVERIES_PER_READ, oldest first, none of `exclude`). Read only. Every turn asks, on
    the way to its first token, so most ask nothing: not for a persona that cannot delegate, nor while
    none of the persona's delegated work waits for delivery (`_results_wait`)."""
    if "spawn_agent" not in persona.tools or not _results_wait(persona):
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


_waiting: tuple[float, set[int]] | None = None  # (when read, the personas whose delegated work waits)


def _results_wait(persona: Persona) -> bool:
    """Whether finished, undelivered work the persona delegated exists. One query for all personas
    (through the partial index agents_proc_undelivered: only such work), whose answer this process
    keeps for TRON_PERSONA_CACHE_SECONDS, like the personas: the delivery read it spares was 1.2 ms of
    ORM CPU on the way to every first token of a persona that may delegate. A child that ends in this
    process clears it at once; one that ends elsewhere (the django-q2 cluster) is found within those
    seconds."""
    global _waiting
    now = time.monotonic()
    if _waiting is None or now - _waiting[0] >= settings.TRON_PERSONA_CACHE_SECONDS:
        children = Process.objects.filter(
            parent__isnull=False, delivered_at__isnull=True, finished_at__isnull=False
        )
        _waiting = (now, set(children.order_by().values_list("parent__persona_id", flat=True).distinct()))
    return persona.pk in _waiting[1]


def forget_waiting(**_signal_kwargs) -> None:
    global _waiting
    _waiting = None


def _delivery_text(name: str, public_id: str, task: str, status: str, error: str, result: str) -> str:
    if status == Process.Status.FAILED:
        outcome = f"failed: {error or 'no reason was recorded.'}"
    else:
        outcome = f"finished. Their answer:\n{ellipsis(result, RESULT_MAX_CHARS) or '(no answer)'}"
    return (
        f'Work you delegated: {name} (task id {public_id}, "{ellipsis(task, 120)}") {outcome}\n'
        "(This is given to you once. Pass on what matters to whoever you are speaking with.)"
    )


def mark_delivered(process_ids) -> int:
    return Process.objects.filter(pk__in=list(process_ids), delivered_at__isnull=True).update(
        delivered_at=timezone.now()
    )


# --- check_task -----------------------------------------------------------------------------------


@tool(
    "check_task",
    "Where a task you delegated stands (pending, running, completed or failed), with its result once it "
    "has one. Tasks of the members you delegated to count as yours too.",
    {
        "type": "object",
        "properties": {
            "task_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 40,
                "description": "As spawn_agent gave it.",
            }
        },
        "required": ["task_id"],
        "additionalProperties": False,
    },
)
def check_task(context: ToolContext, arguments: dict) -> ToolResult | str:
    task_id = arguments["task_id"].strip().lower()
    task = Process.objects.select_related("persona").filter(public_id=task_id).first()
    if task is None or not _is_yours(task, context):
        return refused(f"there is no task {task_id!r} of yours (spawn_agent gives the ids).")
    name = task.persona.name
    if task.status == Process.Status.PENDING:
        return f"Task {task.public_id} ({name}): waiting for a worker to start it."
    if task.status == Process.Status.RUNNING:
        return f"Task {task.public_id} ({name}): {name} is working on it."
    mark_delivered([task.pk])  # the answer is in this conversation now
    if task.status == Process.Status.FAILED:
        return f"Task {task.public_id} ({name}) failed: {task.error or 'no reason was recorded.'}"
    return f"Task {task.public_id} ({name}) is done. The answer:\n{task.result or '(no answer)'}"


def _is_yours(task: Process, context: ToolContext) -> bool:
    """Whether `task` descends from the caller's process, or from another conversation of this persona
    with this caller (the conversations results are delivered to)."""
    ancestors, parent_id = [], task.parent_id
    while parent_id is not None and len(ancestors) < MAX_LEVELS:
        ancestors.append(parent_id)
        parent_id = Process.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    if context.process is not None and context.process.pk in ancestors:
        return True
    return context.caller is not None and (
        CallerSession.objects.filter(
            process__in=ancestors, caller_id=context.caller.caller_id, process__persona=context.persona
        ).exists()
    )
