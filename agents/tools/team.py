"""list_team: who is on the team, for any principal (it reads nothing about callers)."""

from ..models import Persona
from .base import Access, Tool, access_table


def _list_team(context, arguments) -> str:
    lines = []
    for persona in Persona.objects.enabled().select_related("reports_to"):
        lead = f", reports to {persona.reports_to.name}" if persona.reports_to else ""
        lines.append(f"- {persona.name}: {persona.role or persona.kind}{lead}")
    return "\n".join(lines) or "The team is empty."


LIST_TEAM = Tool(
    name="list_team",
    description="The team: each member's name, role and who they report to.",
    run=_list_team,
    access=access_table(public=Access.YES, team=Access.YES, operator=Access.YES, life=Access.YES),
)
