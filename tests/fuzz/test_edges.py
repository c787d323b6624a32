"""Generated payloads thrown at the running edges (the VAPI webhook, Slack's events, the ElevenLabs
socket) through a real server: never a 5xx, never a dropped socket, never a stored value that breaks a
read. Tasks the edges queue wait in the broker, as in production (the worker is not the edge)."""

import json

import pytest
import websocket
from hypothesis import given
from hypothesis import strategies as st

from integrations.models import SlackMessage
from tests.integrations.vapi import post_vapi

from .checks import assert_an_answer_not_a_failure, assert_nothing_stored_is_garbage
from .strategies import bodies, encode, frames, header_values, slack_payloads, vapi_payloads

pytestmark = pytest.mark.django_db(transaction=True)


def test_vapi_messages(live_tron, team, queued_tasks):
    @given(bodies(vapi_payloads))
    def post(body):
        response = post_vapi(live_tron, body)
        assert_an_answer_not_a_failure(response)
        assert_nothing_stored_is_garbage(live_tron)

    post()


def test_slack_events_signed_and_not(slack, queued_tasks, live_tron):
    @given(bodies(slack_payloads), st.none() | st.tuples(header_values, header_values))
    def post(body, forged):
        if forged is None:
            response = slack.post(body)
        else:
            timestamp, signature = (value.strip().replace("\x7f", "").encode("latin-1") for value in forged)
            headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
            response = slack.post(body, signed=False, headers=headers)
            assert response.status_code == 401
        assert_an_answer_not_a_failure(response)
        if response.status_code != 200:
            assert not SlackMessage.objects.filter(status="answered").exists()
        assert_nothing_stored_is_garbage(live_tron)

    post()


def test_socket_frames(live_tron, chat_setup):
    url = live_tron.url.replace("http://", "ws://") + "/v1/convai/conversation"

    @given(
        st.lists(
            st.one_of(st.builds(encode, frames, ascii_only=st.just(True)), st.binary(max_size=20)), max_size=3
        )
    )
    def converse(sent):
        socket = websocket.create_connection(url, timeout=30)
        try:
            for data in sent:
                try:
                    socket.send(data.decode())  # a text frame: JSON, or not
                except UnicodeDecodeError:
                    socket.send_binary(data)  # a text frame must be UTF-8 (RFC 6455)
            socket.send(json.dumps({"type": "user_message", "text": "still there?"}))
            while True:  # the socket stays open, and the turn after whatever came before still works
                opcode, data = socket.recv_data()
                assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
                message = json.loads(data)
                if message["type"] == "error":
                    assert message["error_event"]["code"] != 1011, message  # a failure of ours
                if message["type"] == "agent_response":
                    break
        finally:
            socket.close()
        assert_nothing_stored_is_garbage(live_tron)

    converse()
