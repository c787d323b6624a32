"""VAPI's questions that need an answer: which assistant takes an inbound call, and what the persona's
tools return."""

import time

import pytest

from integrations.models import PersonaVoice, PhoneNumber
from tests.integrations.vapi import OUR_NUMBER, fixture, post_vapi

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_owner_of_the_called_number_answers_with_this_servers_custom_llm(
    live_tron, chat_setup, team, settings
):
    settings.TRON_PUBLIC_URL = "https://tron.example.com"
    PhoneNumber.objects.create(number="+1 415 555 0100", persona=team["maya"], label="marketing line")
    PersonaVoice.objects.create(
        persona=team["maya"],
        first_message="Maya here, how can I help?",
        voice_provider="11labs",
        voice_id="v-maya",
    )

    started = time.monotonic()
    response = post_vapi(live_tron, "assistant-request")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json() == {
        "assistant": {
            "name": "Maya",
            "model": {"provider": "custom-llm", "url": "https://tron.example.com/v1", "model": "maya"},
            "firstMessage": "Maya here, how can I help?",
            "voice": {"provider": "11labs", "voiceId": "v-maya"},
        }
    }
    assert elapsed < 2  # VAPI allows 7.5 s end to end; this is two reads, no model call
    assert chat_setup.requests == []


def test_a_number_nobody_owns_is_answered_by_the_default_persona_at_the_url_it_was_called_on(
    live_tron, team, settings
):
    settings.TRON_PUBLIC_URL = ""
    PhoneNumber.objects.create(number="+14155550199", persona=team["maya"])
    PhoneNumber.objects.create(number=OUR_NUMBER, persona=team["maya"], enabled=False)

    assistant = post_vapi(live_tron, "assistant-request").json()["assistant"]

    assert assistant == {
        "name": "Tony",
        "model": {"provider": "custom-llm", "url": f"{live_tron.url}/v1", "model": "tony"},
    }


def test_without_any_persona_vapi_is_told_what_to_say(live_tron, transactional_db):
    assert post_vapi(live_tron, "assistant-request").json() == {
        "error": "Sorry, nobody can take your call right now. Please try again later."
    }


def test_a_phone_number_is_stored_in_e164_and_must_have_its_country_code(team):
    from django.core.exceptions import ValidationError

    number = PhoneNumber(number="+1 (415) 555-0100", persona=team["tony"])
    number.full_clean()
    assert number.number == OUR_NUMBER
    with pytest.raises(ValidationError) as refused:
        PhoneNumber(number="anonymous", persona=team["tony"]).full_clean()
    assert "country code" in str(refused.value)


@pytest.fixture
def tony_with_tools(team):
    team["tony"].tools = ["list_team"]
    team["tony"].save()
    return team["tony"]


def test_tool_calls_run_the_personas_tools_and_answer_each_by_its_id(live_tron, tony_with_tools):
    post_vapi(live_tron, "status-update-in-progress")

    response = post_vapi(live_tron, "tool-calls")

    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["toolCallId"] == "tc-1" and first["name"] == "list_team"
    assert "Maya: CMO" in first["result"] and "error" not in first
    assert second == {
        "toolCallId": "tc-2",
        "name": "launch_rocket",
        "error": "Error: there is no tool named 'launch_rocket' available to you.",
    }


@pytest.mark.parametrize("name", ["tool-calls-docs-example", "tool-with-tool-call-list"])
def test_tool_calls_in_the_other_documented_shapes_run_too(live_tron, tony_with_tools, name):
    [result] = post_vapi(live_tron, name).json()["results"]
    assert result["name"] == "list_team" and "Tony: CTO" in result["result"]


def test_a_tool_the_persona_may_not_use_or_bad_arguments_are_an_error_item(live_tron, team):
    message = fixture("tool-calls-docs-example")
    message["message"]["toolCallList"].append({"id": "tc-10", "name": "list_team", "parameters": [1, 2]})
    results = post_vapi(live_tron, message).json()["results"]
    assert [r["toolCallId"] for r in results] == ["tc-9", "tc-10"]
    assert all(r["error"].startswith("Error:") and "result" not in r for r in results)


def test_tools_of_a_call_use_the_persona_of_its_session(live_tron, tony_with_tools, team):
    team["maya"].tools = []
    team["maya"].save()
    message = fixture("status-update-in-progress")
    message["message"]["assistant"] = {"model": {"model": "maya"}}
    post_vapi(live_tron, message)

    [result, _] = post_vapi(live_tron, "tool-calls").json()["results"]

    assert "error" in result  # Maya, whose call it is, has no list_team
