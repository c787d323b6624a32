"""Bounded conversations through the chat API: an oversized message is refused and stored nowhere, the
history in a prompt is trimmed to its token budget, and a failed turn is recorded on its process."""

import openai
import pytest

from agents import tokens
from agents.models import LLMCall, Message, Process
from agents.sessions import end_idle_sessions
from tests.factories import ago

pytestmark = pytest.mark.django_db(transaction=True)


def say(sdk, text, caller="bounded"):
    return sdk.chat.completions.create(
        model="tony", messages=[{"role": "user", "content": text}], extra_headers={"X-Request-ID": caller}
    )


def test_a_message_over_the_limit_is_a_413_and_stored_nowhere(sdk, upstream, settings):
    settings.TRON_MAX_MESSAGE_CHARS = 1000
    with pytest.raises(openai.APIStatusError) as caught:
        say(sdk, "x" * 1001)
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "message_too_long"
    assert (Process.objects.count(), Message.objects.count(), len(upstream.requests)) == (0, 0, 0)
    say(sdk, "x" * 1000)  # at the limit: answered
    assert Message.objects.filter(role="user").get().content == "x" * 1000


def test_a_request_with_more_messages_than_the_limit_is_a_413_and_stored_nowhere(sdk, upstream, settings):
    settings.TRON_MAX_MESSAGES = 3
    words = [{"role": "user", "content": "hi"}] * 4
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="tony", messages=words)
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "too_many_messages" and "TRON_MAX_MESSAGES" in caught.value.message
    assert (Process.objects.count(), Message.objects.count(), len(upstream.requests)) == (0, 0, 0)
    sdk.chat.completions.create(model="tony", messages=words[:3])  # at the limit: answered
    assert Message.objects.filter(role="user").count() == 3


def test_the_history_in_a_prompt_is_trimmed_to_its_token_budget(sdk, upstream, settings):
    settings.TRON_HISTORY_TOKENS = 300
    for n in range(8):
        say(sdk, f"message {n} " + "word " * 40)  # about 55 tokens each, and "Hello there!" back
    sent = upstream.last.body["messages"]
    assert sent[0]["role"] == "system"
    assert sent[-1]["content"].startswith("message 7 ")  # the newest words, always
    conversation = sent[1:]
    assert conversation[0]["role"] == "assistant" or conversation[0]["content"].startswith("message")
    assert not any(m["content"].startswith("message 0 ") for m in conversation)  # the oldest went first
    assert any(m["content"].startswith("message 6 ") for m in conversation)  # the one before is kept
    assert (
        tokens.estimate_prompt_tokens(sent)
        <= 300 + 2 * tokens.TOKENS_PER_MESSAGE + tokens.REPLY_PRIMING_TOKENS
    )
    assert Message.objects.filter(role="user").count() == 8  # trimmed in the prompt, kept in the transcript


def test_a_newest_message_bigger_than_the_budget_is_still_sent(sdk, upstream, settings):
    settings.TRON_HISTORY_TOKENS = 100
    say(sdk, "earlier words")
    say(sdk, "long " * 200)
    sent = [m["content"] for m in upstream.last.body["messages"]]
    assert sent[-1] == ("long " * 200).strip() or sent[-1] == "long " * 200
    assert "earlier words" not in sent  # no room left for the history


def test_a_failed_turn_is_recorded_on_its_process_until_one_succeeds(sdk, upstream, client):
    upstream.reset(status=500)
    with pytest.raises(openai.APIStatusError):
        say(sdk, "first")
    process = Process.objects.get()
    assert process.status == "running" and process.error  # the conversation goes on
    [listed] = client.get("/api/processes").json()
    assert listed["error"] == process.error  # visible to operators

    upstream.reset()
    say(sdk, "second")
    process.refresh_from_db()
    assert (process.status, process.error) == ("running", "")
    assert LLMCall.objects.filter(finish_reason="error").count() == 1  # the failure stays in its call


@pytest.mark.parametrize(("last_turn_fails", "status"), [(True, "failed"), (False, "completed")])
def test_a_process_ends_failed_when_its_last_turn_failed(sdk, upstream, last_turn_fails, status):
    say(sdk, "hello")
    if last_turn_fails:
        upstream.reset(status=500)
        with pytest.raises(openai.APIStatusError):
            say(sdk, "again")
    Process.objects.update(started_at=ago(minutes=60))
    from agents.models import CallerSession

    CallerSession.objects.update(last_seen_at=ago(minutes=60))
    assert end_idle_sessions() == 1
    assert Process.objects.get().status == status
