"""The process page's timeline: each turn's steps on a time axis, from what the engine records, so an
operator sees where a slow answer's time went without any tracing backend.

A turn's row (agents.models.Turn) says when it arrived, began (after waiting for its caller's earlier
turn) and ended; each model call (LLMCall) when it was opened, its time to first token and its
duration; each tool result's line when its run began and ended; each delegated child (a Process whose
parent is this one) when it started and finished. Four queries, however long the conversation.
"""

from dataclasses import dataclass, field
from datetime import datetime

from .display import milliseconds
from .models import LLMCall, Message, Process, Turn

LANES = ("turn", "model", "tool", "child")
LANE_NAMES = {"turn": "turn", "model": "model calls", "tool": "tool runs", "child": "delegated"}
MIN_WIDTH = 0.4  # percent: a step of a millisecond still shows


@dataclass
class Step:
    kind: str  # wait, run, model, tool, child
    label: str
    start_ms: int  # from the turn's arrival
    duration_ms: int
    first_token_ms: int | None = None  # a model call's, from its start
    failed: bool = False
    left: float = 0.0  # percent of the axis
    width: float = 0.0
    marker: float | None = None  # the first token, in percent of the axis

    @property
    def title(self) -> str:
        first = f", first token after {milliseconds(self.first_token_ms)}" if self.first_token_ms else ""
        return f"{self.label}: {milliseconds(self.duration_ms)} from {milliseconds(self.start_ms)}{first}"


@dataclass
class TurnTimeline:
    turn: Turn
    lanes: list[tuple[str, list[Step]]] = field(default_factory=list)
    total_ms: int = 0
    ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """Where the time went, in words: the total, then each kind of step's share."""
        spent: dict[str, int] = {}
        for _lane, steps in self.lanes:
            for step in steps:
                spent[step.kind] = spent.get(step.kind, 0) + step.duration_ms
        parts = [
            f"{name} {milliseconds(spent[kind])}"
            for kind, name in (
                ("wait", "waiting"),
                ("model", "model"),
                ("tool", "tools"),
                ("child", "delegated"),
            )
            if spent.get(kind)
        ]
        return f"{milliseconds(self.total_ms)} in all" + (f": {', '.join(parts)}" if parts else "")


def _ms(since: datetime, at: datetime | None) -> int:
    return max(0, int((at - since).total_seconds() * 1000)) if at else 0


def timelines(process: Process) -> list[TurnTimeline]:
    """The timelines of the process's turns that the engine ran, oldest first."""
    turns = list(process.turns.exclude(started_at=None).order_by("id"))
    if not turns:
        return []
    calls: dict[int, list[LLMCall]] = {}
    for call in process.llm_call_rows.exclude(turn=None).order_by("created_at", "id"):
        calls.setdefault(call.turn_id, []).append(call)
    tools: dict[int, list[Message]] = {}
    ran = process.messages.filter(role=Message.Role.TOOL, started_at__isnull=False).exclude(turn=None)
    for line in ran.order_by("id").only("turn_id", "name", "started_at", "created_at"):
        tools.setdefault(line.turn_id, []).append(line)
    children = list(process.children.select_related("persona").order_by("started_at", "id"))
    return [_timeline(turn, calls.get(turn.pk, []), tools.get(turn.pk, []), children) for turn in turns]


def _timeline(turn: Turn, calls, tool_lines, children) -> TurnTimeline:
    start = turn.arrived_at
    end = turn.finished_at or turn.lease_until
    lanes: dict[str, list[Step]] = {lane: [] for lane in LANES}
    if (waited := _ms(start, turn.started_at)) > 0:
        lanes["turn"].append(Step("wait", "waited for the caller's earlier turn", 0, waited))
    lanes["turn"].append(
        Step("run", f"turn {turn.state}", waited, _ms(turn.started_at, end), failed=turn.state == "failed")
    )
    for number, call in enumerate(calls, 1):
        lanes["model"].append(
            Step(
                "model",
                f"model call {number} ({call.model})",
                _ms(start, call.created_at),
                call.duration_ms,
                first_token_ms=call.ttft_ms,
                failed=bool(call.error) or call.finish_reason == "cancelled",
            )
        )
    for line in tool_lines:
        lanes["tool"].append(
            Step(
                "tool",
                line.name or "tool",
                _ms(start, line.started_at),
                _ms(line.started_at, line.created_at),
            )
        )
    for child in children:
        if turn.started_at <= child.started_at <= end:
            finished = child.finished_at or child.started_at
            label = f"{child.persona.name} ({child.public_id}, {child.status})"
            lanes["child"].append(
                Step(
                    "child",
                    label,
                    _ms(start, child.started_at),
                    _ms(child.started_at, finished),
                    failed=child.status == Process.Status.FAILED,
                )
            )
    steps = [step for lane in lanes.values() for step in lane]
    total = max([_ms(start, end), *(s.start_ms + s.duration_ms for s in steps)]) or 1
    for step in steps:
        step.left = step.start_ms * 100 / total
        step.width = max(step.duration_ms * 100 / total, MIN_WIDTH)
        if step.first_token_ms is not None:
            step.marker = (step.start_ms + step.first_token_ms) * 100 / total
    ticks = [(i * 25.0, milliseconds(total * i // 4)) for i in range(5)]
    kept = [(LANE_NAMES[lane], found) for lane, found in lanes.items() if found]
    return TurnTimeline(turn, kept, total, ticks)
