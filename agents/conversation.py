"""The process page's conversation: its transcript in turns, each with the model calls made while it ran,
and where a turn failed or was cancelled.

Lines and calls the engine wrote carry their turn (agents.models.Turn). Lines a platform reported (a
phone call's report) carry none: a turn starts at each of the caller's messages there, and a call with
no turn belongs to the turn that had started when it was made.
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
class TurnView:
    turn_id: int | None = None  # the engine's Turn, when its lines carry one
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


def conversation(process: Process) -> list[TurnView]:
    """The process's transcript as turns, oldest first (two queries: its messages, its calls)."""
    messages = list(process.messages.order_by("id"))
    calls = list(process.llm_call_rows.order_by("created_at", "id"))
    turns: list[TurnView] = []
    last_day = None
    for message in messages:
        current = turns[-1] if turns else None
        new_turn = (
            message.turn_id != current.turn_id
            if message.turn_id is not None and current is not None
            else message.role == Message.Role.USER and current is not None and bool(current.lines)
        )
        if current is None or new_turn:
            turns.append(TurnView(message.turn_id))
        elif turns[-1].turn_id is None:
            turns[-1].turn_id = message.turn_id
        day = message.created_at.date()
        turns[-1].lines.append(Line(message, speaker(message, process.persona.name), day != last_day))
        last_day = day
    by_turn = {turn.turn_id: turn for turn in turns if turn.turn_id is not None}
    untimed = []
    for call in calls:
        if call.turn_id in by_turn:
            by_turn[call.turn_id].calls.append(call)
        else:
            untimed.append(call)
    if untimed and not turns:
        turns.append(TurnView())  # calls with no transcript (a turn refused before any words were stored)
    starts = [turn.lines[0].message.created_at for turn in turns if turn.lines]
    for call in untimed:
        turns[max(bisect_right(starts, call.created_at) - 1, 0)].calls.append(call)
    return turns
