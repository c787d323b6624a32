"""team_check: what the persona's reports and peers did in the last day (their processes, outcomes and
costs), summarised by the persona."""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils import timezone

from agents.display import ellipsis
from agents.models import Persona, Process
from agents.prompts import quoted

from ..thinking import IMPORTANCE_ASK, Outcome, split_importance, think, when

WINDOW = timedelta(days=1)
RECENT_TASKS = 3


def team_of(persona) -> list[tuple[Persona, str]]:
    """(persona, relation) for its enabled reports, then its peers (those with the same lead)."""
    reports = [(p, "your report") for p in Persona.objects.enabled().filter(reports_to=persona)]
    peers = Persona.objects.enabled().filter(reports_to=persona.reports_to_id).exclude(pk=persona.pk)
    return reports + [(p, "your peer") for p in peers]


def activity_lines(members, since) -> list[str]:
    """One line per member: processes by status, cost, and their latest tasks (three queries)."""
    ids = [member.pk for member, _relation in members]
    processes = Process.objects.filter(persona__in=ids, started_at__gte=since)
    counts = defaultdict(dict)
    costs = defaultdict(Decimal)
    for row in processes.values("persona", "status").annotate(n=Count("id"), cost=Sum("cost_usd")):
        counts[row["persona"]][row["status"]] = row["n"]
        costs[row["persona"]] += row["cost"] or 0
    latest = defaultdict(list)
    for process in processes.exclude(task="").order_by("-started_at")[: RECENT_TASKS * len(ids) * 3]:
        if len(latest[process.persona_id]) < RECENT_TASKS:
            failed = (
                f" (failed: {ellipsis(process.error, 80)})"
                if process.status == "failed" and process.error
                else ""
            )
            latest[process.persona_id].append(f"{ellipsis(process.task, 80)!r}{failed}")
    lines = []
    for member, relation in members:
        by_status = counts.get(member.pk)
        if not by_status:
            lines.append(f"{member.name} ({member.role}, {relation}): nothing in the last day")
            continue
        total = sum(by_status.values())
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        tasks = f"; latest: {', '.join(latest[member.pk])}" if latest[member.pk] else ""
        lines.append(
            f"{member.name} ({member.role}, {relation}): {total} process(es) ({statuses}), "
            f"${costs[member.pk]:.4f}{tasks}"
        )
    return lines


def run(run) -> Outcome:
    persona = run.persona
    members = team_of(persona)
    if not members:
        return Outcome(result="No reports or peers to check on.", skipped=True)
    lines = activity_lines(members, timezone.now() - WINDOW)
    answer = think(
        run,
        f"It is {when(persona)}. Check on your team. What your reports and peers did in the last day:\n\n"
        + quoted(
            "your team's activity (tasks as callers worded them)", "\n".join(f"- {line}" for line in lines)
        )
        + "\n\nSummarise in two to four sentences what your team did, what stands out (failures, costs, "
        f"silence) and what you will follow up on. {IMPORTANCE_ASK}",
        max_tokens=400,
    )
    summary, importance = split_importance(answer)
    if not summary:
        summary = "Team activity in the last day: " + "; ".join(lines)
    return Outcome(result=summary, journal=summary, importance=importance)
