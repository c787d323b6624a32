"""What the life loop adds to its persona's prompts: its current goals and its latest reflection.

Registered with agents.prompt_context in LifeloopConfig.ready(); it answers for the persona whose conversation
it is, so one persona's goals never reach another's prompt. Short on purpose (a few lines), to leave the
prompt budget to the conversation. Two indexed queries.
"""

from agents.display import ellipsis

from .models import Activity, Goal, JournalEntry

MAX_GOALS = 5
REFLECTION_CHARS = 400


def goals_and_reflection(persona, caller) -> str:
    goals = list(
        Goal.objects.filter(persona=persona, status=Goal.Status.ACTIVE)
        .order_by("-updated_at")
        .values_list("title", flat=True)[:MAX_GOALS]
    )
    reflection = (
        JournalEntry.objects.filter(persona=persona, kind=Activity.REFLECTION)
        .order_by("-created_at")
        .values_list("text", flat=True)
        .first()
    )
    lines = []
    if goals:
        lines.append("Your current goals: " + "; ".join(goals) + ".")
    if reflection:
        lines.append("Your latest reflection: " + ellipsis(" ".join(reflection.split()), REFLECTION_CHARS))
    return "\n".join(lines)
