"""A web process killed mid-stream: its turn's claim lapses with its lease, the caller's next request
on another process is answered, and the lost turn and its open model call are closed as failed."""

import threading
import time

import httpx2
import pytest

from agents.models import LLMCall, Message, Turn
from tests import daphne
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 3


@pytest.fixture
def two_servers(tmp_path, upstream, team):
    upstream.reset(tokens=[f"word{n} " for n in range(400)], token_interval=0.05)
    env = {"OPENAI_BASE_URL": upstream.base_url, "TRON_TURN_LEASE_SECONDS": str(LEASE)}
    with daphne.two_servers(tmp_path, **env) as servers:
        yield servers


def stream_until_words(server, heard: threading.Event):
    body = {
        "model": "tony",
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
    }
    try:
        with httpx2.stream(
            "POST",
            f"{server.url}/v1/chat/completions",
            json=body,
            headers={"X-Request-ID": "ada"},
            timeout=30,
        ) as response:
            for line in response.iter_lines():
                if "word3" in line:
                    heard.set()
    except httpx2.HTTPError:
        pass  # the server was killed under it


def test_a_turn_lost_with_its_web_process_frees_its_caller_and_is_closed_as_failed(two_servers, upstream):
    first, second = two_servers
    heard = threading.Event()
    listener = threading.Thread(target=stream_until_words, args=(first, heard), daemon=True)
    listener.start()
    assert heard.wait(20), "the first turn never streamed"

    first.process.kill()  # mid-stream, without a chance to record anything
    upstream.reset(tokens=["I'm back."])
    started = time.monotonic()
    answer = post_chat(
        second,
        {"model": "tony", "messages": [{"role": "user", "content": "Hello?"}]},
        {"X-Request-ID": "ada"},
    )
    waited = time.monotonic() - started

    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "I'm back."
    assert waited < LEASE + 10  # freed by the lease, not by the 30 s wait for a live turn
    lost, answered = Turn.objects.filter(caller_id="req-ada").order_by("id")
    assert (lost.state, answered.state) == (Turn.State.FAILED, Turn.State.ANSWERED)
    assert lost.error.startswith("Lost mid-turn") and lost.process_id == answered.process_id
    dead_call = LLMCall.objects.get(turn=lost)
    assert (dead_call.finish_reason, dead_call.finished_at is not None) == ("lost", True)
    assert dead_call.process.llm_calls == 2  # both calls counted on the conversation
    words = list(Message.objects.filter(role="user").order_by("id").values_list("content", flat=True))
    assert words == ["Tell me a long story.", "Hello?"]  # the lost turn's words were kept
