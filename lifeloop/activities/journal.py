"""journal: the day's entry, in the persona's words, from what its day held."""

from datetime import datetime, time

from agents.display import ellipsis

from ..models import Activity, ActivityRun
from ..thinking import IMPORTANCE_ASK, ActivityFailed, Outcome, local_now, split_importance, think, when

MAX_RUNS = 20


def run(run) -> Outcome:
    persona = run.persona
    now = local_now(persona)
    day_start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    runs = (
        ActivityRun.objects.filter(persona=persona, started_at__gte=day_start)
        .exclude(activity=Activity.JOURNAL)
        .exclude(pk=run.pk)
        .filter(status__in=[ActivityRun.Status.COMPLETED, ActivityRun.Status.FAILED])
        .order_by("started_at")[:MAX_RUNS]
    )
    listed = "\n".join(
        f"- {r.started_at.astimezone(now.tzinfo):%H:%M} {r.get_activity_display().lower()}: "
        + (
            ellipsis(r.result, 300)
            if r.status == ActivityRun.Status.COMPLETED
            else f"failed ({ellipsis(r.error, 120)})"
        )
        for r in runs
    )
    answer = think(
        run,
        f"It is {when(persona)}. Write today's journal entry.\n\nWhat your day held so far:\n"
        f"{listed or '- (nothing recorded yet)'}\n\n"
        "Write a short first-person paragraph (three to five sentences): what happened, what you learned, "
        f"what you want to do next. {IMPORTANCE_ASK}",
        max_tokens=400,
    )
    entry, importance = split_importance(answer)
    if not entry:
        raise ActivityFailed("The model wrote no journal entry.")
    return Outcome(result=entry, journal=entry, importance=importance)
