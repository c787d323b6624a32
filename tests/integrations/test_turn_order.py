"""One turn at a time per conversation: a caller's second request waits for the first, then sees it."""

import threading
import time

import pytest

from agents.models import LLMCall, Message, Turn
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)


def say(live_tron, words: str, caller: str = "req-same", results: dict | None = None):
    response = post_chat(
        live_tron, {"messages": [{"role": "user", "content": words}]}, {"X-Request-ID": caller}
    )
    if results is not None:
        results[words] = response
    return response


def in_background(live_tron, words: str) -> tuple[threading.Thread, dict]:
    results: dict = {}
    thread = threading.Thread(target=say, args=(live_tron, words, "req-same", results))
    thread.start()
    return thread, results


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_second_request_waits_for_the_first_and_sees_its_whole_exchange(chat_setup, live_tron, upstream):
    upstream.queue({"tokens": ["first answer"], "first_token_delay": 0.5}, {"tokens": ["second answer"]})
    first, results = in_background(live_tron, "one")
    wait_until(lambda: len(upstream.requests) == 1)

    second = say(live_tron, "two")
    first.join()

    assert results["one"].status_code == second.status_code == 200
    assert [m["content"] for m in upstream.requests[1].body["messages"][1:]] == ["one", "first answer", "two"]
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == [
        "one",
        "first answer",
        "two",
        "second answer",
    ]


def test_the_wait_is_bounded_and_the_refused_words_are_stored_nowhere(
    chat_setup, live_tron, upstream, settings
):
    settings.TRON_TURN_WAIT_SECONDS = 0
    upstream.queue({"tokens": ["slow answer"], "first_token_delay": 0.5})
    first, results = in_background(live_tron, "one")
    wait_until(lambda: len(upstream.requests) == 1)

    second = say(live_tron, "two")
    first.join()

    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conversation_busy"
    assert results["one"].status_code == 200
    assert list(Message.objects.order_by("id").values_list("content", flat=True)) == ["one", "slow answer"]


def test_other_callers_do_not_wait(chat_setup, live_tron, upstream):
    upstream.queue({"tokens": ["slow answer"], "first_token_delay": 1.0})
    first, results = in_background(live_tron, "one")
    wait_until(lambda: len(upstream.requests) == 1)

    other = say(live_tron, "hello", "req-other")

    assert other.status_code == 200 and "one" not in results  # answered while the first still runs
    first.join()


def test_a_turn_whose_client_left_lets_the_next_one_in_at_once(chat_setup, live_tron, upstream):
    from tests.integrations.test_upstream_misbehaving import send_and_leave

    upstream.queue({"tokens": ["never heard"], "header_delay": 5.0})
    send_and_leave(
        live_tron, {"messages": [{"role": "user", "content": "one"}]}, "same", until=lambda: upstream.requests
    )
    wait_until(lambda: Turn.objects.filter(caller_id="req-same", state=Turn.State.CANCELLED).exists())

    started = time.monotonic()
    assert say(live_tron, "two").status_code == 200
    assert time.monotonic() - started < 5  # not held until the first model call would have ended
    assert [m["content"] for m in upstream.last.body["messages"][1:]] == ["one", "two"]


def test_two_first_requests_at_once_never_interleave(chat_setup, live_tron, upstream):
    upstream.reset(tokens=["answer"], first_token_delay=0.2)
    start = threading.Barrier(2)
    results: dict = {}

    def first_words(words):
        start.wait()
        say(live_tron, words, results=results)

    threads = [threading.Thread(target=first_words, args=(w,)) for w in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status_code for r in results.values()] == [200, 200]
    lines = list(Message.objects.order_by("id").values_list("role", "content"))
    assert [role for role, _ in lines] == ["user", "assistant", "user", "assistant"]
    later = lines[2][1]
    last_prompt = [m["content"] for m in upstream.last.body["messages"][1:]]
    assert last_prompt == [lines[0][1], "answer", later]  # the later one saw the whole first exchange


def test_a_second_request_never_overtakes_a_first_whose_model_is_slow_to_start(
    chat_setup, live_tron, upstream
):
    upstream.queue({"tokens": ["first answer"], "header_delay": 1.5}, {"tokens": ["second answer"]})
    first, results = in_background(live_tron, "one")
    wait_until(lambda: len(upstream.requests) == 1)

    second = say(live_tron, "two")
    first.join()

    assert results["one"].status_code == second.status_code == 200
    assert len(upstream.requests) == 2  # no model call was made and dropped
    assert [m["content"] for m in upstream.requests[1].body["messages"][1:]] == ["one", "first answer", "two"]
    assert list(LLMCall.objects.order_by("id").values_list("finish_reason", flat=True)) == ["stop", "stop"]
