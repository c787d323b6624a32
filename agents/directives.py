"""Standing instructions: what a persona has been told to keep doing, in every prompt of theirs.

`standing_directives`, a prompt context provider, puts the persona's directives in force (active and
approved) into every prompt right after its own, oldest first, within DIRECTIVES_MAX_CHARS. A directive
a persona's model saves (`add_directive`, through the save_directive tool) records who asked; unless an
operator asked, it waits for an operator's approval in the admin before it enters any prompt.
"""

import logging

from django.conf import settings
from django.utils import timezone

from .models import Directive, Persona, Process
from .principals import Principal, Trust

log = logging.getLogger(__name__)

DIRECTIVES_MAX_CHARS = 4000  # what a persona's directives may put into each of its prompts
DIRECTIVES_MAX_ROWS = 100  # read at most this many per prompt (the newest)

HEADING = (
    "Standing instructions you have been given (keep to them unless the person you serve asks otherwise):"
)


def standing_directives(persona, caller) -> str:
    """The persona's directives in force for the prompt; "" when it has none. One indexed query."""
    newest = Directive.objects.in_force().filter(persona_id=persona.pk).order_by("-created_at", "-id")
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


def add_directive(persona: Persona, text: str, *, principal: Principal, process: Process | None) -> str:
    """Save a directive a persona's model was asked for; returns what was done, for the model."""
    pending = Directive.objects.filter(persona_id=persona.pk, active=True)
    existing = [t.strip() for t in pending.values_list("text", flat=True)]
    if text in existing:
        return f"You already have this standing instruction (or it awaits approval): {text}"
    in_force = Directive.objects.in_force().filter(persona_id=persona.pk).values_list("text", flat=True)
    used = sum(len(t.strip()) + 3 for t in in_force)
    if used + len(text) + 3 > DIRECTIVES_MAX_CHARS:
        return (
            f"Nothing was saved: your standing instructions already take {used:,} of the "
            f"{DIRECTIVES_MAX_CHARS:,} characters they may use. Ask an operator to remove some in the admin."
        )
    at_once = principal.trust == Trust.OPERATOR or (
        principal.trust == Trust.TEAM and settings.TRON_TEAM_DIRECTIVES_ACTIVE_AT_ONCE
    )
    Directive.objects.create(
        persona_id=persona.pk,
        text=text,
        process=process,
        trust=principal.trust,
        asked_by=principal.name or principal.caller_id,
        approved_at=timezone.now() if at_once else None,
        approved_by=f"{principal} (at once)" if at_once else "",
    )
    log.info("%s saved a standing instruction for %s: %.200s", persona.name, principal, text)
    if at_once:
        return f"Saved. From your next answer on, this is one of your standing instructions: {text}"
    return (
        "Saved for an operator's approval: it becomes one of your standing instructions once an operator "
        f"approves it in the admin: {text}"
    )
