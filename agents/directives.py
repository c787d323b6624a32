"""Standing instructions: what a persona has been told to keep doing, in every prompt of theirs.

The persona's model saves one with the `save_directive` tool (when its settings allow the tool);
operators list, edit, switch off and remove them in the admin (Directive, and inline on the persona).
`standing_directives`, a prompt context provider (agents.context), puts the persona's active directives
into every prompt right after its own, oldest first, within DIRECTIVES_MAX_CHARS: when operators have
written more than that, the newest that fit are kept and the others are left out (logged).
"""

import logging

from .models import DIRECTIVE_MAX_CHARS, Directive
from .tools import ToolContext, tool

log = logging.getLogger(__name__)

DIRECTIVES_MAX_CHARS = 4000  # what a persona's directives may put into each of its prompts
DIRECTIVES_MAX_ROWS = 100  # read at most this many per prompt (the newest)

HEADING = (
    "Standing instructions you have been given (keep to them unless the person you serve asks otherwise):"
)


def standing_directives(persona, caller) -> str:
    """The persona's active directives for the prompt; "" when it has none. One indexed query."""
    newest = Directive.objects.filter(persona_id=persona.pk, active=True).order_by("-created_at", "-id")
    kept, used = [], 0
    texts = list(newest.values_list("text", flat=True)[:DIRECTIVES_MAX_ROWS])
    for text in texts:
        line = f"- {text.strip()}"
        if used + len(line) > DIRECTIVES_MAX_CHARS:
            log.warning(
                "%s has more standing instructions than fit into a prompt (%d characters); %d older ones "
                "are left out",
                persona.name,
                DIRECTIVES_MAX_CHARS,
                len(texts) - len(kept),
            )
            break
        kept.append(line)
        used += len(line) + 1
    if not kept:
        return ""
    return "\n".join([HEADING, *reversed(kept)])


@tool(
    "save_directive",
    "Save a standing instruction for yourself: a rule you will follow in every later conversation "
    "(e.g. 'Always quote prices in euros'). Use it only when you are asked to keep doing something from "
    "now on. One instruction per call, in plain words.",
    {
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": DIRECTIVE_MAX_CHARS,
                "description": "The instruction, e.g. 'Keep phone answers under three sentences.'",
            }
        },
        "required": ["text"],
        "additionalProperties": False,
    },
)
def save_directive(context: ToolContext, arguments: dict) -> str:
    text = arguments["text"].strip()
    if not text:
        return "Nothing was saved: the instruction is empty."
    persona = context.persona
    active = list(Directive.objects.filter(persona_id=persona.pk, active=True).values_list("text", flat=True))
    if text in (existing.strip() for existing in active):
        return f"You already have this standing instruction: {text}"
    used = sum(len(existing.strip()) + 3 for existing in active)
    if used + len(text) + 3 > DIRECTIVES_MAX_CHARS:
        return (
            f"Nothing was saved: your standing instructions already take {used:,} of the "
            f"{DIRECTIVES_MAX_CHARS:,} characters they may use. Ask an operator to remove some in the admin."
        )
    Directive.objects.create(persona_id=persona.pk, text=text, process=context.process)
    log.info("%s saved a standing instruction: %.200s", persona.name, text)
    return f"Saved. From your next answer on, this is one of your standing instructions: {text}"
