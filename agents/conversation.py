"""The process page's conversation: its transcript in turns, each with the model calls made while it ran,
and where a turn failed or was cancelled.

A turn starts at each of the caller's messages (what comes before the first one, a delegated task's
brief or a system line, opens the first turn). A model call belongs to the turn that had started when it
was recorded: calls and answers are written together when the turn ends, after the caller's words.
"""

from bisect import bisect_right
from dataclasses import dataclass, field

from .models import LLMCall, Message, Process


@dataclass
class Line:
    message: Message
    speaker: str  # "Caller", the persona's name, "Tool result", "System"
    show_date: bool  # the first line, and the first of each new (UTC) day, carry their date


@dataclass
class Problem:
    """A model call that did not end with an answer, shown where its turn is."""

    call: LLMCall
    kind: str  # failed, cancelled
    text: str


@dataclass
class Turn:
    lines: list[Line] = field(default_factory=list)
    calls: list[LLMCall] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        found = []
        for call in self.calls:
            if call.finish_reason == "cancelled":
                found.append(Problem(call, "cancelled", cancelled_text(call)))
            elif call.error:
                found.append(Problem(call, "failed", f"The model call failed: {call.error}"))
        return found


def cancelled_text(call: LLMCall) -> str:
    if call.usage_source == LLMCall.UsageSource.PARTIAL:
        return (
            "Cancelled: the caller left before the answer ended (its usage is what was counted until then)."
        )
    return "Cancelled before the answer ended."


def speaker(message: Message, persona_name: str) -> str:
    if message.role == Message.Role.USER:
        return message.name or "Caller"
    if message.role == Message.Role.ASSISTANT:
        return persona_name
    if message.role == Message.Role.TOOL:
        return f"Tool result ({message.name})" if message.name else "Tool result"
    return "System"


def conversation(process: Process) -> list[Turn]:
    """The process's transcript as turns, oldest first (two queries: its messages, its calls)."""
    messages = list(process.messages.order_by("id"))
    calls = list(process.llm_call_rows.order_by("created_at", "id"))
    turns: list[Turn] = []
    last_day = None
    for message in messages:
        if not turns or (message.role == Message.Role.USER and turns[-1].lines):
            turns.append(Turn())
        day = message.created_at.date()
        turns[-1].lines.append(Line(message, speaker(message, process.persona.name), day != last_day))
        last_day = day
    if not turns and calls:
        turns.append(Turn())  # calls with no transcript (a turn refused before any words were stored)
    starts = [turn.lines[0].message.created_at for turn in turns if turn.lines]
    for call in calls:
        turns[max(bisect_right(starts, call.created_at) - 1, 0)].calls.append(call)
    return turns
