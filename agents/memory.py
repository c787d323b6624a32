"""Caller memory: what the team has learned about a caller, carried from one conversation to the next.

The notes are one text per caller id (CallerMemory). After a conversation ends, the memory writer
(agents.background) rewrites them from the transcript; during one, a persona adds a fact with the
`save_person_memory` tool (agents.tools.notes), recorded with who added it (MemoryNote). `caller_memory`
puts a caller's notes into every prompt of theirs (agents.prompt_context). Operators read, correct and
erase the notes in the admin.
"""

import logging
import re

from django.db import transaction

from . import tracing
from .callers import ONE_OFF_PREFIX, Caller, normalize_phone
from .models import CallerMemory, CallerSession, MemoryNote, Process, Turn
from .principals import Principal
from .prompts import quoted

log = logging.getLogger(__name__)

MEMORY_MAX_CHARS = 4000  # what one caller's notes may put into every prompt of theirs
FACT_MAX_CHARS = 500  # one fact saved with save_person_memory
# One-off callers, and the team's own work (memory updates, delegated tasks, replays).
NOT_REMEMBERED = (ONE_OFF_PREFIX, "memory-", "delegated-", "replay-")

THE_CALLER = {"the caller", "caller", "this caller", "current caller", "the user", "user", "me", "them"}
PHONE_LIKE = re.compile(r"\+?[\d\s().-]+")


def remembers(caller_id: str) -> bool:
    return bool(caller_id) and not caller_id.startswith(NOT_REMEMBERED)


def notes_of(caller_id: str) -> str:
    return CallerMemory.objects.filter(caller_id=caller_id).values_list("notes", flat=True).first() or ""


def caller_memory(persona, caller: Caller) -> str:
    """The caller's notes for the prompt (an agents.prompt_context provider); "" when there are none."""
    if not remembers(caller.caller_id):
        return ""
    notes = notes_of(caller.caller_id).strip()
    if not notes:
        return ""
    return (
        "What your team knows about this caller from earlier conversations (use it naturally; do not "
        f"read it out):\n{quoted('notes about this caller', notes)}"
    )


class NoKey(Exception):
    """`person` names nobody whose notes can be kept; the message says why, for the model."""


def person_key(person: str, principal: Principal) -> str:
    """The caller id the notes about `person` are kept under: "the caller" is the principal's own (the
    person this conversation is with, or who started the work); a phone number is that caller in E.164;
    any other caller id the team knows is taken as it is. A name is no key: two people share one.
    Raises NoKey."""
    words = " ".join(person.split())
    if words.lower().strip(" .") in THE_CALLER:
        if not remembers(principal.caller_id):
            raise NoKey(
                "This caller gave no phone number or id, so nothing about them can be kept for later "
                "conversations."
            )
        return principal.caller_id
    if PHONE_LIKE.fullmatch(words) and (phone := normalize_phone(words)):
        return phone
    known = CallerMemory.objects.filter(caller_id=words).exists()
    if remembers(words) and (known or CallerSession.objects.filter(caller_id=words).exists()):
        return words
    raise NoKey(
        f"{words!r} is not a caller's key: name 'the caller' (the person you are talking with) or their "
        "phone number."
    )


def add_fact(key: str, fact: str, *, principal: Principal, process: Process | None) -> str:
    """Append `fact` to the notes about `key` (the oldest lines give way past MEMORY_MAX_CHARS) and
    record who added it; returns what was done, for the model."""
    with transaction.atomic():
        memory, _created = CallerMemory.objects.select_for_update().get_or_create(caller_id=key)
        lines = [line for line in memory.notes.strip().splitlines() if line.strip()]
        if fact in (line.strip().lstrip("- ").strip() for line in lines):
            return f"Already in the notes about {key}: {fact}"
        lines.append(f"- {fact}")
        dropped = 0
        while len("\n".join(lines)) > MEMORY_MAX_CHARS and len(lines) > 1:
            lines.pop(0)
            dropped += 1
        # `last_process` stays: it marks the conversation the notes were last rewritten from.
        memory.notes = "\n".join(lines)
        memory.save(update_fields=["notes", "updated_at"])
        MemoryNote.objects.create(
            memory=memory, text=fact, process=process, trust=principal.trust, added_for=principal.caller_id
        )
    cut = f" ({dropped} older line(s) were dropped to keep the notes short)" if dropped else ""
    return f"Saved in the notes about {key}{cut}: {fact}"


def notes_mentioning(name: str, limit: int = 3) -> list[CallerMemory]:
    """The notes of callers that mention `name`, most recently updated first."""
    return list(CallerMemory.objects.filter(notes__icontains=name).order_by("-updated_at")[:limit])


def remember_later(process_id: int) -> None:
    """Queue the memory update of a conversation that has ended, once the current transaction commits.
    While tracing is on, the writer's turn continues the trace of the conversation's last turn."""
    from django_q.tasks import async_task

    traceparent = ""
    if tracing.on():
        last = Turn.objects.filter(process_id=process_id).exclude(span_id="").order_by("-id")
        traceparent = tracing.traceparent_of(*(last.values_list("trace_id", "span_id").first() or ("", "")))
    transaction.on_commit(
        lambda: async_task(
            "agents.tasks.remember_caller",
            process_id,
            traceparent=traceparent,
            task_name=f"remember caller of process {process_id}",
        )
    )
