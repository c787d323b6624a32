"""One turn at a time per conversation: a caller's second request waits for the first, sees its whole
exchange, and the transcript never interleaves; the wait is bounded; other callers never wait."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from agents import turn_locks
from agents.models import Message, TurnLock

pytestmark = pytest.mark.django_db(transaction=True)


def say(sdk, text, caller="ada"):
    return sdk.chat.completions.create(
        model="tony", messages=[{"role": "user", "content": text}], extra_headers={"X-Request-ID": caller}
    )


def _wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_second_request_waits_for_the_first_and_sees_its_exchange(sdk, upstream):
    upstream.reset(first_token_delay=0.5)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(say, sdk, "My name is Ada.")
        _wait_for(lambda: len(upstream.requests) == 1)  # the first is with the model
        second = pool.submit(say, sdk, "What is my name?")
        first.result(), second.result()
    prompt = [m["content"] for m in upstream.requests[1].body["messages"]]
    assert prompt[-3:] == ["My name is Ada.", "Hello there!", "What is my name?"]
    transcript = list(Message.objects.order_by("id").values_list("role", "content"))
    assert transcript == [
        ("user", "My name is Ada."),
        ("assistant", "Hello there!"),
        ("user", "What is my name?"),
        ("assistant", "Hello there!"),
    ]
    assert not TurnLock.objects.exists()  # released once each turn was recorded


def test_the_wait_is_bounded_and_the_refused_words_are_stored_nowhere(sdk, upstream, settings):
    settings.TRON_TURN_WAIT_SECONDS = 0
    upstream.reset(first_token_delay=1.0)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(say, sdk, "a long one")
        _wait_for(lambda: len(upstream.requests) == 1)
        with pytest.raises(openai.APIStatusError) as caught:
            say(sdk, "impatient")
        first.result()
    assert caught.value.status_code == 409
    assert caught.value.body["code"] == "conversation_busy"
    assert caught.value.response.headers["Retry-After"] == "1"
    assert not Message.objects.filter(content="impatient").exists()
    assert len(upstream.requests) == 1


def test_other_callers_never_wait(sdk, upstream):
    upstream.reset(first_token_delay=1.0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(say, sdk, "hello", "ada")
        _wait_for(lambda: len(upstream.requests) == 1)
        second = pool.submit(say, sdk, "hello", "grace")
        _wait_for(lambda: len(upstream.requests) == 2)  # while the first is still with the model
        assert not first.done()
        first.result(), second.result()


def test_a_lock_is_taken_over_when_its_holder_died():
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_holder = f"{turn_locks.HOST}:{int(dead.stdout)}:gone"
    TurnLock.objects.create(caller_id="ada", holder=dead_holder, acquired_at=timezone.now())
    assert turn_locks.try_acquire("ada", "me")  # its process is gone: at once

    TurnLock.objects.filter(caller_id="ada").update(holder=f"{turn_locks.HOST}:1:init")  # alive (pid 1)
    assert not turn_locks.try_acquire("ada", "me")
    TurnLock.objects.filter(caller_id="ada").update(holder="elsewhere:123:x")  # another machine's: leased
    assert not turn_locks.try_acquire("ada", "me")
    stale = timezone.now() - timedelta(seconds=turn_locks.LEASE_SECONDS + 1)
    TurnLock.objects.filter(caller_id="ada").update(acquired_at=stale)
    assert turn_locks.try_acquire("ada", "me")
    assert TurnLock.objects.get(caller_id="ada").holder == "me"

    turn_locks.release("ada", "someone else")  # only the holder releases
    assert TurnLock.objects.filter(caller_id="ada").exists()
    turn_locks.release("ada", "me")
    assert not TurnLock.objects.exists()
