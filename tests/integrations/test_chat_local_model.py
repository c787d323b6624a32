"""The embedded model end to end: the chat API with no key answers from Gemma 3 270M in-process."""

import time

import pytest

from agents.models import LLMCall, Message

pytestmark = [pytest.mark.local_model, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def local_sdk(settings, live_tron, team):
    import openai

    settings.TRON_LLM = "local"
    settings.TRON_LOCAL_MODEL_THREADS = 1
    settings.TRON_LOCAL_MAX_TOKENS = 8
    client = openai.OpenAI(base_url=f"{live_tron.url}/v1", api_key="unused", max_retries=0, timeout=120)
    yield client
    client.close()


def test_the_local_model_answers_a_streamed_chat_with_exact_usage(local_sdk):
    chunks = list(
        local_sdk.chat.completions.create(
            model="tony",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Say hello."}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text.strip()
    assert chunks[-2].choices[0].finish_reason in {"stop", "length"}
    assert 0 < usage.completion_tokens <= 8
    call = LLMCall.objects.get()
    assert (call.provider, call.model, call.usage_source) == ("local", "gemma-3-270m", "provider")
    assert (call.input_tokens, call.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert call.cost_usd == 0
    assert Message.objects.filter(role="assistant").get().content == text


def test_the_local_model_answers_without_streaming(local_sdk):
    completion = local_sdk.chat.completions.create(
        model="maya", max_tokens=4, messages=[{"role": "user", "content": "One word, please."}]
    )
    assert completion.model == "maya"
    assert completion.usage.completion_tokens <= 4
    assert completion.choices[0].message.content


def test_a_client_that_leaves_is_billed_the_tokens_the_model_counted(local_sdk, settings):
    settings.TRON_LOCAL_MAX_TOKENS = 200
    messages = [{"role": "user", "content": "Tell me a long story about the sea."}]
    whole = local_sdk.chat.completions.create(model="tony", max_tokens=1, messages=messages)

    stream = local_sdk.chat.completions.create(model="tony", stream=True, temperature=0, messages=messages)
    received = 0
    for chunk in stream:
        received += bool(chunk.choices and chunk.choices[0].delta.content)
        if received == 3:
            break
    stream.close()  # the client hangs up mid-answer

    deadline = time.monotonic() + 10
    while LLMCall.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    call = LLMCall.objects.order_by("created_at", "pk").last()
    assert (call.usage_source, call.finish_reason) == ("partial", "cancelled")
    assert call.input_tokens == whole.usage.prompt_tokens  # the model's count, not an estimate
    assert 3 <= call.output_tokens < 200


def test_a_prompt_too_long_for_the_model_is_a_400_even_streaming(local_sdk):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        list(
            local_sdk.chat.completions.create(
                model="tony", stream=True, messages=[{"role": "user", "content": "word " * 40_000}]
            )
        )
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.response.headers["x-should-retry"] == "false"
