"""What other apps add to a persona's prompt: caller memory, standing directives, the life loop's goals.

    provides(caller_memory)                                       # caller_memory(persona, caller) -> str
    provides(current_goals, per_persona=True, changes_with=[Goal]) # the same for all of a persona's callers

`agents` imports none of the apps built on it, so they register here (in their AppConfig.ready()), and
every turn puts what the providers return into its prompt as system text after the persona's own.
Providers are sync and may query the database: the engine calls them on a database thread. A provider
that raises is logged and skipped; it never fails a turn. What a per-persona provider says is kept per
process (agents.cache), dropped when a row of `changes_with` is saved.
"""

import logging
from collections.abc import Callable

from .cache import ProcessCache
from .callers import Caller
from .models import Persona

log = logging.getLogger(__name__)

Provider = Callable[[Persona, Caller | None], str]

_providers: list[tuple[Provider, ProcessCache | None]] = []


def provides(func: Provider, *, per_persona: bool = False, changes_with=()) -> Provider:
    """Register `func(persona, caller) -> str` (once, however often it is registered)."""
    if any(known is func for known, _cache in _providers):
        return func
    cache = None
    if per_persona:
        cache = ProcessCache(f"context.{func.__module__}.{func.__name__}")
        cache.clear_on_change(*changes_with)
    _providers.append((func, cache))
    return func


def context_for(persona: Persona, caller: Caller) -> list[str]:
    """What the providers have to say for this persona and caller, in registration order."""
    found = []
    for provider, cache in _providers:
        try:
            if cache is None:
                text = provider(persona, caller)
            else:
                text = cache.get_or_load(persona.pk, lambda provider=provider: provider(persona, None))
        except Exception:  # noqa: BLE001 - one broken provider must not fail every turn
            log.exception("Prompt context provider %s failed", getattr(provider, "__name__", provider))
            continue
        if text and text.strip():
            found.append(text.strip())
    return found
