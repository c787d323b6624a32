"""Frames past the ElevenLabs socket's limits (issue 29): each gets an `error` event, the socket stays
open, nothing of it is kept, and the conversation's next turn still works. Frames of the wrong shape are
in test_elevenlabs_ws.py."""

import pytest

from agents.models import Message
from tests.integrations.test_elevenlabs_ws import reply, started

pytestmark = pytest.mark.django_db(transaction=True)


async def still_answers(communicator):
    await communicator.send_json_to({"type": "user_message", "text": "still there?"})
    assert (await reply(communicator))[-1]["type"] == "agent_response"


async def test_a_contextual_update_past_the_limit_is_refused_and_later_turns_still_work(
    application, chat_setup, team, settings
):
    settings.TRON_MAX_MESSAGE_CHARS = 1000
    communicator, _ = await started(application)
    await communicator.send_json_to({"type": "contextual_update", "text": "a" * 600, "context_id": "one"})
    await communicator.send_json_to({"type": "contextual_update", "text": "b" * 600, "context_id": "two"})

    error = await communicator.receive_json_from(timeout=5)

    assert error["error_event"]["error_type"] == "message_too_long"
    await still_answers(communicator)
    system = [m["content"] for m in chat_setup.requests[0].body["messages"] if m["role"] == "system"]
    assert any("a" * 600 in text for text in system) and not any("b" * 600 in text for text in system)
    await communicator.send_json_to({"type": "contextual_update", "text": "c" * 600, "context_id": "one"})
    await still_answers(communicator)  # the update of an id replaces its earlier one: within the limit
    await communicator.disconnect()


async def test_contextual_updates_are_kept_only_while_a_turn_can_carry_them(
    application, chat_setup, team, settings
):
    # A turn carries each update as a message of its own, and a turn of more than TRON_MAX_MESSAGES
    # messages is refused: the third update here would have left every later turn refused.
    settings.TRON_MAX_MESSAGES = 3
    communicator, _ = await started(application)
    for context_id in ("one", "two", "three"):
        await communicator.send_json_to(
            {"type": "contextual_update", "text": context_id, "context_id": context_id}
        )
    await communicator.send_json_to({"type": "contextual_update", "text": "one again", "context_id": "one"})
    await communicator.send_json_to({"type": "user_message", "text": "still there?"})

    received = []  # until the answer, or the turn refused
    while not received or received[-1]["type"] != "agent_response" and "turn" not in received[-1]:
        message = await communicator.receive_json_from(timeout=10)
        if message["type"] == "error" and message["error_event"]["error_type"] == "too_many_messages":
            message["turn"] = "refused"
        if message["type"] not in ("ping", "agent_chat_response_part"):
            received.append(message)

    assert [m["type"] for m in received] == ["error", "agent_response"]
    assert received[0]["error_event"]["error_type"] == "message_too_long"
    system = " ".join(m["content"] for m in chat_setup.requests[0].body["messages"] if m["role"] == "system")
    assert "one again" in system and "two" in system and "three" not in system
    await communicator.disconnect()


async def test_a_user_message_past_the_limit_is_refused_at_the_door(application, chat_setup, team, settings):
    settings.TRON_MAX_MESSAGE_CHARS = 1000
    communicator, _ = await started(application)
    await communicator.send_json_to({"type": "user_message", "text": "x" * 1001})

    error = await communicator.receive_json_from(timeout=5)

    assert error["error_event"]["error_type"] == "message_too_long"
    assert chat_setup.requests == [] and not await Message.objects.aexists()
    await still_answers(communicator)
    await communicator.disconnect()


async def test_a_user_id_past_the_caller_id_column_is_refused(application, chat_setup, team):
    communicator, _ = await started(application, init={"type": "conversation_initiation_client_data"})
    await communicator.send_json_to({"type": "conversation_initiation_client_data", "user_id": "u" * 256})
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and "user_id" in error["error_event"]["message"]
    await still_answers(communicator)
    await communicator.disconnect()
