"""ElevenLabs' Conversational AI protocol over a WebSocket, Tron as the agent: with Channels'
WebsocketCommunicator against the ASGI application, and with a real WebSocket client against a server."""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator
from django_q.conf import Conf

from agents.models import CallerMemory, CallerSession, Channel, LLMCall, Message, Process
from integrations import elevenlabs_ws

pytestmark = pytest.mark.django_db(transaction=True)

INIT = {
    "type": "conversation_initiation_client_data",
    "conversation_config_override": {},
    "dynamic_variables": {},
}


async def connect(application, path="/v1/convai/conversation", subprotocols=("convai",), **extra):
    communicator = WebsocketCommunicator(application, path, subprotocols=list(subprotocols), **extra)
    connected, subprotocol = await communicator.connect(timeout=5)
    return communicator, connected, subprotocol


async def started(application, path="/v1/convai/conversation?agent_id=maya", init=None):
    """A conversation past its handshake: (communicator, the metadata message)."""
    communicator, connected, _ = await connect(application, path)
    assert connected
    await communicator.send_json_to(init or INIT)
    return communicator, await communicator.receive_json_from(timeout=5)


async def reply(communicator, *, until="agent_response") -> list[dict]:
    """The messages up to and including the first of type `until` (pings skipped)."""
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=10)
        if message["type"] == "ping":
            continue
        messages.append(message)
        if message["type"] == until:
            return messages


def parts(messages) -> list[tuple[str, str]]:
    return [
        (m["text_response_part"]["type"], m["text_response_part"]["text"])
        for m in messages
        if m["type"] == "agent_chat_response_part"
    ]


async def test_the_handshake_accepts_convai_and_answers_with_the_conversation_metadata(
    application, chat_setup
):
    communicator, connected, subprotocol = await connect(application)
    assert connected and subprotocol == "convai"
    await communicator.send_json_to(INIT)
    metadata = await communicator.receive_json_from(timeout=5)

    assert metadata["type"] == "conversation_initiation_metadata"
    event = metadata["conversation_initiation_metadata_event"]
    assert event["conversation_id"].startswith("conv_")
    assert event["agent_output_audio_format"] == event["user_input_audio_format"] == "pcm_16000"
    await communicator.disconnect()


async def test_a_user_message_streams_parts_then_the_whole_answer(application, chat_setup, team):
    chat_setup.reset(tokens=["Hello", " from", " Maya"])
    communicator, metadata = await started(application)
    await communicator.send_json_to({"type": "user_message", "text": "Hi!"})
    messages = await reply(communicator)

    assert parts(messages) == [
        ("start", ""),
        ("delta", "Hello"),
        ("delta", " from"),
        ("delta", " Maya"),
        ("stop", ""),
    ]
    final = messages[-1]["agent_response_event"]
    assert final["agent_response"] == "Hello from Maya"
    assert {m["text_response_part"]["event_id"] for m in messages[:-1]} == {final["event_id"]}
    assert chat_setup.last.body["messages"][0]["content"] == "You are Maya, the CMO."  # agent_id picks Maya
    await communicator.disconnect()

    session = await CallerSession.objects.select_related("process").aget(channel=Channel.ELEVENLABS)
    conversation_id = metadata["conversation_initiation_metadata_event"]["conversation_id"]
    assert (session.caller_id, session.channel) == (f"conv-{conversation_id}", Channel.ELEVENLABS)
    process = session.process
    assert process.channel == Channel.ELEVENLABS and process.llm_calls == 1 and process.input_tokens == 42
    assert process.status == Process.Status.COMPLETED and session.ended_at is not None  # the socket closed


async def test_each_socket_is_a_process_of_its_own_and_turns_continue_it(application, chat_setup, team):
    communicator, _ = await started(application)
    for text in ("one", "two"):
        await communicator.send_json_to({"type": "user_message", "text": text})
        await reply(communicator)
    await communicator.disconnect()
    second, _ = await started(application)
    await second.disconnect()

    first_process, second_process = [
        p async for p in Process.objects.filter(channel=Channel.ELEVENLABS).order_by("id")
    ]
    assert first_process.llm_calls == 2
    assert [m["content"] for m in chat_setup.requests[1].body["messages"][1:]] == [
        "one",
        "Hello there!",
        "two",
    ]
    assert first_process.pk != second_process.pk
    assert first_process.status == second_process.status == Process.Status.COMPLETED


async def test_a_new_user_message_interrupts_the_streaming_reply(application, chat_setup, team):
    chat_setup.queue(
        {"tokens": [f" w{i}" for i in range(50)], "token_interval": 0.05},
        {"tokens": ["Sure, stopping."]},
    )
    communicator, _ = await started(application)
    await communicator.send_json_to({"type": "user_message", "text": "Tell me a long story"})
    first = []
    while len(parts(first)) < 3:  # the reply has started streaming
        first.append(await communicator.receive_json_from(timeout=10))

    await communicator.send_json_to({"type": "user_message", "text": "Stop, please"})
    rest = await reply(communicator)

    interrupted = first[0]["text_response_part"]["event_id"]
    interruption = next(m for m in rest if m["type"] == "interruption")
    assert interruption["interruption_event"]["event_id"] == interrupted
    assert rest[-1]["agent_response_event"]["agent_response"] == "Sure, stopping."
    assert rest[-1]["agent_response_event"]["event_id"] > interrupted
    assert not any(
        m["type"] == "agent_response" and m["agent_response_event"]["event_id"] == interrupted for m in rest
    )
    await communicator.disconnect()

    lines = [(m.role, m.content) async for m in Message.objects.filter(process__channel=Channel.ELEVENLABS)]
    assert lines[0] == ("user", "Tell me a long story")
    assert lines[1][0] == "assistant" and 0 < len(lines[1][1]) < len("".join(f" w{i}" for i in range(50)))
    assert lines[2:] == [("user", "Stop, please"), ("assistant", "Sure, stopping.")]
    assert await LLMCall.objects.filter(finish_reason="cancelled").acount() == 1
    for _ in range(60):  # the upstream notices at its next token that the stream was closed
        if chat_setup.requests[0].disconnected:
            break
        await asyncio.sleep(0.05)
    assert chat_setup.requests[0].disconnected and not chat_setup.requests[0].finished


async def test_contextual_updates_are_context_for_the_following_turns(application, chat_setup, team):
    communicator, _ = await started(application)
    await communicator.send_json_to({"type": "contextual_update", "text": "The user is on the pricing page."})
    await communicator.send_json_to({"type": "user_activity"})
    await communicator.send_json_to({"type": "user_message", "text": "How much is it?"})
    await reply(communicator)
    await communicator.disconnect()

    system = [m["content"] for m in chat_setup.requests[0].body["messages"] if m["role"] == "system"]
    assert any("The user is on the pricing page." in text for text in system)
    users = Message.objects.filter(role="user", process__channel=Channel.ELEVENLABS)
    assert [m.content async for m in users] == ["How much is it?"]


async def test_pings_go_out_and_pongs_are_taken(application, chat_setup, team, monkeypatch):
    monkeypatch.setattr(elevenlabs_ws, "PING_SECONDS", 0.05)
    communicator, _ = await started(application)
    ping = await communicator.receive_json_from(timeout=5)
    assert ping["type"] == "ping" and isinstance(ping["ping_event"]["event_id"], int)
    await communicator.send_json_to({"type": "pong", "event_id": ping["ping_event"]["event_id"]})
    while (later := await communicator.receive_json_from(timeout=5))["type"] != "ping" or later["ping_event"][
        "ping_ms"
    ] is None:
        await communicator.send_json_to({"type": "pong", "event_id": later["ping_event"]["event_id"]})
    assert later["ping_event"]["ping_ms"] >= 0
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame, words",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"text": "hi"}', "needs a `type`"),
        ('{"type": "teleport"}', "Unknown message type"),
        ('{"type": "user_message", "text": 5}', "needs its `text`"),
        ('{"type": "contextual_update"}', "needs its `text`"),
        # hostile frames (issue 29): they closed the socket (1011) or broke every later turn
        ('{"type": ["user_message"]}', "`type` is the name of a message type"),
        ('{"type": {"a": 1}}', "`type` is the name of a message type"),
        ('{"type": "user_message", "text": ' + "[" * 5000 + "]" * 5000 + "}", "not valid JSON"),
        ('{"type": "user_message", "text": "hi \\ud800"}', "not valid JSON"),
        ('{"type": "contextual_update", "text": "\\udfff page"}', "not valid JSON"),
        ('{"type": "contextual_update", "text": "page", "context_id": [1]}', "context_id"),
        ('{"type": "pong", "event_id": true}', "event_id"),
        ('{"type": "pong", "event_id": 1e400}', "event_id"),
        ('{"type": "multimodal_message", "text": {"text": 5}}', "text"),
        ('{"type": "user_message", "text": NaN}', "not valid JSON"),
        ('"user_message"', "JSON object"),
        ('{"type": "user_message", "text": "a\\u0000b"}', "`text`"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_conversation_goes_on(
    application, chat_setup, team, frame, words
):
    communicator, _ = await started(application)
    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and words in error["error_event"]["message"]
    assert error["error_event"]["error_type"] == "invalid_message"

    await communicator.send_json_to({"type": "user_message", "text": "still there?"})
    assert (await reply(communicator))[-1]["type"] == "agent_response"
    await communicator.disconnect()


async def test_audio_frames_are_ignored(application, chat_setup, team):
    communicator, _ = await started(application)
    await communicator.send_json_to({"user_audio_chunk": "AAAA"})
    await communicator.send_to(bytes_data=b"\x00\x01")  # a binary frame: not the protocol, answered
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and "binary" in error["error_event"]["message"]
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_client_that_skips_the_handshake_still_gets_the_metadata_first(application, chat_setup, team):
    communicator, connected, _ = await connect(application, "/ws/elevenlabs")
    assert connected
    await communicator.send_json_to({"type": "user_message", "text": "Hi"})
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "conversation_initiation_metadata"
    assert (await reply(communicator))[-1]["agent_response_event"]["agent_response"] == "Hello there!"
    await communicator.disconnect()


async def test_a_user_id_makes_the_caller_and_a_newer_conversation_replaces_the_older(
    application, chat_setup, team
):
    first, _ = await started(application, init={**INIT, "user_id": "ada"})
    second, _ = await started(application, init={**INIT, "user_id": "ada"})

    notice = await first.receive_json_from(timeout=5)
    assert notice["type"] == "error" and notice["error_event"]["error_type"] == "replaced"
    assert (await first.receive_output(timeout=5))["type"] == "websocket.close"
    await second.send_json_to({"type": "user_message", "text": "Hi"})
    await reply(second)
    await second.disconnect()

    older, newer = [s async for s in CallerSession.objects.filter(channel=Channel.ELEVENLABS).order_by("id")]
    assert older.caller_id == newer.caller_id == "elevenlabs-user-ada"
    assert older.ended_at is not None and older.process_id != newer.process_id


async def test_when_the_socket_closes_the_callers_memory_is_updated(
    application, chat_setup, team, monkeypatch
):
    chat_setup.queue({"tokens": ["Nice to meet you."]}, {"tokens": ["Ada. Likes tea."]})
    communicator, _ = await started(application, init={**INIT, "user_id": "ada"})
    await communicator.send_json_to({"type": "user_message", "text": "I'm Ada and I like tea."})
    await reply(communicator)
    await communicator.disconnect()

    memory = await CallerMemory.objects.aget(caller_id="elevenlabs-user-ada")
    assert memory.notes == "Ada. Likes tea."
    assert await Process.objects.filter(channel=Channel.MEMORY, status=Process.Status.COMPLETED).acount() == 1
    assert Conf.SYNC  # the task ran at once (tests); a worker runs it in production


async def test_with_the_chat_key_set_the_socket_needs_it(application, chat_setup, team, settings):
    settings.TRON_CHAT_API_KEY = "k3y"
    _, connected, _ = await connect(application)
    assert not connected
    for path, subprotocols, headers in [
        ("/v1/convai/conversation?token=k3y", ["convai"], []),
        ("/v1/convai/conversation", ["convai", "bearer.k3y"], []),
        ("/v1/convai/conversation", [], [(b"authorization", b"Bearer k3y")]),
    ]:
        communicator, connected, _ = await connect(application, path, subprotocols, headers=headers)
        assert connected
        await communicator.disconnect()


async def test_the_socket_key_opens_the_socket_and_never_the_chat_api(
    application, chat_setup, team, settings, async_client
):
    """The key a web page holds (TRON_SOCKET_KEY) lets its users talk, but cannot name a caller on the
    chat API, where the chat key vouches for ids."""
    settings.TRON_CHAT_API_KEY, settings.TRON_SOCKET_KEY = "server-k3y", "page-k3y"
    for token, opens in [("page-k3y", True), ("server-k3y", True), ("other", False)]:
        communicator, connected, _ = await connect(application, f"/v1/convai/conversation?token={token}")
        assert connected == opens, token
        if connected:
            await communicator.disconnect()
    body = {"model": "tony", "user": "ada", "messages": [{"role": "user", "content": "hi"}]}
    refused = await async_client.post(
        "/v1/chat/completions", body, content_type="application/json", HTTP_AUTHORIZATION="Bearer page-k3y"
    )
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


async def test_the_socket_key_alone_closes_the_socket_to_others(application, chat_setup, team, settings):
    settings.TRON_SOCKET_KEY = "page-k3y"
    _, connected, _ = await connect(application)
    assert not connected
    communicator, connected, _ = await connect(application, "/v1/convai/conversation?token=page-k3y")
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize("path", ["/ws/nothing", "/", "/v1/convai/conversation/extra", "/admin/"])
async def test_unknown_websocket_paths_are_refused_not_a_server_error(application, path):
    communicator = WebsocketCommunicator(application, path)
    connected, code = await communicator.connect(timeout=5)
    assert not connected and code in (403, 404, 1000, None)


# -- a real client against a running server --------------------------------------------------------


def ws_url(server, path):
    return server.url.replace("http://", "ws://") + path


def test_a_real_websocket_client_holds_a_conversation(live_tron, chat_setup, team):
    import websocket

    chat_setup.reset(tokens=["Hi", " there"])
    ws = websocket.create_connection(
        ws_url(live_tron, "/v1/convai/conversation?agent_id=tony"), subprotocols=["convai"], timeout=10
    )
    try:
        assert ws.getsubprotocol() == "convai"
        ws.send(json.dumps(INIT))
        assert json.loads(ws.recv())["type"] == "conversation_initiation_metadata"
        ws.send(json.dumps({"type": "user_message", "text": "Hello"}))
        received = []
        while not received or received[-1]["type"] != "agent_response":
            received.append(json.loads(ws.recv()))
    finally:
        ws.close()
    assert parts(received) == [("start", ""), ("delta", "Hi"), ("delta", " there"), ("stop", "")]
    assert received[-1]["agent_response_event"]["agent_response"] == "Hi there"
    # The server ends the conversation when the socket closes, then its memory writer runs (inline, as
    # tests run tasks): let both finish writing before the test database is flushed (on PostgreSQL the
    # flush deadlocked with those writes).
    ended = (Process.Status.COMPLETED, Process.Status.FAILED)
    wait_for(lambda: Process.objects.filter(channel=Channel.ELEVENLABS, status__in=ended).exists())
    wait_for(lambda: Process.objects.filter(channel=Channel.MEMORY, status__in=ended).exists())


@pytest.mark.parametrize("path", ["/ws/nothing", "/v1/convai"])
def test_a_real_client_is_refused_an_unknown_path_with_a_403(live_tron, path):
    import websocket

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url(live_tron, path), timeout=10)
    assert refused.value.status_code in (403, 404)


def wait_for(condition, timeout=10):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_process_completes_when_a_real_client_goes_away(live_tron, chat_setup, team):
    import websocket

    ws = websocket.create_connection(ws_url(live_tron, "/ws/elevenlabs"), timeout=10)
    ws.send(json.dumps(INIT))
    ws.recv()
    ws.close()
    wait_for(
        lambda: Process.objects.filter(channel=Channel.ELEVENLABS, status=Process.Status.COMPLETED).exists()
    )


async def test_a_failed_model_call_is_an_error_message_and_the_conversation_goes_on(
    application, chat_setup, team
):
    chat_setup.queue({"status": 503}, {"tokens": ["Back again."]})
    communicator, _ = await started(application)
    await communicator.send_json_to({"type": "user_message", "text": "Hi"})
    failed = await reply(communicator, until="error")
    assert (
        failed[-1]["error_event"]["code"] == 1013 and failed[-1]["error_event"]["message"]
    )  # 503 upstream: try again later

    await communicator.send_json_to({"type": "user_message", "text": "Hi again"})
    assert (await reply(communicator))[-1]["agent_response_event"]["agent_response"] == "Back again."
    await communicator.disconnect()
