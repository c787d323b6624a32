"""save_directive: a standing instruction for the persona itself (agents.directives). It changes what
the persona tells everyone, so only operators may give one (TRON_SAVE_DIRECTIVE_TRUST=team lets team
members too, their directives waiting for an operator's approval unless TRON_TEAM_DIRECTIVES_ACTIVE_AT_ONCE)."""

from django.conf import settings

from ..directives import add_directive
from ..models import DIRECTIVE_MAX_CHARS
from ..principals import Trust
from .base import Access, Tool, ToolContext


def _access(trust: Trust) -> Access:
    if trust == Trust.OPERATOR or (trust == Trust.TEAM and settings.TRON_SAVE_DIRECTIVE_TRUST == "team"):
        return Access.YES
    return Access.NO


def _save(context: ToolContext, arguments: dict) -> str:
    text = arguments["text"].strip()
    if not text:
        return "Nothing was saved: the instruction is empty."
    return add_directive(context.persona, text, principal=context.principal, process=context.process)


SAVE_DIRECTIVE = Tool(
    name="save_directive",
    description="Save a standing instruction for yourself: a rule you will follow in every later "
    "conversation (e.g. 'Always quote prices in euros'). Use it only when you are asked to keep doing "
    "something from now on. One instruction per call, in plain words.",
    parameters={
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
    run=_save,
    writes=True,
    access=_access,
)
