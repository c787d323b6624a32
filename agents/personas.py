"""Who takes a turn: the enabled personas, cached in the process so a turn's first step costs no query.

Every turn names a persona (or none), and the persona's prompt is the start of every prompt, so the
rows were read on every request: 2.3 ms of ORM work on the way to the first token. They change only
when an operator edits them, so each process keeps them in memory:

- an edit saved in this process (the admin, `load_team`) clears the cache at once (model signals);
- other processes (the second Daphne, the django-q2 cluster) reload within
  TRON_PERSONA_CACHE_SECONDS (5 s by default; 0 turns the cache off).

The cached Persona instances are shared by concurrent turns: treat them as read-only.
"""

import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from .models import Persona


class PersonaUnavailable(Exception):
    """No persona can take the turn (none loaded, or all disabled)."""


_lock = threading.Lock()
_loaded_at = 0.0
_by_name: dict[str, Persona] | None = None
_first: Persona | None = None
_generation = 0  # bumped by every clear, so a load that raced an edit is not kept


def clear_cache(**_signal_kwargs) -> None:
    global _by_name, _first, _generation
    with _lock:
        _by_name, _first = None, None
        _generation += 1


def _enabled() -> tuple[dict[str, Persona], Persona | None]:
    global _by_name, _first, _loaded_at
    ttl = settings.TRON_PERSONA_CACHE_SECONDS
    with _lock:
        if _by_name is not None and time.monotonic() - _loaded_at < ttl:
            return _by_name, _first
        generation = _generation
    personas = list(Persona.objects.enabled())  # ordered by sort_order, name: the first is the fallback
    by_name = {p.name.lower(): p for p in personas}
    first = personas[0] if personas else None
    if ttl > 0:
        with _lock:
            if generation == _generation:
                _by_name, _first, _loaded_at = by_name, first, time.monotonic()
    return by_name, first


def resolve_persona(name: str | None) -> Persona:
    """The enabled persona `name` names (any case), else the default persona (TRON_DEFAULT_PERSONA),
    else the first enabled one."""
    by_name, first = _enabled()
    wanted = (name or "").strip().lower()
    persona = by_name.get(wanted) or by_name.get(settings.TRON_DEFAULT_PERSONA.lower()) or first
    if persona is None:
        raise PersonaUnavailable("No persona is configured: run `manage.py load_team`.")
    return persona


post_save.connect(clear_cache, sender=Persona, dispatch_uid="agents.personas.saved")
post_delete.connect(clear_cache, sender=Persona, dispatch_uid="agents.personas.deleted")
