"""What a turn reads from and writes to the database: two transactions, one at each end of the turn.

`begin_turn` claims the caller's session (a turn of the same caller that is still running makes it
wait), stores the caller's new words and reads the transcript the prompt continues. `record_turn` stores
the turn's model calls, its new transcript lines and its counters, and releases the session. Both are
sync and run on the runtime's writer thread (agents.dbthread); the engine (agents.runtime) calls them.
"""

import time
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F

from .models import CallerSession, LLMCall, Message, Persona, Process
from .prompts import has_client_history, new_messages, recent_messages, stored_form, unsaved
from .sessions import claim_session, release_session


@dataclass
class Begun:
    session: CallerSession
    history: list[dict]  # the stored transcript the prompt continues (oldest first), this turn's words last


@dataclass
class CallRecord:
    """One model call of a turn, as LLMCall stores it."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: object
    usage_source: str
    finish_reason: str
    ttft_ms: int | None
    duration_ms: int
    error: str = ""


@dataclass
class TurnRecord:
    calls: list[CallRecord] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)  # new transcript lines, OpenAI-style, in order
    tool_calls: int = 0
    error: str | None = None  # the turn failed; None when it answered or its consumer left
    cancelled: bool = False


def begin_turn(caller, persona: Persona, messages: list[dict], task: str) -> Begun | None:
    """One transaction: claim the session, read what the prompt needs, store the caller's new words.
    None when another turn of this caller holds the session."""
    with transaction.atomic():
        session, created = claim_session(caller, persona, task=task)
        if session is None:
            return None
        new = new_messages(messages)
        if created:
            history = []
        elif has_client_history(messages):
            # The client's history is the prompt; only the tail is read, so a client that retries a
            # failed turn (VAPI, the SDKs) does not get its words stored twice.
            history = []
            new = unsaved(recent_messages(session, limit=len(new) or 1), new)
        else:
            history = recent_messages(session)
            new = unsaved(history, new)
        rows = Message.objects.bulk_create(
            _message(session, line, created_at=session.last_seen_at) for line in new
        )
        return Begun(session, history + [stored_form(row) for row in rows])


def record_turn(session: CallerSession, record: TurnRecord) -> None:
    """One transaction: the turn's LLM calls, its transcript lines, the process counters and its
    outcome, and the session released for the caller's next turn."""
    process = session.process
    with transaction.atomic():
        LLMCall.objects.bulk_create(LLMCall(process=process, **vars(call)) for call in record.calls)
        Message.objects.bulk_create(_message(session, line) for line in record.lines)
        changes = {
            "input_tokens": F("input_tokens") + sum(c.input_tokens for c in record.calls),
            "output_tokens": F("output_tokens") + sum(c.output_tokens for c in record.calls),
            "llm_calls": F("llm_calls") + len(record.calls),
            "tool_calls": F("tool_calls") + record.tool_calls,
            "cost_usd": F("cost_usd") + sum(c.cost_usd for c in record.calls),
        }
        # The process carries its last failed turn's reason until a turn succeeds again (a consumer who
        # left changes nothing); a session that ends with it set ends `failed` (finish_by_outcome).
        if record.error is not None:
            changes["error"] = record.error
        elif not record.cancelled:
            changes["error"] = ""
        Process.objects.filter(pk=process.pk).update(**changes)
        release_session(session)


def _message(session: CallerSession, line: dict, **extra) -> Message:
    return Message(
        process_id=session.process_id,
        session=session,
        role=line["role"],
        content=line["content"],
        tool_calls=line.get("tool_calls"),
        tool_call_id=line.get("tool_call_id", ""),
        name=line.get("name", ""),
        **extra,
    )


def elapsed_ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)
