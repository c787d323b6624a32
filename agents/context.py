"""What other apps add to a persona's prompt: caller memory, the life loop's goals and reflections.

    provides(caller_notes)                      # caller_notes(persona, caller) -> str; "" for nothing
    provides(current_goals, per_persona=True)   # the same for every caller: kept a few seconds

`agents` imports none of the apps built on it, so they register here (in their AppConfig.ready()), and
every turn puts what the providers return into its prompt as system text after the persona's own,
within the prompt's token budget. Providers are sync and may query the database: the engine calls them
on a database thread. A provider that raises is logged and skipped; it never fails a turn.

What a per-persona provider says is kept in the process for TRON_PERSONA_CACHE_SECONDS, as the personas
themselves are (agents.personas): its queries then cost a turn nothing, where they were about a
millisecond of ORM work on the way to every first token (bench/turn_writes.py, the peek). What is saved
in this process shows at once (the app connects `clear_cache` to its models' saves); other processes
(the other Daphnes, the django-q2 cluster) see it within those seconds.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings

from .callers import Caller
from .models import Persona

log = logging.getLogger(__name__)

Provider = Callable[[Persona, Caller], str]

_providers: list[Provider] = []
_per_persona: set[Provider] = set()
_kept: dict[tuple[Provider, int], tuple[float, str]] = {}  # (provider, persona id) -> (when, text)


def provides(func: Provider, *, per_persona: bool = False) -> Provider:
    """Register `func(persona, caller) -> str` (once, however often it is registered). `per_persona`:
    its text depends on the persona alone, so it is kept a few seconds (see above)."""
    if func not in _providers:
        _providers.append(func)
    if per_persona:
        _per_persona.add(func)
    return func


def clear_cache(**_signal_kwargs) -> None:
    _kept.clear()


def has_providers() -> bool:
    return bool(_providers)


def context_for(persona: Persona, caller: Caller) -> list[str]:
    """What the providers have to say for this persona and caller, in registration order."""
    found = []
    for provider in _providers:
        try:
            text = _kept_text(provider, persona) if provider in _per_persona else provider(persona, caller)
        except Exception:  # noqa: BLE001 - one broken provider must not fail every turn
            log.exception("Prompt context provider %s failed", getattr(provider, "__name__", provider))
            continue
        if text and text.strip():
            found.append(text.strip())
    return found


def _kept_text(provider: Provider, persona: Persona) -> str:
    key, now = (provider, persona.pk), time.monotonic()
    kept = _kept.get(key)
    if kept is not None and now - kept[0] < settings.TRON_PERSONA_CACHE_SECONDS:
        return kept[1]
    text = provider(persona, None)
    if settings.TRON_PERSONA_CACHE_SECONDS > 0:
        _kept[key] = (now, text)
    return text
