"""Conversations as they were recorded, in two portable forms (one JSON object per conversation, one
conversation a line: JSONL):

- the replay's input (`replay_record`): the conversation's lines in OpenAI's message format, and each
  turn of the caller: where its lines are, the prompt context it was answered with (the system texts
  after the persona's own, as its first model call was sent them), the results of the tools it ran, and
  its answer with tokens, cost and time to first token. agents.replay reads exactly this;
- OpenAI's chat fine-tuning format (`fine_tuning_record`): `{"messages": [...]}` with the persona's
  prompt as it was sent first, tool calls and results kept, and the tools offered, as schemas.

Both read only what is stored: a line or call a retention rule removed is not there, so it is not
exported (`exportable` is the one place that picks what may be).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from .conversation import conversation
from .models import Channel, LLMCall, Message, Process
from .prompts import stored_form

FORMAT = "tron.replay/1"
# Processes that are no conversation of a caller's: the team's own work and earlier replays.
NOT_CONVERSATIONS = (Channel.MEMORY, Channel.REPLAY)


def exportable(processes):
    """The processes that may be exported or replayed: conversations with a transcript."""
    return (
        processes.exclude(channel__in=NOT_CONVERSATIONS).filter(messages__role=Message.Role.USER).distinct()
    )


@dataclass(frozen=True)
class Metrics:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    ttft_ms: int | None = None
    model: str = ""


def turn_metrics(calls: list[LLMCall]) -> Metrics:
    """A turn's model calls added up; its time to first token is from its first call's start to the
    first token of words (a call that only asked for tools has none), the same for an original turn
    and a candidate's."""
    calls = sorted(calls, key=lambda call: (call.created_at, call.pk))
    ttft = None
    for call in calls:
        if call.ttft_ms is not None:
            ttft = int((call.created_at - calls[0].created_at).total_seconds() * 1000) + call.ttft_ms
            break
    return Metrics(
        input_tokens=sum(call.input_tokens for call in calls),
        output_tokens=sum(call.output_tokens for call in calls),
        cost_usd=sum((call.cost_usd for call in calls), Decimal(0)),
        ttft_ms=ttft,
        model=calls[-1].model if calls else "",
    )


def prompt_context(call: LLMCall | None) -> list[str]:
    """The system texts a call's prompt carried after the persona's own prompt (standing instructions,
    the caller's notes, the life loop's goals, delegated results, the caller's app's context)."""
    messages = (call.request or {}).get("messages") or [] if call is not None else []
    found = []
    for message in messages[1:]:
        if message.get("role") != "system":
            break
        found.append(message.get("content") or "")
    return found


def replay_record(process: Process) -> dict:
    """The conversation as the replay reads it (see the module's docstring)."""
    lines, turns = [], []
    for number, turn in enumerate(conversation(process), 1):
        start = len(lines)
        lines += [
            stored_form(line.message) for line in turn.lines if line.message.role != Message.Role.SYSTEM
        ]
        said = []
        for line in lines[start:]:
            if line["role"] != "user":
                break
            said.append(line)
        if not said:
            continue  # no words of the caller's (a conversation's opening, lines a platform added)
        answers = [line for line in lines[start:] if line["role"] == "assistant" and line["content"]]
        metrics = turn_metrics(turn.calls)
        turns.append(
            {
                "turn": number,
                "lines": [start, len(lines)],
                "said": len(said),
                "context": prompt_context(turn.calls[0] if turn.calls else None),
                "max_tokens": ((turn.calls[0].request or {}).get("max_tokens") if turn.calls else None),
                "tool_results": [
                    [line.message.name, line.message.content]
                    for line in turn.lines
                    if line.message.role == Message.Role.TOOL
                ],
                "answer": answers[-1]["content"] if answers else "",
                "model": metrics.model,
                "input_tokens": metrics.input_tokens,
                "output_tokens": metrics.output_tokens,
                "cost_usd": str(metrics.cost_usd),
                "ttft_ms": metrics.ttft_ms,
            }
        )
    return {
        "format": FORMAT,
        "process": process.public_id,
        "persona": process.persona.name,
        "channel": process.channel,
        "started_at": process.started_at.isoformat(),
        "principal": {
            "trust": process.trust,
            "caller_id": process.principal_caller_id,
            "name": process.principal_name,
        },
        "messages": lines,
        "turns": turns,
    }


def fine_tuning_record(process: Process) -> dict | None:
    """The conversation in OpenAI's chat fine-tuning format, ending with the persona's last answer;
    None for one the persona never answered."""
    from .tools import TOOLS

    first_call = process.llm_call_rows.order_by("created_at", "id").first()
    sent = ((first_call.request or {}).get("messages") or []) if first_call else []
    persona_prompt = (
        sent[0]["content"] if sent and sent[0].get("role") == "system" else process.persona.system_prompt
    )
    lines = [
        stored_form(message) for message in process.messages.exclude(role=Message.Role.SYSTEM).order_by("id")
    ]
    while lines and lines[-1]["role"] != "assistant":
        lines.pop()  # a turn that failed, or words never answered: nothing to learn from
    if not lines:
        return None
    record = {"messages": [{"role": "system", "content": persona_prompt}, *lines]}
    called = {call["function"]["name"] for line in lines for call in line.get("tool_calls") or []}
    if called:
        record["tools"] = [TOOLS[name].schema() for name in sorted(called) if name in TOOLS]
    return record


FORMS = {"openai": fine_tuning_record, "replay": replay_record}


def export_lines(processes, form: str) -> Iterator[str]:
    """Each exportable conversation of `processes` (oldest first) as one JSON line in `form` ("openai":
    OpenAI's chat fine-tuning format, "replay": the replay's input); one the form has nothing for (never
    answered) is left out. Reads a conversation at a time."""
    make = FORMS[form]
    for process in exportable(processes).select_related("persona").order_by("started_at", "id").iterator(100):
        if (record := make(process)) is not None:
            yield json.dumps(record, ensure_ascii=False)
