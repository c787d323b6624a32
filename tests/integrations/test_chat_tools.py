"""Tools through the chat API, with the official SDK: the persona's tools run on the server, the client's
own tools go back to the client in OpenAI's format and their results continue the conversation."""

import json

import pytest

from agents.models import LLMCall, Message, Process
from tests.liveserver import post_chat, stream_lines

pytestmark = pytest.mark.django_db(transaction=True)

END_CALL = {
    "type": "function",
    "function": {
        "name": "endCall",
        "description": "End the phone call.",
        "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
    },
}


@pytest.fixture
def tony_with_tools(team):
    team["tony"].tools = ["list_team", "web_search"]  # web_search: named, but no such tool here
    team["tony"].save()
    team["maya"].reports_to = team["tony"]
    team["maya"].save()
    return team["tony"]


def ask(sdk, **kwargs):
    kwargs.setdefault("model", "tony")
    kwargs.setdefault("messages", [{"role": "user", "content": "Who is on the team?"}])
    return sdk.chat.completions.create(**kwargs, extra_headers={"X-Request-ID": "tools-1"})


def test_a_persona_tool_runs_on_the_server_and_its_result_goes_back_to_the_model(
    sdk, upstream, tony_with_tools
):
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "c1", "name": "list_team"}]}, {"tokens": ["Maya and I."]}
    )

    reply = ask(sdk)

    assert reply.choices[0].message.content == "Maya and I."
    assert reply.choices[0].finish_reason == "stop"
    first, second = (r.body for r in upstream.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["list_team"]  # only tools that exist
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "list_team"
    result = second["messages"][-1]
    assert result["role"] == "tool" and result["tool_call_id"] == "c1"
    assert "Maya: CMO, reports to Tony" in result["content"]
    process = Process.objects.get()
    assert (process.llm_calls, process.tool_calls) == (2, 1)
    assert process.input_tokens == 2 * 42 and LLMCall.objects.count() == 2
    assert list(Message.objects.order_by("id").values_list("role", "name")) == [
        ("user", ""),
        ("assistant", ""),
        ("tool", "list_team"),
        ("assistant", ""),
    ]


def test_a_stream_sends_a_comment_while_a_tool_runs(chat_setup, live_tron, upstream, tony_with_tools):
    upstream.queue(
        {"tokens": ["Let me look. "], "tool_calls": [{"name": "list_team"}]}, {"tokens": ["Two of us."]}
    )

    _response, lines = stream_lines(
        live_tron, {"model": "tony", "messages": [{"role": "user", "content": "team?"}]}
    )

    assert ": running list_team" in lines
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Let me look. Two of us."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert lines[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("web_search", "{}", "Error: there is no tool named 'web_search' available to you."),
        ("drop_tables", "{}", "Error: there is no tool named 'drop_tables' available to you."),
        ("list_team", "{not json", "Error: the arguments are not valid JSON"),
        ("list_team", '{"team": "all"}', "Error: bad arguments for list_team"),
    ],
)
def test_a_bad_tool_call_goes_back_to_the_model_as_a_tool_error(
    sdk, upstream, tony_with_tools, name, arguments, error
):
    upstream.queue(
        {"tokens": [], "tool_calls": [{"name": name, "arguments": arguments}]}, {"tokens": ["Sorry."]}
    )

    assert ask(sdk).choices[0].message.content == "Sorry."

    assert upstream.requests[1].tool_result().startswith(error)
    assert Process.objects.get().tool_calls == 1


def test_tool_rounds_are_bounded_and_the_last_call_gets_no_tools(sdk, upstream, tony_with_tools, settings):
    settings.TRON_TOOL_ROUNDS = 2
    upstream.reset(tokens=["Checking. "], tool_calls=[{"name": "list_team"}])  # a model that never stops

    reply = ask(sdk)

    assert [bool(r.body.get("tools")) for r in upstream.requests] == [True, True, False]
    assert reply.choices[0].message.content == "Checking. Checking. Checking. "
    assert Process.objects.get().llm_calls == 3


def test_a_client_tool_call_is_returned_to_the_client_and_its_result_continues_the_conversation(
    sdk, upstream, team
):
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "call_9", "name": "endCall", "arguments": '{"reason": "done"}'}]}
    )
    messages = [{"role": "user", "content": "Bye!"}]

    reply = ask(sdk, messages=messages, tools=[END_CALL], tool_choice="auto")

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_9",
        "endCall",
        {"reason": "done"},
    )
    assert upstream.last.body["tools"] == [END_CALL] and upstream.last.body["tool_choice"] == "auto"

    # The client ran it and sends the result back, with the history the SDK keeps.
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_9", "content": "ended"},
    ]
    upstream.reset(tokens=["Goodbye."])
    assert ask(sdk, messages=messages, tools=[END_CALL]).choices[0].message.content == "Goodbye."

    sent = upstream.last.body["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "call_9" and sent[-1]["tool_call_id"] == "call_9"
    assert upstream.last.tool_result() == "ended"
    process = Process.objects.get()  # one conversation
    assert (process.llm_calls, process.tool_calls) == (2, 1)
    assert list(Message.objects.order_by("id").values_list("role", "tool_call_id")) == [
        ("user", ""),
        ("assistant", ""),
        ("tool", "call_9"),
        ("assistant", ""),
    ]
    assert Message.objects.filter(role="assistant").first().tool_calls[0]["function"]["name"] == "endCall"


def test_a_streamed_client_tool_call_arrives_as_delta_tool_calls(sdk, upstream, team):
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "call_7", "name": "endCall", "arguments": '{"reason": "x"}'}]}
    )

    stream = ask(sdk, stream=True, tools=[END_CALL])
    chunks = list(stream)

    calls = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert [(c.index, c.id, c.function.name, c.function.arguments) for c in calls] == [
        (0, "call_7", "endCall", '{"reason": "x"}')
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_the_client_tools_reach_the_model_with_the_personas(sdk, upstream, tony_with_tools):
    ask(sdk, tools=[END_CALL])

    assert [t["function"]["name"] for t in upstream.last.body["tools"]] == ["list_team", "endCall"]


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "function", "function": {"name": "has space"}}], "tools[0].function.name"),
        ([{"type": "retrieval"}], "tools[0].type"),
        ("endCall", "tools"),
    ],
)
def test_malformed_tools_are_400s(chat_setup, live_tron, tools, param):
    response = post_chat(live_tron, {"messages": [{"role": "user", "content": "hi"}], "tools": tools})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
