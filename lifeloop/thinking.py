"""How an activity thinks: a turn of the engine with the run's own caller, and reading the answer."""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import timezone

from agents.callers import Caller
from agents.display import ellipsis
from agents.models import Channel
from agents.principals import Principal, Trust
from agents.runtime import TurnInput, complete_turn_sync

from .models import ActivityRun

IMPORTANCE_ASK = (
    "Then, on a last line of its own, rate how important this is to you from 1 (mundane) to 10 "
    "(life-changing), as 'Importance: N'."
)
_IMPORTANCE = re.compile(r"^[\W_]*importance[\W_]*(\d{1,2})\b.*$", re.IGNORECASE | re.MULTILINE)


class ActivityFailed(Exception):
    """The activity could not do its work; the message is the reason recorded on the run."""


@dataclass
class Outcome:
    result: str  # what the run did, in a line or a paragraph (the trigger's `result`)
    journal: str = ""  # the memory-stream entry; "" for none
    importance: int | None = None  # 1-10 as the model scored it; None when it gave none (not invented)
    share: str = ""  # worth posting to the life-loop Slack channel; "" for nothing
    error: str = ""  # a partial failure: the run is failed with this reason, and the result stands
    skipped: bool = False  # nothing to do (no feeds, nothing to reflect on)


def think(run: ActivityRun, prompt: str, *, max_tokens: int | None = None) -> str:
    """One turn of the engine as this run's caller (so the run is one process on the `life` channel),
    with the persona's model, prompt and context, and the life loop's principal: it reads text from the
    internet, so it touches nobody's notes and gives no standing instructions (docs/security.md).
    Raises agents.errors.TurnError when the turn fails."""
    end = complete_turn_sync(
        TurnInput(
            messages=[{"role": "user", "content": prompt}],
            caller=Caller(run.caller_id, Channel.LIFE),
            principal=Principal(Trust.LIFE, name=f"{run.persona.name}'s life loop"),
            persona_name=run.persona.name,
            task=f"Life loop: {run.get_activity_display().lower()}",
            max_tokens=max_tokens,
        )
    )
    return end.text.strip()


def split_importance(text: str) -> tuple[str, int | None]:
    """The answer without its 'Importance: N' line, and N (1-10; None when the model gave none)."""
    found = list(_IMPORTANCE.finditer(text))
    if not found:
        return text.strip(), None
    last = found[-1]
    rest = (text[: last.start()] + text[last.end() :]).strip()
    return rest, clamp_importance(last.group(1))


def clamp_importance(value) -> int | None:
    """A score the model gave, brought into 1-10; None for none (or one that is not a number)."""
    try:
        return min(10, max(1, int(value)))
    except (TypeError, ValueError):
        return None


def parse_json(text: str) -> dict:
    """The JSON object in the model's answer (code fences and words around it are tolerated)."""
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        data = None
    if not isinstance(data, dict):
        raise ActivityFailed(f"The model did not answer with the JSON asked for: {ellipsis(text, 200)!r}")
    return data


def local_now(persona) -> datetime:
    try:
        zone = ZoneInfo(persona.time_zone or "UTC")
    except (ValueError, OSError):
        zone = ZoneInfo("UTC")
    return timezone.now().astimezone(zone)


def when(persona) -> str:
    """'Tuesday 3 March 2026, 09:00 (Europe/Berlin)': the persona's own time, for prompts."""
    now = local_now(persona)
    return f"{now:%A} {now.day} {now:%B %Y, %H:%M} ({persona.time_zone or 'UTC'})"


def bullet_lines(lines, empty: str) -> str:
    lines = [f"- {line}" for line in lines]
    return "\n".join(lines) if lines else empty
