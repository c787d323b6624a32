"""What a process is doing now, in the words the control panel uses (the dashboard and the lists alike):
in a turn, waiting for its caller's next words, or ended.

It reads rows annotated by `with_live_state(now)` (of processes or of sessions), whose `in_turn` is
decided by `CallerSession.objects.in_turn(now)` alone.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from .display import human_duration
from .models import CallerSession, Process


@dataclass(frozen=True)
class LiveState:
    key: str  # in-turn, waiting, pending, completed, failed: a CSS class and what tests look for
    label: str  # "In a turn now", "Waiting for the caller", "Completed", ...
    since: datetime | None = None  # waiting: since the last transcript line (or the start)
    idle: str = ""  # waiting: for how long, e.g. "2m 05s"


def live_state(process: Process, now: datetime) -> LiveState:
    if process.status == Process.Status.COMPLETED:
        return LiveState("completed", "Completed")
    if process.status == Process.Status.FAILED:
        return LiveState("failed", "Failed")
    if process.in_turn:
        return LiveState("in-turn", "In a turn now")
    if process.status == Process.Status.PENDING:
        return LiveState("pending", "Pending")
    since = process.last_message_at or process.started_at
    return LiveState("waiting", "Waiting for the caller", since, human_duration(now - since))


def session_state(session: CallerSession, now: datetime) -> LiveState:
    """The same for a caller session annotated by `CallerSession.objects.with_live_state(now)`."""
    if session.ended_at is not None:
        return LiveState("ended", "Ended")
    if session.in_turn:
        return LiveState("in-turn", "In a turn now")
    since = session.last_message_at or session.created_at
    return LiveState("waiting", "Waiting for the caller", since, human_duration(now - since))


def since_text(state: LiveState) -> str:
    """`since 12:03:04 UTC (2m 05s)` for a waiting process, "" otherwise."""
    if state.since is None:
        return ""
    at = timezone.localtime(state.since)
    day = "" if at.date() == timezone.localdate() else f"{at:%Y-%m-%d} "
    return f"since {day}{at:%H:%M:%S} {at.tzname()} ({state.idle})"
