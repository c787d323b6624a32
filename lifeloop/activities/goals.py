"""goals: review and update the persona's goals from its recent journal, the news it picked and the
state of its team."""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.display import ellipsis
from agents.prompts import quoted

from ..models import Activity, ActivityRun, Goal, JournalEntry, NewsItem
from ..thinking import Outcome, bullet_lines, clamp_importance, local_now, parse_json, think, when

MAX_ACTIVE = 5
LOOKBACK = timedelta(days=3)


def run(run) -> Outcome:
    persona = run.persona
    goals = list(
        Goal.objects.filter(persona=persona).exclude(status=Goal.Status.DROPPED).order_by("-updated_at")[:20]
    )
    answer = think(run, prompt(persona, goals), max_tokens=700)
    data = parse_json(answer)
    changes = apply(persona, goals, data.get("goals"))
    if not changes:
        result = "Goals reviewed: no changes."
        return Outcome(result=result, journal=result, importance=clamp_importance(data.get("importance")))
    result = "Goals: " + "; ".join(changes)
    return Outcome(
        result=result, journal=result, importance=clamp_importance(data.get("importance")), share=result
    )


def prompt(persona, goals) -> str:
    since = timezone.now() - LOOKBACK
    journal = JournalEntry.objects.filter(persona=persona, created_at__gte=since).order_by("-created_at")[:10]
    news = NewsItem.objects.filter(persona=persona, picked=True, created_at__gte=since).order_by(
        "-created_at"
    )[:5]
    team = (
        ActivityRun.objects.filter(
            persona=persona, activity=Activity.TEAM_CHECK, status=ActivityRun.Status.COMPLETED
        )
        .order_by("-started_at")
        .values_list("result", flat=True)
        .first()
    )
    listed = bullet_lines(
        (f"[{g.status}] {g.title}" + (f" — last note: {last_note(g)}" if g.notes else "") for g in goals),
        "(none yet: set up to three goals for the coming weeks)",
    )
    return (
        f"It is {when(persona)}. Review your goals.\n\n"
        f"Your goals now:\n{listed}\n\n"
        f"Your recent journal:\n{bullet_lines((ellipsis(e.text, 300) for e in journal), '(empty)')}\n\n"
        f"News you picked lately:\n{quoted('news items you picked', bullet_lines((f'{n.title} — {n.take}' for n in news), '(none)'))}\n\n"
        f"Your team, at your last check:\n{ellipsis(team or '(not checked yet)', 800)}\n\n"
        "Update your goals: mark each goal's progress, finish or drop goals, and add one only if something "
        f"important is missing (at most {MAX_ACTIVE} active). List only goals that change or are new. Answer "
        "with JSON only, in this form:\n"
        '{"goals": [{"title": "<the goal>", "status": "active|done|dropped", "note": "<one line: progress, '
        'or why>"}], "importance": <1-10: how much these changes matter to you>}'
    )


def last_note(goal) -> str:
    return ellipsis(goal.notes.strip().splitlines()[-1], 200) if goal.notes.strip() else ""


def apply(persona, goals, proposed) -> list[str]:
    """Apply the model's goal changes; returns one line per change."""
    by_title = {goal.title.lower(): goal for goal in goals}
    active = sum(goal.status == Goal.Status.ACTIVE for goal in goals)
    day = local_now(persona).date().isoformat()
    changes = []
    for entry in proposed if isinstance(proposed, list) else []:
        if not isinstance(entry, dict):
            continue
        title = ellipsis(" ".join(str(entry.get("title") or "").split()), 200)
        if not title:
            continue
        status = entry.get("status") if entry.get("status") in Goal.Status.values else Goal.Status.ACTIVE
        note = ellipsis(" ".join(str(entry.get("note") or "").split()), 500)
        goal = (
            by_title.get(title.lower()) or Goal.objects.filter(persona=persona, title__iexact=title).first()
        )
        if goal is None:
            if status != Goal.Status.ACTIVE or active >= MAX_ACTIVE:
                continue
            try:
                with transaction.atomic():
                    goal = Goal.objects.create(
                        persona=persona, title=title, notes=f"{day}: {note}" if note else ""
                    )
            except IntegrityError:
                continue  # the same title, added concurrently
            by_title[title.lower()] = goal
            active += 1
            changes.append(f"new: {title}")
            continue
        if status == goal.status and not note:
            continue
        if status != goal.status:
            changes.append(f"{status}: {goal.title}" + (f" ({note})" if note else ""))
            active += (status == Goal.Status.ACTIVE) - (goal.status == Goal.Status.ACTIVE)
        else:
            changes.append(f"progress on {goal.title}: {note}")
        goal.status = status
        if note:
            goal.notes = f"{goal.notes.rstrip()}\n{day}: {note}".strip()
        goal.save(update_fields=["status", "notes", "updated_at"])
    return changes
