import pytest

from agents.models import CallerSession
from tests.liveserver import post_chat, stream_lines

pytestmark = pytest.mark.django_db(transaction=True)


def post(live_tron, body, headers=None):
    return post_chat(live_tron, body, headers, path="/v1/elevenlabs-llm")


def test_it_speaks_the_same_protocol_with_user_id_as_caller(chat_setup, live_tron):
    body = {
        "messages": [
            {"role": "system", "content": "ElevenLabs agent prompt"},
            {"role": "user", "content": "Hello!"},
        ],
        "user_id": "el-user-7",
        "elevenlabs_extra_body": {"plan": "pro"},
    }
    response = post(live_tron, body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello there!"
    session = CallerSession.objects.get()
    assert (session.caller_id, session.channel) == ("elevenlabs-user-el-user-7", "elevenlabs")


def test_it_streams(chat_setup, live_tron):
    _, lines = stream_lines(
        live_tron, {"messages": [{"role": "user", "content": "Hi"}]}, "/v1/elevenlabs-llm"
    )
    assert lines[-1] == "data: [DONE]"


def test_a_conversation_id_keeps_turns_together_without_a_user_id(chat_setup, live_tron):
    for _ in range(2):
        post(live_tron, {"messages": [{"role": "user", "content": "Hi"}]}, {"X-Conversation-ID": "conv9"})
    session = CallerSession.objects.get()
    assert session.caller_id == "conv-conv9"
    assert session.process.llm_calls == 2


def test_the_server_url_may_be_used_as_a_base_url(chat_setup, live_tron):
    body = {"messages": [{"role": "user", "content": "Hi"}], "user_id": "u1"}
    response = post_chat(live_tron, body, path="/v1/elevenlabs-llm/chat/completions")
    assert response.status_code == 200
    assert CallerSession.objects.get().channel == "elevenlabs"


def test_a_numeric_user_id_is_a_caller_too(chat_setup, live_tron):
    response = post(live_tron, {"messages": [{"role": "user", "content": "Hi"}], "user_id": 5})
    assert response.status_code == 200
    assert CallerSession.objects.get().caller_id == "elevenlabs-user-5"
