"""Who takes a turn: the enabled personas, cached in the process so a turn's first step costs no query.

Every turn names a persona (or none), and the persona's prompt is the start of every prompt, so the
rows were read on every request: 2.3 ms of ORM work on the way to the first token. They change only
when an operator edits them, so each process keeps them in memory:

- an edit saved in this process (the admin, `load_team`) clears the cache at once (model signals);
- other processes (the other Daphnes, the django-q2 cluster) reload within
  TRON_PERSONA_CACHE_SECONDS (5 s by default; 0 turns the cache off). On the event loop
  (`cached_persona`) the turn that finds the cache due does not wait for the reload: it starts it on
  a database thread and uses the personas it has.

The cached Persona instances are shared by concurrent turns: treat them as read-only.
"""

import asyncio
import logging
import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from .dbthread import db_read
from .models import Persona

log = logging.getLogger(__name__)


class PersonaUnavailable(Exception):
    """No persona can take the turn (none loaded, or all disabled)."""


_lock = threading.Lock()
_loaded_at = 0.0
_by_name: dict[str, Persona] | None = None
_first: Persona | None = None
_generation = 0  # bumped by every clear, so a load that raced an edit is not kept
_reloading = False  # a background reload is under way
_background: set[asyncio.Task] = set()


def clear_cache(**_signal_kwargs) -> None:
    global _by_name, _first, _generation
    with _lock:
        _by_name, _first = None, None
        _generation += 1


def _cached() -> tuple[dict[str, Persona], Persona | None] | None:
    with _lock:
        if _by_name is not None and time.monotonic() - _loaded_at < settings.TRON_PERSONA_CACHE_SECONDS:
            return _by_name, _first
    return None


def _enabled() -> tuple[dict[str, Persona], Persona | None]:
    global _by_name, _first, _loaded_at
    if (cached := _cached()) is not None:
        return cached
    with _lock:
        generation = _generation
    personas = list(Persona.objects.enabled())  # ordered by sort_order, name: the first is the fallback
    by_name = {p.name.lower(): p for p in personas}
    first = personas[0] if personas else None
    if settings.TRON_PERSONA_CACHE_SECONDS > 0:
        with _lock:
            if generation == _generation:
                _by_name, _first, _loaded_at = by_name, first, time.monotonic()
    return by_name, first


def _pick(by_name: dict[str, Persona], first: Persona | None, name: str | None) -> Persona:
    wanted = (name or "").strip().lower()
    persona = by_name.get(wanted) or by_name.get(settings.TRON_DEFAULT_PERSONA.lower()) or first
    if persona is None:
        raise PersonaUnavailable("No persona is configured: run `manage.py load_team`.")
    return persona


def resolve_persona(name: str | None) -> Persona:
    """The enabled persona `name` names (any case), else the default persona (TRON_DEFAULT_PERSONA),
    else the first enabled one."""
    return _pick(*_enabled(), name)


def cached_persona(name: str | None) -> Persona | None:
    """`resolve_persona` from the cache alone, on the event loop: None when the cache is empty (then
    call `resolve_persona` on a database thread). A cache past its time is still used, and its reload
    starts in the background."""
    ttl = settings.TRON_PERSONA_CACHE_SECONDS
    with _lock:
        by_name, first, loaded_at = _by_name, _first, _loaded_at
    if by_name is None or ttl <= 0:
        return None
    if time.monotonic() - loaded_at >= ttl:
        _reload_in_background()
    return _pick(by_name, first, name)


def _reload_in_background() -> None:
    global _reloading
    with _lock:
        if _reloading:
            return
        _reloading = True
    task = asyncio.get_running_loop().create_task(db_read(_reload)())
    _background.add(task)  # the loop keeps only a weak reference to a task
    # In the done callback, not in _reload: a loop that ends first (async_to_sync's) cancels the task
    # before the thread ever runs it, and a flag left set would stop every later reload.
    task.add_done_callback(_reload_ended)


def _reload() -> None:
    try:
        _enabled()  # the cache is past its time, so this reads the rows
    except Exception:  # noqa: BLE001 - the personas in hand still serve; the next turn tries again
        log.exception("Could not reload the personas")


def _reload_ended(task: asyncio.Task) -> None:
    global _reloading
    _background.discard(task)
    with _lock:
        _reloading = False


post_save.connect(clear_cache, sender=Persona, dispatch_uid="agents.personas.saved")
post_delete.connect(clear_cache, sender=Persona, dispatch_uid="agents.personas.deleted")
