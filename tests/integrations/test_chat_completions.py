"""/chat/completions driven by the real openai SDK against a live Tron and a fake upstream."""

from decimal import Decimal

import openai
import pytest

from agents.models import CallerSession, LLMCall, Message, Persona, Process

pytestmark = pytest.mark.django_db(transaction=True)


def ask(sdk, text="Hi Tony", **kwargs):
    return sdk.chat.completions.create(
        model=kwargs.pop("model", "tony"),
        messages=kwargs.pop("messages", [{"role": "user", "content": text}]),
        **kwargs,
    )


def test_a_plain_completion_answers_with_usage(sdk, upstream):
    completion = ask(sdk)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "tony"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (42, 3)
    assert completion.usage.total_tokens == 45


def test_it_records_transcript_call_and_counters(sdk, upstream):
    ask(sdk, "What's on your mind?")

    process = Process.objects.get()
    assert process.persona.name == "Tony"
    assert process.status == "completed"  # an anonymous caller's: no request of theirs can continue it
    assert process.channel == "http"
    assert [(m.role, m.content) for m in Message.objects.order_by("id")] == [
        ("user", "What's on your mind?"),
        ("assistant", "Hello there!"),
    ]
    call = LLMCall.objects.get()
    assert (call.provider, call.model, call.input_tokens, call.output_tokens) == (
        "openai",
        "gpt-4o-mini",
        42,
        3,
    )
    assert call.usage_source == "provider"
    expected_cost = (Decimal(42) * Decimal("0.15") + Decimal(3) * Decimal("0.60")) / 1_000_000
    assert call.cost_usd == expected_cost
    assert call.duration_ms >= 0 and call.ttft_ms is not None
    assert (process.input_tokens, process.output_tokens, process.llm_calls) == (42, 3, 1)
    assert process.cost_usd == expected_cost


def test_the_upstream_gets_the_persona_prompt_and_is_asked_for_stream_usage(sdk, upstream):
    ask(sdk, temperature=0.3, max_tokens=77)
    body = upstream.last.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 77
    assert body["messages"][0] == {"role": "system", "content": "You are Tony, the CTO."}
    assert body["messages"][-1] == {"role": "user", "content": "Hi Tony"}


def test_max_completion_tokens_is_honoured(sdk, upstream):
    ask(sdk, max_completion_tokens=12)
    assert upstream.last.body["max_tokens"] == 12


def test_streaming_delivers_role_then_deltas_then_finish(sdk, upstream):
    upstream.reset(tokens=["I've ", "been ", "thinking"])
    chunks = list(ask(sdk, stream=True))

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "I've been thinking"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["I've ", "been ", "thinking"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)
    assert LLMCall.objects.get().usage_source == "provider"


def test_stream_usage_comes_in_one_last_chunk_when_asked(sdk, upstream):
    chunks = list(ask(sdk, stream=True, stream_options={"include_usage": True}))
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (42, 3)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_without_provider_usage_tokens_are_estimated_and_marked(sdk, upstream):
    upstream.reset(send_usage=False, tokens=["abcd", "efgh"])
    completion = ask(sdk)
    call = LLMCall.objects.get()
    assert call.usage_source == "estimated"
    assert call.output_tokens == 2  # 8 characters, 4 per token
    assert call.input_tokens > 0
    assert completion.usage.completion_tokens == 2


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["你好", "世界"], 4),  # a token per ideograph, as OpenAI's tokenizers give about
        (["こんにちは"], 5),
        (["Привет", " мир"], 5),  # 9 Cyrillic letters at two per token, a space at four
        (["héllo ", "👋"], 3),  # 5 ASCII at four per token, é at two, the emoji one
    ],
)
def test_estimates_count_other_scripts_closer_to_their_tokens(sdk, upstream, tokens, expected):
    upstream.reset(send_usage=False, tokens=tokens)
    ask(sdk)
    assert LLMCall.objects.get().output_tokens == expected


def test_turns_reuse_the_upstream_connection(sdk, upstream):
    """The stream was read to its end, so its connection went back to the pool. The pool hands out its
    idle connections oldest first, and earlier tests may have left some: the first turn's connection
    comes round again within a few turns, where a closed one never would."""
    ask(sdk, stream=False)
    first = upstream.requests[0].peer
    for _turn in range(10):
        ask(sdk, stream=False)
        if upstream.requests[-1].peer == first:
            return
    pytest.fail(f"the connection of the first turn ({first}) was not used again")


def test_model_names_a_persona_case_insensitively(sdk, upstream):
    completion = ask(sdk, model="MAYA")
    assert completion.model == "maya"
    assert Process.objects.get().persona.name == "Maya"
    assert upstream.last.body["messages"][0]["content"] == "You are Maya, the CMO."


def test_any_other_model_gets_the_default_persona(sdk, upstream):
    assert ask(sdk, model="gpt-4o").model == "tony"


def test_a_persona_model_override_is_sent_upstream(sdk, upstream, team):
    team["maya"].model = "gpt-4.1-mini"
    team["maya"].save()
    ask(sdk, model="maya")
    assert upstream.last.body["model"] == "gpt-4.1-mini"


@pytest.mark.parametrize("model", ["gpt-5-mini", "o3", "openai/gpt-5.1"])
def test_a_reasoning_model_gets_the_parameters_it_takes(sdk, upstream, team, model):
    """OpenAI's reasoning models refuse `max_tokens` and any temperature but their own."""
    team["maya"].model = model
    team["maya"].save()
    ask(sdk, model="maya", max_tokens=40)
    body = upstream.last.body
    assert (body["model"], body["max_completion_tokens"]) == (model, 40)
    assert "max_tokens" not in body and "temperature" not in body


def test_other_models_get_max_tokens_and_the_temperature(sdk, upstream, team):
    team["maya"].temperature = 0.3
    team["maya"].save()
    ask(sdk, model="maya", max_completion_tokens=40)
    body = upstream.last.body
    assert (body["max_tokens"], body["temperature"]) == (40, 0.3)
    assert "max_completion_tokens" not in body


def test_a_persona_edit_saved_here_applies_to_the_next_turn(sdk, upstream, team):
    ask(sdk)  # the personas are now cached
    team["tony"].system_prompt = "You are Tony, back from holiday."
    team["tony"].save()  # what the admin and load_team do: the cache is dropped at once
    ask(sdk)
    assert upstream.last.body["messages"][0]["content"] == "You are Tony, back from holiday."


def test_an_edit_from_another_process_applies_once_the_cache_expires(sdk, upstream, settings):
    ask(sdk, model="maya")
    # another process's edit sends no signal here: this process keeps its copy for the cache's time
    Persona.objects.filter(name="Maya").update(enabled=False, system_prompt="You are Maya, on leave.")
    assert ask(sdk, model="maya").model == "maya"
    assert upstream.last.body["messages"][0]["content"] == "You are Maya, the CMO."

    settings.TRON_CACHE_SECONDS = 0  # as if the time had passed
    assert ask(sdk, model="maya").model == "tony"


def test_models_lists_the_personas(sdk):
    ids = [model.id for model in sdk.models.list()]
    assert ids == ["tony", "maya"]
    assert sdk.models.retrieve("maya").id == "maya"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nobody")


def test_content_may_be_an_array_of_text_parts(sdk, upstream):
    ask(
        sdk,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}],
            }
        ],
    )
    assert upstream.last.body["messages"][-1]["content"] == "part one\npart two"
    assert Message.objects.filter(role="user").get().content == "part one\npart two"


def test_the_clients_system_message_is_call_context_after_the_persona(sdk, upstream):
    ask(
        sdk,
        messages=[
            {"role": "system", "content": "The caller is on a noisy line."},
            {"role": "user", "content": "Hello?"},
        ],
    )
    messages = upstream.last.body["messages"]
    assert messages[0]["content"] == "You are Tony, the CTO."
    assert messages[1]["role"] == "system" and "The caller is on a noisy line." in messages[1]["content"]
    assert messages[2] == {"role": "user", "content": "Hello?"}


def test_one_message_at_a_time_still_has_a_conversation(sdk, upstream):
    headers = {"X-Request-ID": "curl-user"}
    ask(sdk, "My name is Ada.", extra_headers=headers)
    upstream.reset(tokens=["Hi Ada"])
    ask(sdk, "What's my name?", extra_headers=headers)

    sent = upstream.last.body["messages"]
    assert [m["content"] for m in sent[1:]] == ["My name is Ada.", "Hello there!", "What's my name?"]
    assert CallerSession.objects.get().caller_id == "req-curl-user"


def test_the_clients_own_history_wins_over_the_stored_one(sdk, upstream):
    headers = {"X-Request-ID": "vapi-like"}
    ask(sdk, "first", extra_headers=headers)
    history = [
        {"role": "user", "content": "edited first"},
        {"role": "assistant", "content": "edited answer"},
        {"role": "user", "content": "second"},
    ]
    ask(sdk, messages=history, extra_headers=headers)
    assert [m["content"] for m in upstream.last.body["messages"][1:]] == [
        "edited first",
        "edited answer",
        "second",
    ]
    # only the new user words are added to the transcript
    assert list(Message.objects.filter(role="user").values_list("content", flat=True)) == ["first", "second"]
