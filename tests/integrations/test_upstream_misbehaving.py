"""An upstream that misbehaves: what is sound is relayed, the rest fails cleanly, and the turn is recorded.

Found by an adversarial review: before these fixes, each case below either hung the client's stream
(an exception after the headers), lost the turn's record, broke /api/processes, or answered an empty
"stop" for no answer at all.
"""

import json
import socket
import time

import pytest

from agents.models import CallerSession, LLMCall, Message, Process, Turn
from tests.liveserver import post_chat, stream_lines

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def content_of(lines) -> str:
    text = ""
    for line in lines:
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    return text


@pytest.mark.parametrize("stream", [True, False])
def test_a_surrogate_pair_split_over_two_chunks_becomes_replacement_characters(chat_setup, live_tron, stream):
    chat_setup.reset(tokens=["Hi \ud83d", "\ude00 there"])
    if stream:
        _, lines = stream_lines(live_tron, HELLO)
        assert lines[-1] == "data: [DONE]"
        text = content_of(lines)
    else:
        text = post_chat(live_tron, HELLO).json()["choices"][0]["message"]["content"]
    assert text == "Hi \ufffd\ufffd there"
    assert Message.objects.get(role="assistant").content == text
    assert LLMCall.objects.get().usage_source == "provider"


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "12", "completion_tokens": 3},
        {"prompt_tokens": 1.5, "completion_tokens": 3},
        {"prompt_tokens": -5, "completion_tokens": 3},
        {"prompt_tokens": 1e23, "completion_tokens": 3},
        {"prompt_tokens": 12, "completion_tokens": True},
    ],
)
def test_usage_that_is_not_token_counts_is_estimated(chat_setup, live_tron, client, usage):
    chat_setup.reset(usage=usage)
    _, lines = stream_lines(live_tron, {**HELLO, "stream_options": {"include_usage": True}})
    sent = json.loads(lines[-2][6:])["usage"]
    call = LLMCall.objects.get()
    assert call.usage_source == "estimated"
    assert sent == {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "total_tokens": call.input_tokens + call.output_tokens,
    }
    assert call.input_tokens > 0 and call.output_tokens > 0
    assert Process.objects.get().input_tokens == call.input_tokens
    assert client.get("/api/processes").status_code == 200


def test_content_that_is_not_text_is_left_out(chat_setup, live_tron):
    chat_setup.reset(tokens=["Hi", 5, {"x": 1}, " there"])
    _, lines = stream_lines(live_tron, HELLO)
    assert lines[-1] == "data: [DONE]"
    assert content_of(lines) == "Hi there" == Message.objects.get(role="assistant").content


@pytest.mark.parametrize("model", ["m" * 300, {"name": "x"}])
def test_an_odd_model_name_does_not_cost_the_record(chat_setup, live_tron, model):
    chat_setup.reset(model=model)
    assert post_chat(live_tron, HELLO).status_code == 200
    recorded = LLMCall.objects.get().model
    assert recorded == ("m" * 120 if isinstance(model, str) else "gpt-4o-mini")


@pytest.mark.parametrize(
    "raw",
    [
        ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
        ("text/event-stream", b""),
        ("text/event-stream", b"data: [DONE]\n\n"),
        ("application/json", b'{"id": "x", "object": "chat.completion", "choices": []}'),
    ],
)
def test_a_200_without_a_stream_is_an_error_not_an_empty_answer(chat_setup, live_tron, raw):
    chat_setup.reset(raw=raw)
    response = post_chat(live_tron, HELLO)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"

    _, lines = stream_lines(live_tron, HELLO)  # the 200 went out when the upstream answered
    assert "data: [DONE]" not in lines
    assert json.loads(lines[-1][6:])["error"]["code"] == "upstream_error"
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "user"]


def test_a_chunk_nested_too_deep_is_an_unreadable_answer(chat_setup, live_tron):
    chat_setup.reset(raw=("text/event-stream", b"data: " + b"[" * 5000 + b"]" * 5000 + b"\n\n"))
    response = post_chat(live_tron, HELLO)
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "The model's server sent an unreadable answer."


def test_a_server_that_ignores_stream_is_relayed_all_the_same(chat_setup, live_tron):
    chat_setup.reset(ignore_stream=True, prompt_tokens=9)
    _, lines = stream_lines(live_tron, {**HELLO, "stream_options": {"include_usage": True}})
    assert lines[-1] == "data: [DONE]"
    assert content_of(lines) == "Hello there!"
    call = LLMCall.objects.get()
    assert (call.usage_source, call.input_tokens, call.output_tokens) == ("provider", 9, 3)


def test_a_stream_labelled_json_is_still_a_stream(chat_setup, live_tron):
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    chat_setup.reset(raw=("application/json", body))
    _, lines = stream_lines(live_tron, HELLO)
    assert lines[-1] == "data: [DONE]"
    assert content_of(lines) == "Hi"


def test_a_failure_of_ours_mid_stream_ends_it_with_an_error_event(chat_setup, live_tron, monkeypatch):
    import integrations.chat_api

    def broken(end):
        raise RuntimeError("a bug")

    monkeypatch.setattr(integrations.chat_api, "_usage", broken)
    _, lines = stream_lines(live_tron, {**HELLO, "stream_options": {"include_usage": True}})
    assert json.loads(lines[-1][6:])["error"]["type"] == "server_error"
    assert "data: [DONE]" not in lines
    assert LLMCall.objects.get().finish_reason == "stop"  # the turn itself was recorded


def send_and_leave(live_tron, body: dict, request_id: str, until) -> None:
    """POST on a raw socket and hang up once `until()` is true (the server has got that far)."""
    host, port = live_tron.url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-Request-ID: {request_id}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        deadline = time.monotonic() + 10
        while not until() and time.monotonic() < deadline:
            time.sleep(0.005)


def wait_for_calls(n: int) -> list[LLMCall]:
    """The model calls, once `n` have ended (a call's row is there from its start)."""
    deadline = time.monotonic() + 10
    while LLMCall.objects.filter(finished_at__isnull=False).count() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(LLMCall.objects.all())


def test_a_caller_who_leaves_before_the_model_answers_keeps_the_words_and_pays_nothing(chat_setup, live_tron):
    chat_setup.reset(header_delay=5.0)  # longer than any wait for the server to notice a hang-up
    for n in range(3):
        send_and_leave(
            live_tron,
            {"messages": [{"role": "user", "content": f"words {n}"}]},
            f"leaver-{n}",
            until=lambda n=n: len(chat_setup.requests) > n,
        )  # the upstream has the request
    calls = wait_for_calls(3)
    assert sorted(Message.objects.values_list("content", flat=True)) == ["words 0", "words 1", "words 2"]
    assert {(c.usage_source, c.finish_reason, c.input_tokens, c.output_tokens) for c in calls} == {
        ("partial", "cancelled", 0, 0)
    }


def test_a_caller_who_leaves_while_the_turn_begins_keeps_the_words(chat_setup, live_tron, monkeypatch):
    import threading

    from agents import turn_store

    real_claim = turn_store.claim
    in_claim = threading.Event()

    def slow_claim(*args):
        in_claim.set()
        time.sleep(0.3)  # a slow transaction: the client hangs up meanwhile
        return real_claim(*args)

    monkeypatch.setattr(turn_store, "claim", slow_claim)
    chat_setup.reset(header_delay=5.0)
    send_and_leave(
        live_tron, {"messages": [{"role": "user", "content": "bye"}]}, "early", until=in_claim.is_set
    )
    deadline = time.monotonic() + 10
    while not released("req-early") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert released("req-early")  # the turn was recorded and its caller free for the next one
    assert Message.objects.get().content == "bye"
    call = LLMCall.objects.get()  # opened as the turn began, closed unsent: nothing used
    assert (call.finish_reason, call.input_tokens, call.output_tokens) == ("cancelled", 0, 0)
    assert Turn.objects.get().state == Turn.State.CANCELLED
    assert not chat_setup.requests  # the model was never called


def released(caller_id: str) -> bool:
    """The caller has no turn waiting or running."""
    return (
        Turn.objects.filter(caller_id=caller_id).exists()
        and not Turn.objects.live().filter(caller_id=caller_id).exists()
    )


def test_a_retry_that_sends_its_own_history_stores_the_words_once(chat_setup, live_tron):
    history = [
        {"role": "system", "content": "Call context."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi, how can I help?"},
        {"role": "user", "content": "wait"},
        {"role": "user", "content": "what is the plan"},
    ]
    headers = {"X-Vapi-Call-ID": "call-retry"}
    post_chat(live_tron, {"messages": history[:2]}, headers)
    chat_setup.reset(status=503)
    assert post_chat(live_tron, {"messages": history}, headers).status_code == 503
    chat_setup.reset()
    assert post_chat(live_tron, {"messages": history}, headers).status_code == 200
    assert list(Message.objects.order_by("id").values_list("role", "content")) == [
        ("user", "hello"),
        ("assistant", "Hello there!"),
        ("user", "wait"),
        ("user", "what is the plan"),
        ("assistant", "Hello there!"),
    ]


async def test_a_turn_closed_before_it_began_stores_nothing_and_calls_no_model(chat_setup):
    """A consumer gone before its turn's task ran at all was never answered anything: the turn leaves no
    trace (no line to wait in, no words, no call)."""
    from agents.callers import Caller
    from agents.dbthread import db_read  # hands a pooled PostgreSQL connection back after reading
    from agents.principals import Principal, Trust
    from agents.runtime import TurnInput, run_turn

    caller = Caller("req-instant")
    events = run_turn(
        TurnInput([{"role": "user", "content": "gone"}], caller, Principal(Trust.PUBLIC, "req-instant"))
    )
    await events.aclose()  # before the loop ran the turn's task at all
    await events.aclose()  # a second close records nothing more

    def recorded():
        return (
            Turn.objects.count(),
            CallerSession.objects.count(),
            LLMCall.objects.count(),
            Message.objects.count(),
        )

    assert await db_read(recorded)() == (0, 0, 0, 0)
    assert not chat_setup.requests
