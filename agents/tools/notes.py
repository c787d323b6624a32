"""recall_person and save_person_memory: the team's notes about a person (agents.memory). Anyone may
read and add to the notes of the person they are (`Access.OWN`); another person's notes, by number, id
or a name searched across everyone's, only team members and operators. The life loop, which reads text
from the internet, touches no one's notes."""

from ..memory import FACT_MAX_CHARS, THE_CALLER, NoKey, add_fact, notes_mentioning, notes_of, person_key
from .base import Access, Tool, ToolContext, access_table

PERSON = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "Who: 'the caller' (the person you are talking with now), or a phone number such as "
    "+14155551234.",
}
ACCESS = access_table(public=Access.OWN, team=Access.YES, operator=Access.YES)


def _whose(arguments: dict, context: ToolContext) -> str | None:
    person = " ".join(arguments["person"].split())
    if person.lower().strip(" .") in THE_CALLER:
        return context.principal.caller_id  # their own, whether or not they can be remembered
    try:
        return person_key(person, context.principal)
    except NoKey:
        return None  # a name searched across everyone's notes: nobody's own


def _save(context: ToolContext, arguments: dict) -> str:
    try:
        key = person_key(arguments["person"], context.principal)
    except NoKey as exc:
        return f"Nothing was saved: {exc}"
    fact = " ".join(arguments["fact"].split())
    if not fact:
        return "Nothing was saved: the fact is empty."
    return add_fact(key, fact, principal=context.principal, process=context.process)


def _recall(context: ToolContext, arguments: dict) -> str:
    try:
        key = person_key(arguments["person"], context.principal)
    except NoKey as exc:
        name = " ".join(arguments["person"].split())
        if len(name) < 2 or name.lower().strip(" .") in THE_CALLER:
            return str(exc)
        found = notes_mentioning(name)
        if not found:
            return f"Nothing in the team's notes mentions {name!r}."
        return "\n\n".join(f"Notes about {m.caller_id}:\n{m.notes.strip()}" for m in found)
    notes = notes_of(key).strip()
    return f"Notes about {key}:\n{notes}" if notes else f"Nothing is known about {key} yet."


SAVE_PERSON_MEMORY = Tool(
    name="save_person_memory",
    description="Remember one fact about a person for your team's later conversations with them (their "
    "name, role, what they want, what was promised). The fact is added to the notes the team keeps about "
    "them.",
    parameters={
        "type": "object",
        "properties": {
            "person": PERSON,
            "fact": {"type": "string", "minLength": 1, "maxLength": FACT_MAX_CHARS},
        },
        "required": ["person", "fact"],
        "additionalProperties": False,
    },
    run=_save,
    writes=True,
    access=ACCESS,
    whose=_whose,
)

RECALL_PERSON = Tool(
    name="recall_person",
    description="What your team knows about a person from earlier conversations: the notes kept about them.",
    parameters={
        "type": "object",
        "properties": {
            "person": PERSON | {"description": PERSON["description"] + " A name is looked up in the notes."}
        },
        "required": ["person"],
        "additionalProperties": False,
    },
    run=_recall,
    access=ACCESS,
    whose=_whose,
)
