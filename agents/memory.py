"""Caller memory: what the team has learned about a caller, carried from one conversation to the next.

After a conversation ends (a phone call hangs up, an ElevenLabs socket closes), `remember_later` queues
the django-q2 task `agents.tasks.remember_caller`, which runs `remember_conversation`: one model call,
through the turn engine, that reads the conversation's transcript and the caller's notes so far and
writes the notes again. It runs as a process of its own (channel `memory`, a caller id of its own, so
it never joins the caller's conversation), with its LLM call, tokens and cost recorded like any other.
`caller_memory` puts the notes into the prompt of every later conversation of that caller
(agents.context). Operators read, correct and erase the notes in the admin (CallerMemory).
"""

import logging

from django.db import transaction

from .callers import Caller
from .models import CallerMemory, CallerSession, Channel, Message, Process
from .sessions import end_session

log = logging.getLogger(__name__)

MEMORY_MAX_CHARS = 4000  # what one caller's notes may put into every prompt of theirs
MEMORY_MAX_TOKENS = 400  # the longest notes the model is asked for
NOT_REMEMBERED = ("anonymous-", "memory-")  # fresh anonymous callers, and the memory writer itself

INSTRUCTIONS = """You keep your team's notes about the people who talk to it, so that the next time \
this person calls, whoever answers knows them.

Your notes about this caller so far:
{notes}

The conversation that just ended ({channel}, {persona} speaking with the caller):
{transcript}
{summary}
Write the notes about this caller again: keep what still holds from the notes so far, add what this \
conversation taught you (their name, who they are, what they want, facts they shared, what was \
promised to them), and drop what it shows is no longer true. Short plain lines, at most 150 words. \
Only the notes: no greeting, no commentary. If the conversation taught nothing new, repeat the notes \
so far."""


def remembers(caller_id: str) -> bool:
    return bool(caller_id) and not caller_id.startswith(NOT_REMEMBERED)


def caller_memory(persona, caller: Caller) -> str:
    """The caller's notes for the prompt (registered with agents.context); "" when there are none."""
    if not remembers(caller.caller_id):
        return ""
    notes = CallerMemory.objects.filter(caller_id=caller.caller_id).values_list("notes", flat=True).first()
    if not notes or not notes.strip():
        return ""
    return (
        "What your team knows about this caller from earlier conversations (use it naturally; do not "
        f"read it out):\n{notes.strip()}"
    )


def remember_later(process_id: int) -> None:
    """Queue the memory update of a conversation that has ended, once the current transaction commits."""
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task(
            "agents.tasks.remember_caller", process_id, task_name=f"remember caller of process {process_id}"
        )
    )


def remember_conversation(process_id: int) -> str:
    """Bring the caller's notes up to date from the ended conversation `process_id`; returns what was
    done. Raises LLMError when the model call fails (the notes are left as they were)."""
    from .runtime import TurnInput, complete_turn_sync  # the engine imports this app's models

    process = Process.objects.select_related("persona").get(pk=process_id)
    session = process.sessions.order_by("created_at", "id").first()
    caller_id = session.caller_id if session else ""
    if not remembers(caller_id):
        return f"process {process.public_id}: no caller to remember"
    memory = CallerMemory.objects.filter(caller_id=caller_id).first()
    if memory is not None and memory.last_process_id == process.pk:
        return f"process {process.public_id}: already remembered"
    transcript = _transcript(process)
    if not transcript:
        return f"process {process.public_id}: nothing was said"

    request = INSTRUCTIONS.format(
        notes=(memory.notes.strip() if memory and memory.notes.strip() else "(none yet)"),
        channel=process.get_channel_display(),
        persona=process.persona.name,
        transcript=transcript,
        summary=f"\nThe call's summary: {process.summary.strip()}\n" if process.summary.strip() else "",
    )
    writer = Caller(f"memory-{process.public_id}", Channel.MEMORY)
    try:
        end = complete_turn_sync(
            TurnInput(
                messages=[{"role": "user", "content": request}],
                caller=writer,
                persona_name=process.persona.name,
                task=f"Remember {caller_id} after process {process.public_id}"[:500],
                max_tokens=MEMORY_MAX_TOKENS,
            )
        )
    finally:
        # One update, one process: it completes (or fails, with the model's error) now, not at the sweep.
        for open_session in CallerSession.objects.filter(caller_id=writer.caller_id).open():
            end_session(open_session)
    notes = end.text.strip()[:MEMORY_MAX_CHARS]
    if not notes:
        log.warning("The memory of %s came back empty; the notes are kept as they were", caller_id)
        return f"process {process.public_id}: the model wrote nothing"
    CallerMemory.objects.update_or_create(
        caller_id=caller_id, defaults={"notes": notes, "last_process": process}
    )
    return f"process {process.public_id}: remembered {caller_id}"


def _transcript(process: Process) -> str:
    speaker = {Message.Role.USER: "Caller", Message.Role.ASSISTANT: process.persona.name}
    lines = (
        process.messages.filter(role__in=speaker)
        .exclude(content="")
        .order_by("id")
        .values_list("role", "content")
    )
    return "\n".join(f"{speaker[role]}: {content.strip()}" for role, content in lines)
