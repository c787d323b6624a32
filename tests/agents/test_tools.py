"""The tool registry: what a persona may call, and how every way a call can go wrong comes back to the
model as a tool error rather than failing the turn."""

import pytest

from agents.tools import REGISTRY, ToolContext, call_tool, tool, tools_for
from tests.factories import make_persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def echo():
    @tool(
        "echo",
        "Say it back.",
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    )
    def run(context, arguments):
        if arguments["text"] == "boom":
            raise RuntimeError("boom")
        return arguments["text"] * (20_001 if arguments["text"] == "long" else 1)

    yield REGISTRY["echo"]
    del REGISTRY["echo"]


@pytest.mark.parametrize(
    ("name", "arguments", "content", "error"),
    [
        ("echo", '{"text": "hi"}', "hi", False),
        ("echo", {"text": "hi"}, "hi", False),  # already parsed
        ("echo", "", "Error: bad arguments for echo: 'text' is a required property.", True),  # none = {}
        ("echo", '{"text": 5}', "Error: bad arguments for echo: 5 is not of type 'string'.", True),
        ("echo", "[1, 2", "Error: the arguments are not valid JSON", True),
        ("echo", '{"text": "boom"}', "Error: echo failed (RuntimeError).", True),
        ("nope", "{}", "Error: there is no tool named 'nope' available to you.", True),
        (
            "list_team",
            "{}",
            "Error: there is no tool named 'list_team' available to you.",
            True,
        ),  # not allowed
    ],
)
def test_a_call(echo, name, arguments, content, error):
    persona = make_persona(tools=["echo"])

    result = call_tool(name, arguments, ToolContext(persona))

    assert result.content.startswith(content) and result.error is error


def test_a_long_result_is_cut(echo):
    result = call_tool("echo", '{"text": "long"}', ToolContext(make_persona(tools=["echo"])))
    assert len(result.content) < 20_100 and result.content.endswith("[cut: the result was longer]")


def test_a_persona_gets_the_registered_tools_its_settings_name_in_order(echo):
    persona = make_persona(tools=["web_search", "echo", "list_team"])
    assert [t.name for t in tools_for(persona)] == ["echo", "list_team"]
    assert REGISTRY["echo"].schema()["function"]["parameters"]["required"] == ["text"]


def test_list_team_names_everyone_with_their_role_and_lead_in_the_teams_order():
    tony = make_persona(name="Tony", role="CTO", tools=["list_team"], sort_order=1)
    make_persona(name="Sarah", role="Tech Lead", reports_to=tony, sort_order=11)
    make_persona(name="Off", role="Gone", enabled=False)

    result = call_tool("list_team", "{}", ToolContext(tony))

    assert result.content.splitlines() == ["- Tony: CTO", "- Sarah: Tech Lead, reports to Tony"]


def test_a_tool_with_a_broken_schema_is_refused_at_registration():
    import jsonschema

    with pytest.raises(jsonschema.SchemaError):
        tool("bad", "Bad.", {"type": "object", "properties": 5})
