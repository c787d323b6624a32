"""Bad input gets a clear 400; upstream failures get 502/503/504 or an SSE error event; nothing is lost."""

import json
import socket
import time

import httpx2 as httpx
import openai
import pytest

from agents import pricing
from agents.models import LLMCall, Message, Process
from tests.liveserver import post_chat, stream_lines

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"", None, "empty"),
        (b"[1, 2]", None, "JSON object"),
        ({}, "messages", "required"),
        ({"messages": []}, "messages", "at least one"),
        ({"messages": "hello"}, "messages", "valid array"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role", "Field required"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "Input should be"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "valid"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream", "boolean"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature", "number"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature", "less than"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens", "greater than"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0]",
            "not supported",
        ),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "needs `content`"),
        ({"messages": [{"role": "system", "content": None}]}, "messages[0].content", "needs `content`"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "needs",
        ),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "temperature", "finite"),
    ],
)
def test_bad_requests_get_a_400_in_the_openai_envelope(chat_setup, live_tron, body, param, fragment):
    response = post_chat(live_tron, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert not Process.objects.exists()


def test_unknown_fields_are_ignored(chat_setup, live_tron):
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "seed": 7,
        "metadata": {"a": 1},
        "call": {"type": "webCall"},
        "elevenlabs_extra_body": "not an object",
        "user_id": 42,  # ElevenLabs' field: no caller id outside its endpoints
        "logit_bias": {},
    }
    response = post_chat(live_tron, body, headers={"X-Request-ID": "abc"})
    assert response.status_code == 200
    assert response.headers["X-Tron-Caller-ID"] == "req-abc"


def test_null_flags_are_false(chat_setup, live_tron):
    """OpenAI's own request types allow null for `stream` and `include_usage`."""
    plain = post_chat(live_tron, {"messages": [{"role": "user", "content": "hi"}], "stream": None})
    assert plain.status_code == 200
    assert plain.json()["object"] == "chat.completion"

    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": None},
    }
    _, lines = stream_lines(live_tron, body)
    assert lines[-1] == "data: [DONE]"
    assert not any('"usage"' in line for line in lines)


def test_the_sdk_sees_a_bad_request_error_with_the_param(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="tony", messages=[])
    assert info.value.param == "messages"


@pytest.mark.parametrize(
    ("upstream_status", "our_status", "sdk_error"),
    [
        (500, 502, openai.InternalServerError),
        (401, 502, openai.InternalServerError),
        (503, 503, openai.InternalServerError),
        (429, 503, openai.InternalServerError),
    ],
)
def test_upstream_errors_become_gateway_errors(
    sdk, upstream, live_tron, upstream_status, our_status, sdk_error
):
    upstream.reset(status=upstream_status, retry_after="7" if upstream_status == 503 else None)
    response = post_chat(live_tron, {"model": "tony", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == our_status
    error = response.json()["error"]
    assert error["type"] in {"upstream_error", "service_unavailable_error"}
    assert str(upstream_status) in error["message"]
    if upstream_status == 503:
        assert response.headers["Retry-After"] == "7"
    with pytest.raises(sdk_error):
        sdk.chat.completions.create(
            model="tony", messages=[{"role": "user", "content": "again"}], stream=True
        )


def test_an_upstream_timeout_is_a_504(sdk, upstream, settings, live_tron):
    settings.TRON_LLM_TIMEOUT = 1
    upstream.reset(first_token_delay=2.5)
    response = post_chat(live_tron, {"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_silent_before_accepting_is_a_504_before_any_stream(chat_setup, settings, live_tron, stream):
    settings.TRON_LLM_TIMEOUT = 1
    chat_setup.reset(header_delay=2.5)
    response = post_chat(live_tron, {"messages": [{"role": "user", "content": "hi"}], "stream": stream})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    assert Message.objects.get().content == "hi"


def test_an_unreachable_model_is_a_502_and_the_words_are_kept(chat_setup, settings, live_tron):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    for stream in (False, True):
        response = post_chat(
            live_tron, {"messages": [{"role": "user", "content": "anyone?"}], "stream": stream}
        )
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unreachable"
    assert list(Message.objects.values_list("content", flat=True)) == ["anyone?", "anyone?"]
    assert set(LLMCall.objects.values_list("finish_reason", flat=True)) == {"error"}


def test_the_users_words_survive_a_failure_and_the_session_goes_on(sdk, upstream):
    headers = {"X-Request-ID": "unlucky"}
    upstream.reset(status=500)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(
            model="tony", messages=[{"role": "user", "content": "are you there?"}], extra_headers=headers
        )
    upstream.reset()
    completion = sdk.chat.completions.create(
        model="tony", messages=[{"role": "user", "content": "hello?"}], extra_headers=headers
    )
    assert completion.choices[0].message.content == "Hello there!"
    assert list(Message.objects.values_list("role", "content")) == [
        ("user", "are you there?"),
        ("user", "hello?"),
        ("assistant", "Hello there!"),
    ]
    failed, ok = LLMCall.objects.order_by("id")
    assert failed.error and failed.finish_reason == "error" and failed.input_tokens == 0
    assert ok.error == ""
    process = Process.objects.get()
    assert process.status == "running" and process.llm_calls == 2


def test_a_mid_stream_failure_is_an_sse_error_never_a_fake_stop(sdk, upstream):
    upstream.reset(tokens=["one ", "two ", "three"], error_after=2)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in sdk.chat.completions.create(
            model="tony", stream=True, messages=[{"role": "user", "content": "count"}]
        ):
            received.append(chunk)
            assert chunk.choices[0].finish_reason is None
    assert "mid-answer" in str(info.value)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "one two "
    call = LLMCall.objects.get()
    assert call.error and call.finish_reason == "error"
    assert Message.objects.filter(role="assistant").get().content == "one two "


# error_after=0: the upstream answered 200, then failed before its first token; Tron, which answers
# once the upstream has accepted, relays that as the upstream sent it.
@pytest.mark.parametrize("error_after", [0, 1])
def test_raw_stream_ends_with_an_error_event_and_no_done(chat_setup, live_tron, upstream, error_after):
    upstream.reset(tokens=["a", "b"], error_after=error_after)
    response, lines = stream_lines(live_tron, {"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    events = [line for line in lines if line.startswith("data: ")]
    assert "[DONE]" not in events[-1]
    last = json.loads(events[-1][6:])
    assert last["error"]["type"] == "upstream_error"
    assert not any('"finish_reason":"stop"' in e for e in events)


def test_the_raw_stream_matches_the_spec(chat_setup, live_tron, upstream):
    upstream.reset(tokens=["I've ", "been "])
    body = {
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hello Tony!"}],
    }
    response, lines = stream_lines(live_tron, body, "/chat/completions")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["I've ", "been "]
    assert chunks[3]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["total_tokens"] == 44
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_the_role_chunk_goes_out_once_the_model_has_the_request(chat_setup, live_tron, upstream):
    upstream.reset(first_token_delay=1.0, tokens=["late"])
    body = {"stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", f"{live_tron.url}/v1/chat/completions", json=body, timeout=10) as response:
        lines = (line for line in response.iter_lines() if line)
        first = json.loads(next(lines)[6:])
        assert first["choices"][0]["delta"] == {"role": "assistant"}
        assert upstream.last.tokens_sent == 0  # the client did not wait for the model's first token
        assert response.headers["X-Tron-Process-ID"]
        rest = list(lines)
    assert '"content":"late"' in rest[0] and rest[-1] == "data: [DONE]"


def test_a_slow_model_gets_keep_alive_comments(chat_setup, live_tron, upstream, settings):
    settings.TRON_SSE_KEEPALIVE_SECONDS = 1
    upstream.reset(first_token_delay=2.6, tokens=["late"])
    _, lines = stream_lines(live_tron, {"messages": [{"role": "user", "content": "x"}]})
    first_content = next(i for i, line in enumerate(lines) if '"content":"late"' in line)
    assert lines.count(": keep-alive") >= 1
    assert lines.index(": keep-alive") < first_content
    assert lines[-1] == "data: [DONE]"


def test_a_model_slow_to_accept_gets_the_stream_started_and_keep_alives(chat_setup, live_tron, settings):
    settings.TRON_SSE_KEEPALIVE_SECONDS = 1
    chat_setup.reset(header_delay=2.6, tokens=["late"])
    response, lines = stream_lines(live_tron, {"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert (
        '"role":"assistant"' in lines[0]
    )  # answered after TRON_SSE_KEEPALIVE_SECONDS, not at the model's pace
    assert lines.index(": keep-alive") < next(i for i, line in enumerate(lines) if '"content":"late"' in line)
    assert lines[-1] == "data: [DONE]"


def test_a_client_that_disconnects_stops_generation_and_is_billed_partially(chat_setup, live_tron, upstream):
    upstream.reset(tokens=[f"t{i} " for i in range(200)], token_interval=0.02)
    host, port = live_tron.url.removeprefix("http://").split(":")
    body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "talk a lot"}]}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while received.count(b'"content"') < 4:
            data = sock.recv(65536)
            assert data, f"the server closed the stream early: {received!r}"
            received += data
    deadline = time.monotonic() + 10
    while not LLMCall.objects.filter(finished_at__isnull=False).exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the call's row is there from its start; it is finished when the turn records it
    call = LLMCall.objects.get()
    assert call.usage_source == "partial"
    assert call.finish_reason == "cancelled"
    assert 0 < call.output_tokens < 200
    assert call.input_tokens > 0
    assert call.cost_usd == pricing.cost_usd(call.model, call.input_tokens, call.output_tokens) > 0
    deadline = time.monotonic() + 5
    while not upstream.last.disconnected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.last.disconnected  # the upstream generation was stopped, not left running
    assert upstream.last.tokens_sent < 200
    assert Process.objects.get().output_tokens == call.output_tokens
