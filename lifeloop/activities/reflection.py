"""reflection: insights from the journal entries since the last reflection (Generative Agents'
reflection). Scheduled, and also run when the importance of those entries adds up to
TRON_REFLECTION_THRESHOLD (`lifeloop.runner.reflect_if_due`)."""

from django.db.models import Sum

from agents.display import ellipsis

from ..models import Activity, JournalEntry
from ..thinking import IMPORTANCE_ASK, ActivityFailed, Outcome, split_importance, think, when

MAX_ENTRIES = 30
MAX_INSIGHTS = 3


def since_last_reflection(persona):
    """The persona's journal entries after its latest reflection (the reflections themselves excluded)."""
    entries = JournalEntry.objects.filter(persona=persona).exclude(kind=Activity.REFLECTION)
    last = (
        JournalEntry.objects.filter(persona=persona, kind=Activity.REFLECTION)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return entries.filter(created_at__gt=last) if last else entries


def importance_since_last_reflection(persona) -> int:
    """The scores summed (entries the model gave no score add nothing)."""
    return since_last_reflection(persona).aggregate(total=Sum("importance"))["total"] or 0


def run(run) -> Outcome:
    persona = run.persona
    entries = list(since_last_reflection(persona).order_by("-created_at")[:MAX_ENTRIES])[::-1]
    if not entries:
        return Outcome(result="Nothing new to reflect on since the last reflection.", skipped=True)
    listed = "\n".join(
        f"- ({entry.created_at:%Y-%m-%d %H:%M}, {entry.get_kind_display().lower()}"
        + (f", importance {entry.importance}" if entry.importance is not None else "")
        + f") {ellipsis(entry.text, 400)}"
        for entry in entries
    )
    answer = think(
        run,
        f"It is {when(persona)}. Reflect on your journal since your last reflection:\n\n{listed}\n\n"
        f"What are the {MAX_INSIGHTS} most important high-level insights you can draw from these, about your "
        "work, your team and yourself? Write each on a line of its own starting with '- '. " + IMPORTANCE_ASK,
        max_tokens=500,
    )
    insights, importance = split_importance(answer)
    if not insights:
        raise ActivityFailed("The model wrote no insights.")
    return Outcome(result=insights, journal=insights, importance=importance, share=insights)
