"""Caller memory: what the team has learned about a caller, carried from one conversation to the next.

After a conversation ends (a phone call hangs up, an ElevenLabs socket closes), `remember_later` queues
the django-q2 task `agents.tasks.remember_caller`, which runs `remember_conversation`: one model call,
through the turn engine, that reads the conversation's transcript and the caller's notes so far and
writes the notes again. It runs as a process of its own (channel `memory`, a caller id of its own, so
it never joins the caller's conversation), with its LLM call, tokens and cost recorded like any other.
`caller_memory` puts the notes into the prompt of every later conversation of that caller
(agents.context). Operators read, correct and erase the notes in the admin (CallerMemory).

A persona also reads and adds to the notes during a conversation, with two tools over the same notes:
`save_person_memory(person, fact)` appends the fact as a line (no model call: nothing to cost), and
`recall_person(person)` reads them. `person` names a caller as the notes are keyed (`person_key`):
"the caller" is the person this conversation is with; a phone number is that caller, in E.164 as
agents.callers writes it; any other caller id the team knows (a Slack thread's, `user-…`) is taken as
it is. A name is no key (two people share one; a caller's name is in their notes, not their id):
`recall_person` looks for it in the notes, `save_person_memory` asks for the caller or a number.
"""

import logging
import re

from django.db import transaction

from . import prepared
from .callers import ONE_OFF_PREFIX, Caller, normalize_phone
from .models import CallerMemory, CallerSession, Channel, Message, Process
from .sessions import end_session
from .tools import ToolContext, tool

log = logging.getLogger(__name__)

MEMORY_MAX_CHARS = 4000  # what one caller's notes may put into every prompt of theirs
MEMORY_MAX_TOKENS = 400  # the longest notes the model is asked for
FACT_MAX_CHARS = 500  # one fact saved with save_person_memory
RECALL_MATCHES = 3  # callers whose notes mention a name, for recall_person
NOT_REMEMBERED = (ONE_OFF_PREFIX, "memory-")  # fresh anonymous callers, and the memory writer itself

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


# In the prompt context of every turn of a remembered caller (agents.prepared: 248 µs of CPU through
# the ORM, 43 µs so).
_notes = prepared.read(
    lambda caller_id: CallerMemory.objects.filter(caller_id=caller_id).only("notes").order_by(),
    CallerMemory,
    caller_id="caller_id",
)


def notes_of(caller_id: str) -> str | None:
    found = _notes(caller_id=caller_id)  # caller_id is unique
    return found[0].notes if found else None


def caller_memory(persona, caller: Caller) -> str:
    """The caller's notes for the prompt (registered with agents.context); "" when there are none."""
    if not remembers(caller.caller_id):
        return ""
    notes = notes_of(caller.caller_id)
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


# -- the memory tools ------------------------------------------------------------------------------------

THE_CALLER = {"the caller", "caller", "this caller", "current caller", "the user", "user", "me", "them"}
PHONE_LIKE = re.compile(r"\+?[\d\s().-]+")
PERSON_PARAMETER = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "Who: 'the caller' (the person you are talking with now), or a phone number such as "
    "+14155551234.",
}


class NoKey(Exception):
    """`person` names nobody whose notes can be kept; the message says why, for the model."""


def person_key(person: str, caller: Caller | None) -> str:
    """The caller id the notes about `person` are kept under; raises NoKey."""
    words = " ".join(person.split())
    if words.lower().strip(" .") in THE_CALLER:
        if caller is None or not remembers(caller.caller_id):
            raise NoKey(
                "This caller gave no phone number or id, so nothing about them can be kept for later "
                "conversations."
            )
        return caller.caller_id
    if PHONE_LIKE.fullmatch(words) and (phone := normalize_phone(words)):
        return phone
    known = CallerMemory.objects.filter(caller_id=words).exists()
    if remembers(words) and (known or CallerSession.objects.filter(caller_id=words).exists()):
        return words
    raise NoKey(
        f"{words!r} is not a caller's key: name 'the caller' (the person you are talking with) or their "
        "phone number."
    )


@tool(
    "save_person_memory",
    "Remember one fact about a person for your team's later conversations with them (their name, role, "
    "what they want, what was promised). The fact is added to the notes the team keeps about them.",
    {
        "type": "object",
        "properties": {
            "person": PERSON_PARAMETER,
            "fact": {"type": "string", "minLength": 1, "maxLength": FACT_MAX_CHARS},
        },
        "required": ["person", "fact"],
        "additionalProperties": False,
    },
)
def save_person_memory(context: ToolContext, arguments: dict) -> str:
    try:
        key = person_key(arguments["person"], context.caller)
    except NoKey as exc:
        return f"Nothing was saved: {exc}"
    fact = " ".join(arguments["fact"].split())
    if not fact:
        return "Nothing was saved: the fact is empty."
    with transaction.atomic():
        memory, _created = CallerMemory.objects.select_for_update().get_or_create(caller_id=key)
        lines = [line for line in memory.notes.strip().splitlines() if line.strip()]
        if fact in (line.strip().lstrip("- ").strip() for line in lines):
            return f"Already in the notes about {key}: {fact}"
        lines.append(f"- {fact}")
        dropped = 0
        while len("\n".join(lines)) > MEMORY_MAX_CHARS and len(lines) > 1:
            lines.pop(0)  # the oldest lines give way, so the notes stay within what a prompt takes
            dropped += 1
        # `last_process` stays: it marks the conversation the notes were last rewritten from, which the
        # rewrite after this conversation must still do.
        memory.notes = "\n".join(lines)
        memory.save(update_fields=["notes", "updated_at"])
    log.info("%s saved a fact about %s", context.persona.name, key)
    cut = f" ({dropped} older line(s) were dropped to keep the notes short)" if dropped else ""
    return f"Saved in the notes about {key}{cut}: {fact}"


@tool(
    "recall_person",
    "What your team knows about a person from earlier conversations: the notes kept about them.",
    {
        "type": "object",
        "properties": {
            "person": PERSON_PARAMETER
            | {"description": PERSON_PARAMETER["description"] + " A name is looked up in the notes."}
        },
        "required": ["person"],
        "additionalProperties": False,
    },
)
def recall_person(context: ToolContext, arguments: dict) -> str:
    try:
        key = person_key(arguments["person"], context.caller)
    except NoKey as exc:
        name = " ".join(arguments["person"].split())
        if len(name) < 2 or name.lower().strip(" .") in THE_CALLER:
            return str(exc)
        found = list(
            CallerMemory.objects.filter(notes__icontains=name).order_by("-updated_at")[:RECALL_MATCHES]
        )
        if not found:
            return f"Nothing in the team's notes mentions {name!r}."
        return "\n\n".join(f"Notes about {m.caller_id}:\n{m.notes.strip()}" for m in found)
    notes = notes_of(key)
    if not notes or not notes.strip():
        return f"Nothing is known about {key} yet."
    return f"Notes about {key}:\n{notes.strip()}"
