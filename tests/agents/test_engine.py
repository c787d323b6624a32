"""The turn engine (agents.runtime) with a small fake provider: its events, its tool rounds, and that
whatever ends a turn records it exactly once and frees the caller's session."""

import asyncio
import contextlib

import pytest
from asgiref.sync import sync_to_async

from agents import sessions
from agents.callers import Caller
from agents.llm.base import Delta, LLMError, LLMProvider, ToolCall, Usage
from agents.models import CallerSession, LLMCall, Message, Process
from agents.runtime import (
    Accepted,
    Idle,
    Opened,
    Text,
    ToolStarted,
    TurnEnd,
    TurnFailed,
    TurnInput,
    complete_turn,
    complete_turn_sync,
    run_turn,
)
from tests.factories import make_persona

pytestmark = pytest.mark.django_db(transaction=True)  # the engine writes on its own database threads

HANG = "hang"  # in a script: the model goes quiet until the stream is closed


class FakeProvider(LLMProvider):
    """Answers each call with the next script (the last one again once they run out). A script is a
    list of texts, Deltas, exceptions (raised there) and HANG."""

    name = "fake"

    def __init__(self, *scripts, supports_tools=True, accept=True):
        self.scripts = list(scripts) or [["Hello", " there"]]
        self.supports_tools = supports_tools
        self.accept = accept
        self.requests = []

    def default_model(self):
        return "gpt-4o-mini"

    async def stream(self, request):
        self.requests.append(request)
        script = self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]
        if self.accept:
            yield Delta(accepted=True)
        for item in script:
            if isinstance(item, Exception):
                raise item
            if item == HANG:
                await asyncio.sleep(3600)
            yield item if isinstance(item, Delta) else Delta(text=item)


USAGE = Delta(usage=Usage(10, 2))


def calls(*names):
    return Delta(tool_calls=tuple(ToolCall(f"call_{n}", n, "{}") for n in names))


@pytest.fixture
def tony(db):
    return make_persona(name="Tony", role="CTO", tools=["list_team"])


def ask(words="hi", caller="req-engine", **kwargs):
    return TurnInput([{"role": "user", "content": words}], Caller(caller), **kwargs)


async def events_of(turn_input, provider, **kwargs):
    return [event async for event in run_turn(turn_input, provider, **kwargs)]


def recorded(caller="req-engine"):
    session = CallerSession.objects.get(caller_id=caller)
    return {
        "process": Process.objects.get(pk=session.process_id),
        "calls": list(LLMCall.objects.order_by("id")),
        "lines": list(Message.objects.order_by("id").values_list("role", "content")),
        "released": session.turn_claimed_until is None,
    }


async def test_an_answer_streams_its_events_in_order_and_is_recorded(tony):
    events = await events_of(ask(), FakeProvider(["Hello", " there", USAGE]))

    assert [type(e) for e in events] == [Opened, Accepted, Text, Text, TurnEnd]
    end = events[-1]
    assert (end.text, end.finish_reason, end.input_tokens, end.output_tokens) == (
        "Hello there",
        "stop",
        10,
        2,
    )
    assert end.process_id == events[0].session.process_id and events[0].persona == tony
    got = await sync_to_async(recorded)()
    assert got["lines"] == [("user", "hi"), ("assistant", "Hello there")]
    assert [(c.usage_source, c.input_tokens) for c in got["calls"]] == [("provider", 10)]
    assert (got["process"].llm_calls, got["process"].input_tokens, got["process"].error) == (1, 10, "")
    assert got["released"]


async def test_a_persona_tool_runs_between_two_model_calls(tony):
    provider = FakeProvider([calls("list_team"), USAGE], ["Just me.", USAGE])

    events = await events_of(ask(), provider)

    assert [type(e) for e in events] == [Opened, Accepted, ToolStarted, Text, TurnEnd]
    assert (events[-1].llm_calls, events[-1].input_tokens) == (2, 20)
    assert [t["function"]["name"] for t in provider.requests[0].tools] == ["list_team"]
    call, result = provider.requests[1].messages[-2:]
    assert call["tool_calls"][0]["function"]["name"] == "list_team"
    assert result == {
        "role": "tool",
        "content": "- Tony: CTO",
        "tool_call_id": "call_list_team",
        "name": "list_team",
    }
    got = await sync_to_async(recorded)()
    assert (got["process"].llm_calls, got["process"].tool_calls) == (2, 1)
    assert [role for role, _ in got["lines"]] == ["user", "assistant", "tool", "assistant"]


async def test_a_client_tool_call_ends_the_turn_for_the_client_to_run(tony):
    end_call = {"type": "function", "function": {"name": "endCall", "parameters": {"type": "object"}}}
    provider = FakeProvider([calls("endCall", "list_team")])

    end = await complete_turn(ask(tools=[end_call]), provider)

    assert (end.finish_reason, [c["function"]["name"] for c in end.tool_calls]) == ("tool_calls", ["endCall"])
    assert len(provider.requests) == 1  # list_team ran, but the client must act before the next call
    got = await sync_to_async(recorded)()
    assert got["process"].tool_calls == 2
    assert [role for role, _ in got["lines"]] == ["user", "assistant", "tool"]


async def test_a_model_that_takes_no_tools_gets_none(tony):
    provider = FakeProvider(["ok"], supports_tools=False)
    history = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "r", "tool_call_id": "c"},
        {"role": "user", "content": "and?"},
    ]

    await complete_turn(
        TurnInput(history, Caller("req-engine"), tools=[{"type": "function", "function": {"name": "f"}}]),
        provider,
    )

    (request,) = provider.requests
    assert request.tools is None
    assert request.messages[1:] == [{"role": "user", "content": "q"}, {"role": "user", "content": "and?"}]


@pytest.mark.parametrize(
    ("script", "accept", "status", "code", "stored_answer"),
    [
        ([LLMError("busy", status=503, code="upstream_overloaded")], False, 503, "upstream_overloaded", None),
        (["half ", LLMError("broke", status=502)], True, 502, "upstream_error", "half "),
        (["half ", ValueError("a provider bug")], True, 502, "upstream_error", "half "),
    ],
)
async def test_a_failed_model_call_is_recorded_on_the_call_and_the_process(
    tony, script, accept, status, code, stored_answer
):
    events = await events_of(ask(), FakeProvider(script, accept=accept))

    failed = events[-1]
    assert isinstance(failed, TurnFailed) and (failed.error.status, failed.error.code) == (status, code)
    got = await sync_to_async(recorded)()
    (call,) = got["calls"]
    assert call.finish_reason == "error" and call.error == failed.error.message
    assert got["process"].error == failed.error.message and got["released"]
    assert got["lines"] == [("user", "hi")] + ([("assistant", stored_answer)] if stored_answer else [])


async def test_a_bug_in_the_engine_fails_the_turn_records_it_once_and_frees_the_session(tony, monkeypatch):
    import agents.runtime

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(agents.runtime, "build_prompt", broken)

    events = await events_of(ask(), FakeProvider())

    assert isinstance(events[-1], TurnFailed) and events[-1].error.code == "internal_error"
    got = await sync_to_async(recorded)()
    assert got["calls"] == [] and got["lines"] == [("user", "hi")] and got["released"]
    assert got["process"].error.startswith("The server failed")


async def test_a_consumer_that_leaves_mid_answer_stops_the_model_and_the_partial_answer_is_kept(tony):
    async with contextlib.aclosing(run_turn(ask(), FakeProvider(["so far", HANG]))) as events:
        async for event in events:
            if isinstance(event, Text):
                break

    got = await sync_to_async(recorded)()
    (call,) = got["calls"]
    assert (call.finish_reason, call.usage_source) == ("cancelled", "partial")
    assert call.output_tokens == 2  # estimated from what was said
    assert got["lines"] == [("user", "hi"), ("assistant", "so far")]
    assert got["process"].error == "" and got["released"]


async def test_a_quiet_model_gives_idle_events(tony):
    provider = FakeProvider([Delta(text="a"), "slow"])

    async def slow_stream(request):
        yield Delta(accepted=True)
        await asyncio.sleep(0.25)
        yield Delta(text="late")

    provider.stream = slow_stream
    events = await events_of(ask(), provider, idle_seconds=0.1)

    assert [type(e) for e in events][:3] == [Opened, Accepted, Idle]
    assert isinstance(events[-1], TurnEnd) and events[-1].text == "late"


@pytest.mark.parametrize(
    ("turn_input", "code"),
    [
        (ask(persona_name="nobody-here"), None),  # an unknown name gets the default persona
        (ask("x" * 200_000), "message_too_long"),
    ],
)
async def test_a_turn_refused_before_it_begins_stores_nothing(tony, turn_input, code):
    events = await events_of(turn_input, FakeProvider())

    if code is None:
        assert isinstance(events[-1], TurnEnd)
        return
    assert [type(e) for e in events] == [TurnFailed] and events[0].error.code == code
    assert not await CallerSession.objects.aexists()


async def test_no_persona_at_all_is_a_503(db):
    (failed,) = await events_of(ask(), FakeProvider())
    assert (failed.error.status, failed.error.code) == (503, "no_persona")


def test_the_sync_entry_point_runs_a_whole_turn(tony):
    end = complete_turn_sync(ask(), FakeProvider(["Sync", " answer"]))

    assert end.text == "Sync answer"
    assert Process.objects.get(pk=end.process_id).messages.count() == 2

    with pytest.raises(LLMError):
        complete_turn_sync(ask(), FakeProvider([LLMError("down", status=503)], accept=False))


async def test_a_new_conversation_whose_process_id_is_taken_begins_again_with_another(tony, monkeypatch):
    # The begin takes no savepoint: the taken id rolls its whole transaction back, and the turn reads
    # again and calls the model again; nothing of the first attempt is stored.
    taken = await sync_to_async(Process.objects.create)(persona=tony)
    insert, attempts = sessions._insert_process, []

    def insert_drawing_the_taken_id_first(process):
        attempts.append(process.public_id)
        if len(attempts) == 1:
            process.public_id = taken.public_id
        return insert(process)

    monkeypatch.setattr(sessions, "_insert_process", insert_drawing_the_taken_id_first)
    provider = FakeProvider(["Hello", USAGE])

    events = await events_of(ask(), provider)

    assert events[-1].text == "Hello" and len(provider.requests) == 2
    got = await sync_to_async(recorded)()
    assert len(attempts) == 2 and got["process"].public_id == attempts[1] != taken.public_id
    assert got["lines"] == [("user", "hi"), ("assistant", "Hello")]
    assert [c.input_tokens for c in got["calls"]] == [10]
    assert await sync_to_async(Process.objects.count)() == 2
