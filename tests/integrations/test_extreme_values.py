"""Nothing stored can break a read (issue 29): the extreme value of every column the edges write from
outside input goes in through the edge itself, then every list and detail endpoint of /api/, and every
admin changelist and change page of those models, still answers."""

import json

import httpx2
import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from agents.models import CALL_COST_MAX_USD, CALL_SUMMARY_MAX_CHARS, CallerSession, LLMCall, Message, Process
from integrations.models import SlackMessage, SlackThread
from integrations.slack.schemas import MAX_ITEMS, MAX_TEXT
from tests.integrations.slack.conftest import envelope
from tests.integrations.vapi import fixture, post_vapi
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

WIDE = "𝔘"  # four bytes in UTF-8, two UTF-16 units: a character column is counted in characters


def width(model, field: str) -> int:
    return model._meta.get_field(field).max_length


@pytest.fixture
def admin(client):
    user = User.objects.create_superuser("root", password="x")
    client.force_login(user)
    return client


def read_everything(server, admin):
    """Every list and detail endpoint of /api/ and every admin page of the models written here: 200."""
    api = [
        "/api/status",
        "/api/processes?limit=1000",
        "/api/sessions?include_ended=true&limit=1000",
        "/api/spawn-tree?all=true&limit=1000",
        *(f"/api/processes/{pid}" for pid in Process.objects.values_list("public_id", flat=True)),
    ]
    for path in api:
        response = httpx2.get(f"{server.url}{path}", timeout=30)
        assert response.status_code == 200, (path, response.text[:300])
        json.loads(response.text)  # the JSON is whole
    for model in (Process, CallerSession, Message, LLMCall, SlackThread, SlackMessage):
        meta = model._meta
        assert admin.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")).status_code == 200
        for pk in model.objects.values_list("pk", flat=True):
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk])
            assert admin.get(url).status_code == 200, url


def test_the_extremes_of_every_column_written_from_outside_can_be_read_back(
    live_tron, chat_setup, slack, admin, settings, queued_tasks
):
    # Tasks wait in the broker, as in production: the caller-memory task of a report this long cannot fit
    # its prompt (agents/memory.py puts the summary and the whole transcript into one message).
    settings.TRON_MAX_MESSAGE_CHARS = 5000  # the largest line, kept small for the test's speed
    longest_line = WIDE * settings.TRON_MAX_MESSAGE_CHARS

    # VAPI: the end-of-call report, each field at its bound (and the smallest cost, in a second call).
    for call_id, cost in (
        ("c" * width(CallerSession, "provider_call_id"), float(CALL_COST_MAX_USD)),
        ("d", 0),
    ):
        report = fixture("end-of-call-report")
        report["message"].update(
            cost=cost,
            endedReason=WIDE * width(Process, "ended_reason"),
            analysis={"summary": WIDE * CALL_SUMMARY_MAX_CHARS},
            call={"id": call_id, "customer": {"number": "+1" + "9" * 13}},
        )
        report["message"]["artifact"] = {
            "messagesOpenAIFormatted": [{"role": "user", "content": longest_line}]
        }
        assert post_vapi(live_tron, report).status_code == 200
    assert Process.objects.filter(call_cost_usd=CALL_COST_MAX_USD).exists()

    # The chat API: the longest message, the longest tool call id, the longest caller ids.
    tool_call_id = WIDE * width(Message, "tool_call_id")
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": tool_call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": tool_call_id, "content": longest_line},
        {"role": "user", "content": longest_line},
    ]
    for headers in ({"X-Request-ID": (WIDE * 1000).encode()}, {"X-Vapi-Caller-Phone": "+1" + "8" * 500}):
        reply = post_chat(live_tron, {"model": "tony", "messages": messages}, headers)
        assert reply.status_code == 200, reply.text
    assert Message.objects.filter(tool_call_id=tool_call_id).exists()

    # Slack: every id and ts at its column's width, the longest text, the most files with the longest names.
    event = {
        "type": "app_mention",
        "user": "U" * width(SlackMessage, "user"),
        "channel": "C" * width(SlackThread, "channel"),
        "team": "T" * width(SlackThread, "team_id"),
        "ts": "1" * 20 + "." + "2" * (width(SlackThread, "thread_ts") - 21),
        "text": "x" * MAX_TEXT,
        "files": [{"name": WIDE * 255}] * MAX_ITEMS,
    }
    callback = envelope(event, event_id="E" * width(SlackMessage, "event_id"))
    del callback["team_id"]
    assert slack.post(callback).status_code == 200
    assert SlackMessage.objects.get().text == "x" * MAX_TEXT
    queued_tasks()  # Slack's answer (an apology: the text is past TRON_MAX_MESSAGE_CHARS); the memory tasks fail

    read_everything(live_tron, admin)


def test_the_elevenlabs_extremes_can_be_read_back(live_tron, chat_setup, admin, settings):
    import websocket

    settings.TRON_MAX_MESSAGE_CHARS = 5000
    socket = websocket.create_connection(live_tron.url.replace("http", "ws") + "/ws/elevenlabs", timeout=30)
    user_id = WIDE * width(
        CallerSession, "caller_id"
    )  # `user-` and this: past the column, shortened by a hash
    socket.send(json.dumps({"type": "conversation_initiation_client_data", "user_id": user_id}))
    assert json.loads(socket.recv())["type"] == "conversation_initiation_metadata"
    socket.send(json.dumps({"type": "contextual_update", "text": WIDE * 2000}))
    socket.send(json.dumps({"type": "user_message", "text": WIDE * (settings.TRON_MAX_MESSAGE_CHARS - 2000)}))
    while json.loads(socket.recv())["type"] != "agent_response":
        pass
    socket.close()

    session = CallerSession.objects.get(channel="elevenlabs")
    assert len(session.caller_id) == width(CallerSession, "caller_id")
    read_everything(live_tron, admin)
