"""Running an activity by hand (`manage.py trigger_life`, `/internal/life/trigger`): for one persona, or
for every persona whose life loop is on, concurrently, each in a thread of its own."""

from concurrent.futures import ThreadPoolExecutor

from django.db import connections

from agents.models import Persona

from .models import Activity, ActivityRun
from .runner import run_activity


class UnknownPersona(Exception):
    pass


def life_personas() -> list[Persona]:
    """The personas a trigger without a persona runs: those whose life loop is on."""
    return list(Persona.objects.with_life_loop())


def find_persona(name: str) -> Persona:
    """The enabled persona called `name` (any case); UnknownPersona with the names that exist."""
    try:
        return Persona.objects.enabled().named(name)
    except Persona.DoesNotExist:
        known = ", ".join(Persona.objects.enabled().values_list("name", flat=True)) or "none"
        raise UnknownPersona(f"No enabled persona is called {name!r}. Personas: {known}.") from None


def run_all(personas: list[Persona], activity: str) -> dict[str, ActivityRun]:
    """{persona name: its finished run}, the personas' runs side by side."""
    if not personas:
        return {}
    with ThreadPoolExecutor(max_workers=len(personas), thread_name_prefix="tron-life") as pool:
        results = list(pool.map(lambda persona: _in_thread(persona, activity), personas))
    return {persona.name: result for persona, result in zip(personas, results, strict=True)}


def _in_thread(persona: Persona, activity: str) -> ActivityRun:
    try:
        return run_activity(persona, activity)
    finally:
        connections.close_all()  # this thread's connections (handed back to the pool on PostgreSQL)


ACTIVITY_NAMES = list(Activity.values)
