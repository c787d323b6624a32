"""The table of what each principal may do with each tool, in docs/security.md, walked cell by cell
against the registry: what is offered, and what a call does for each kind of caller."""

from pathlib import Path

import pytest
from django.conf import settings

from agents.callers import Caller
from agents.models import CallerMemory, Directive, Process
from agents.principals import Principal, Trust
from agents.tools import TOOLS, ToolContext, call_tool, tools_for
from tests.factories import make_persona

pytestmark = pytest.mark.django_db

CALLER, OTHER = "+14155550100", "+14155550199"


def table() -> dict[tuple[str, Trust], str]:
    """{(tool, trust): "yes" | "own" | "no"} as docs/security.md writes it."""
    text = (Path(settings.BASE_DIR) / "docs" / "security.md").read_text()
    section = text.split("## What each principal may do with each tool", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    cells = {}
    for row in rows[2:]:
        tool, *values = (cell.strip() for cell in row.strip("|").split("|"))
        for trust, value in zip(header[1:], values, strict=True):
            cells[tool, Trust(trust)] = value
    return cells


def test_the_table_names_every_registered_tool_and_every_trust():
    assert {tool for tool, _trust in table()} == set(TOOLS)
    assert {trust for _tool, trust in table()} == set(Trust)


# Arguments that touch the principal's own data, and someone else's (None: the tool has no such case).
CALLS = {
    "list_team": ({}, None),
    "recall_person": ({"person": "the caller"}, {"person": OTHER}),
    "save_person_memory": (
        {"person": "the caller", "fact": "Likes tea."},
        {"person": OTHER, "fact": "Owes us."},
    ),
    "save_directive": ({"text": "Be brief."}, None),
    "spawn_agent": ({"agent": "Sarah", "task": "Look into it."}, None),
    "check_task": ({"task_id": "00000000"}, None),
}


@pytest.mark.parametrize(("tool", "trust"), list(table()))
def test_each_cell_of_the_table(tool, trust, monkeypatch):
    from agents.tools import delegate

    monkeypatch.setattr(delegate, "queue_child", lambda process_id: None)  # no worker here
    expected = table()[tool, trust]
    tony = make_persona(name="Tony", tools=list(TOOLS))
    make_persona(name="Sarah", sort_order=11)
    CallerMemory.objects.create(caller_id=OTHER, notes="Someone else's notes.")
    principal = Principal(trust, CALLER if trust != Trust.LIFE else "")
    context = ToolContext(tony, principal, Process.objects.create(persona=tony), Caller(CALLER))
    own, others = CALLS[tool]

    assert TOOLS[tool].access(trust).value == expected
    assert (tool in [t.name for t in tools_for(tony, principal)]) is (expected != "no")
    denied = call_tool(tool, own, context).content.startswith("Error: not allowed")
    assert denied is (expected == "no")
    if others is not None:
        denied = call_tool(tool, others, context).content.startswith("Error: not allowed")
        assert denied is (expected != "yes")
        assert (CallerMemory.objects.get(caller_id=OTHER).notes == "Someone else's notes.") is (
            expected != "yes" or tool == "recall_person"
        )


def test_a_setting_opens_save_directive_to_team_members_whose_directives_then_wait(settings):
    settings.TRON_SAVE_DIRECTIVE_TRUST = "team"
    tony = make_persona(name="Tony", tools=["save_directive"])
    context = ToolContext(tony, Principal(Trust.TEAM, "slack-T1-C1-1.2", "Slack user U1"))

    result = call_tool("save_directive", {"text": "Be brief."}, context)

    assert result.content.startswith("Saved for an operator's approval")
    assert Directive.objects.get().awaiting_approval and not Directive.objects.in_force().exists()
    settings.TRON_TEAM_DIRECTIVES_ACTIVE_AT_ONCE = True
    call_tool("save_directive", {"text": "Be kind."}, context)
    assert list(Directive.objects.in_force().values_list("text", flat=True)) == ["Be kind."]
