"""spawn_agent and check_task: hand a task to a team member (agents.delegation) and ask where it stands.
The member works with the principal of the turn that delegated (a public caller's delegation cannot
reach further than the caller could), so any principal may delegate."""

from functools import partial

from ..delegation import TASK_MAX_CHARS, Refused, mark_delivered, open_child, queue_child, task_of
from ..errors import Overloaded
from ..models import Persona, Process
from .base import Access, Tool, ToolContext, ToolResult, access_table

EVERYONE = access_table(public=Access.YES, team=Access.YES, operator=Access.YES, life=Access.YES)


def refused(reason: str) -> ToolResult:
    return ToolResult(f"Error: {reason}", error=True)


def _spawn(context: ToolContext, arguments: dict) -> ToolResult:
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
    try:
        child = open_child(context.process.pk, context.persona, member, task, context.principal)
    except Refused as exc:
        return refused(str(exc))
    except Overloaded:
        return refused(
            "the server runs all the processes it may (TRON_MAX_RUNNING_PROCESSES); try again later "
            "or do the task yourself."
        )
    return ToolResult(
        f"Started {member.name} on the task (task id {child.public_id}). The result will reach you in "
        "this conversation when they finish; check_task tells where it stands.",
        start=partial(queue_child, child.pk),
    )


def _check(context: ToolContext, arguments: dict) -> ToolResult | str:
    task_id = arguments["task_id"].strip().lower()
    task = task_of(task_id, context.persona, context.process, context.caller)
    if task is None:
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


SPAWN_AGENT = Tool(
    name="spawn_agent",
    description="Hand a task to a team member (list_team names them). They work on it in the background "
    "with their own tools; this answers at once with the task's id, and their result (or failure) reaches "
    "you in this conversation when they finish. check_task tells where a task stands.",
    parameters={
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
    run=_spawn,
    writes=True,
    access=EVERYONE,
)

CHECK_TASK = Tool(
    name="check_task",
    description="Where a task you delegated stands (pending, running, completed or failed), with its "
    "result once it has one. Tasks of the members you delegated to count as yours too.",
    parameters={
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
    run=_check,
    writes=True,
    access=EVERYONE,
)
