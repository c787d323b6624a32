"""The tool registry: what a persona may call, and how every way a call can go wrong comes back to the
model as a tool error rather than failing the turn."""

import jsonschema
import pytest

from agents import tools
from agents.principals import Principal, Trust
from agents.tools import TOOLS, Access, Tool, ToolContext, call_tool, tools_for
from agents.tools.base import access_table
from tests.factories import make_persona

pytestmark = pytest.mark.django_db

TEAM = Principal(Trust.TEAM, "req-someone")


def _echo(context, arguments):
    if arguments["text"] == "boom":
        raise RuntimeError("boom")
    return arguments["text"] * (20_001 if arguments["text"] == "long" else 1)


@pytest.fixture
def echo(monkeypatch):
    tool = Tool(
        name="echo",
        description="Say it back.",
        parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        run=_echo,
        access=access_table(public=Access.YES, team=Access.YES, operator=Access.YES, life=Access.YES),
    )
    monkeypatch.setitem(tools.TOOLS, "echo", tool)
    return tool


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
        ("list_team", "{}", "Error: there is no tool named 'list_team' available to you.", True),  # not its
    ],
)
def test_a_call(echo, name, arguments, content, error):
    persona = make_persona(tools=["echo"])

    result = call_tool(name, arguments, ToolContext(persona, TEAM))

    assert result.content.startswith(content) and result.error is error


def test_a_long_result_is_cut(echo):
    result = call_tool("echo", '{"text": "long"}', ToolContext(make_persona(tools=["echo"]), TEAM))
    assert len(result.content) < 20_100 and result.content.endswith("[cut: the result was longer]")


def test_a_persona_gets_the_registered_tools_its_settings_name_in_order(echo):
    persona = make_persona(tools=["web_search", "echo", "list_team"])
    assert [t.name for t in tools_for(persona, TEAM)] == ["echo", "list_team"]
    assert TOOLS["echo"].schema()["function"]["parameters"]["required"] == ["text"]


def test_list_team_names_everyone_with_their_role_and_lead_in_the_teams_order():
    tony = make_persona(name="Tony", role="CTO", tools=["list_team"], sort_order=1)
    make_persona(name="Sarah", role="Tech Lead", reports_to=tony, sort_order=11)
    make_persona(name="Off", role="Gone", enabled=False)

    result = call_tool("list_team", "{}", ToolContext(tony, TEAM))

    assert result.content.splitlines() == ["- Tony: CTO", "- Sarah: Tech Lead, reports to Tony"]


def test_a_tool_with_a_broken_schema_is_refused_when_it_is_defined():
    with pytest.raises(jsonschema.SchemaError):
        Tool("bad", "Bad.", _echo, access_table(), {"type": "object", "properties": 5})


def test_a_tool_that_reaches_only_its_principals_data_must_say_whose_data_a_call_touches():
    with pytest.raises(TypeError, match="must say whose data"):
        Tool("mine", "Mine.", _echo, access_table(public=Access.OWN))
