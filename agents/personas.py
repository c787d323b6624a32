"""Who takes a turn: the enabled personas, kept per process (agents.cache) because the persona's prompt
starts every prompt. Cached Persona instances are shared by concurrent turns: treat them as read-only."""

from django.conf import settings

from .cache import ProcessCache
from .errors import NoPersona
from .models import Persona

cache = ProcessCache("personas")


def _enabled() -> tuple[dict[str, Persona], Persona | None]:
    personas = list(Persona.objects.enabled())  # ordered by sort_order, name: the first is the fallback
    return {p.name.lower(): p for p in personas}, (personas[0] if personas else None)


def resolve_persona(name: str | None) -> Persona:
    """The enabled persona `name` names (any case), else the default persona (TRON_DEFAULT_PERSONA),
    else the first enabled one. Raises NoPersona when none is enabled."""
    by_name, first = cache.get_or_load("enabled", _enabled)
    wanted = (name or "").strip().lower()
    persona = by_name.get(wanted) or by_name.get(settings.TRON_DEFAULT_PERSONA.lower()) or first
    if persona is None:
        raise NoPersona("No persona is configured: run `manage.py load_team`.")
    return persona
