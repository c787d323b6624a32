"""Prompt context providers: what they add, and what a per-persona one's text is kept for."""

import pytest

from agents import context
from agents.callers import Caller
from tests.factories import make_persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(monkeypatch):
    """A registry of this test's own providers."""
    monkeypatch.setattr(context, "_providers", [])
    monkeypatch.setattr(context, "_per_persona", set())
    return context


def test_providers_speak_in_order_and_a_broken_one_is_skipped(providers):
    def broken(persona, caller):
        raise RuntimeError("boom")

    providers.provides(lambda persona, caller: f"Caller {caller.caller_id}.")
    providers.provides(broken)
    providers.provides(lambda persona, caller: "  ")  # nothing to say
    providers.provides(lambda persona, caller: f"{persona.name}'s goals.", per_persona=True)

    assert providers.context_for(make_persona(name="Tony"), Caller("+14155550100")) == [
        "Caller +14155550100.",
        "Tony's goals.",
    ]


@pytest.mark.parametrize(("cache_seconds", "calls"), [(5, 1), (0, 3)])
def test_a_per_persona_provider_is_asked_once_while_its_text_is_kept(
    providers, settings, cache_seconds, calls
):
    settings.TRON_PERSONA_CACHE_SECONDS = cache_seconds
    asked = []

    def goals(persona, caller):
        asked.append(persona.name)
        return f"{persona.name}: ship it."

    providers.provides(goals, per_persona=True)
    tony, maya = make_persona(name="Tony"), make_persona(name="Maya")

    for caller in ("+14155550100", "+14155550101", "+14155550102"):
        assert providers.context_for(tony, Caller(caller)) == ["Tony: ship it."]
    assert providers.context_for(maya, Caller("+14155550100")) == ["Maya: ship it."]  # never Tony's
    assert asked.count("Tony") == calls

    providers.clear_cache()  # what a save in this process does (lifeloop's Goal and JournalEntry)
    providers.context_for(tony, Caller("+14155550100"))
    assert asked.count("Tony") == calls + 1
