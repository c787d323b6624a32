"""What other apps add to a persona's prompt: caller memory, the life loop's goals and reflections.

    @provides
    def current_goals(persona, caller) -> str: ...   # "" when there is nothing to add

`agents` imports none of the apps built on it, so they register here (in their AppConfig.ready()), and
every turn puts what the providers return into its prompt as system text after the persona's own,
within the prompt's token budget. Providers are sync and may query the database: the engine calls them
on a database thread. A provider that raises is logged and skipped; it never fails a turn.
"""

import logging
from collections.abc import Callable

from .callers import Caller
from .models import Persona

log = logging.getLogger(__name__)

Provider = Callable[[Persona, Caller], str]

_providers: list[Provider] = []


def provides(func: Provider) -> Provider:
    """Register `func(persona, caller) -> str` (once, however often it is registered)."""
    if func not in _providers:
        _providers.append(func)
    return func


def has_providers() -> bool:
    return bool(_providers)


def context_for(persona: Persona, caller: Caller) -> list[str]:
    """What the providers have to say for this persona and caller, in registration order."""
    found = []
    for provider in _providers:
        try:
            text = provider(persona, caller)
        except Exception:  # noqa: BLE001 - one broken provider must not fail every turn
            log.exception("Prompt context provider %s failed", getattr(provider, "__name__", provider))
            continue
        if text and text.strip():
            found.append(text.strip())
    return found
