"""Who answers a Slack message: the persona the message starts with (`Maya, what do you think…`), else
the one already answering the thread, else the channel's persona (SLACK_CHANNEL_PERSONAS), else the
default persona (TRON_DEFAULT_PERSONA, Tony)."""

import logging
import re

from django.conf import settings

from agents.models import Persona

log = logging.getLogger(__name__)

_GREETING = r"(?:(?:hey|hi|hello|ok|okay|so|yo)[ \t,]+)?"


def leading_persona(text: str, names: list[str]) -> str | None:
    """The persona `text` is addressed to by its first word(s): `Maya, …`, `hey Jordan: …`, `@riley …`
    or just `Alex?`; None when it starts with no persona's name followed by a pause."""
    for name in sorted(names, key=len, reverse=True):
        name_ = re.escape(name)
        pattern = rf"^\s*{_GREETING}(?:@{name_}\b|{name_}(?:\s*[,:;!?.\u2014\u2013-]|\s*$))"
        if re.match(pattern, text, re.IGNORECASE):
            return name
    return None


def persona_for(text: str, channel: str, thread_persona: str) -> str:
    """The persona's name for this message, or "" for the default persona."""
    names = list(Persona.objects.enabled().values_list("name", flat=True))
    if addressed := leading_persona(text, names):
        return addressed
    known = {name.lower(): name for name in names}
    if thread_persona and thread_persona.lower() in known:
        return known[thread_persona.lower()]
    mapped = settings.SLACK_CHANNEL_PERSONAS.get(channel, "")
    if mapped and mapped.lower() not in known:
        log.warning("SLACK_CHANNEL_PERSONAS maps %s to %r, which is no enabled persona", channel, mapped)
    return known.get(mapped.lower(), "")
