"""Prompt context providers: what they add, and how long a per-persona one's text is kept."""

import pytest

from agents import prompt_context
from agents.callers import Caller
from agents.models import Directive
from tests.factories import make_persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(monkeypatch):
    """A registry of this test's own providers."""
    monkeypatch.setattr(prompt_context, "_providers", [])
    return prompt_context


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
def test_a_per_persona_provider_is_asked_once_while_its_text_is_kept_and_again_after_a_save(
    providers, settings, cache_seconds, calls
):
    settings.TRON_CACHE_SECONDS = cache_seconds
    asked = []

    def goals(persona, caller):
        asked.append(persona.name)
        return f"{persona.name}: ship it."

    providers.provides(goals, per_persona=True, changes_with=[Directive])
    tony, maya = make_persona(name="Tony"), make_persona(name="Maya")

    for caller in ("+14155550100", "+14155550101", "+14155550102"):
        assert providers.context_for(tony, Caller(caller)) == ["Tony: ship it."]
    assert providers.context_for(maya, Caller("+14155550100")) == ["Maya: ship it."]  # never Tony's
    assert asked.count("Tony") == calls

    Directive.objects.create(persona=tony, text="Be kind.")  # a save in this process drops the text
    providers.context_for(tony, Caller("+14155550100"))
    assert asked.count("Tony") == calls + 1
