"""What a turn reads from and writes to the database: two transactions, one at each end of the turn.

`peek_turn` reads what the prompt needs before the model is called (with the results of delegated work
that finished for this conversation, agents.delegation); `begin_turn` claims the caller's
session (as the peek read it: a turn of the same caller that is still running, or came between, makes
the turn read again) and stores the caller's new words, while the model works on its first token. `record_turn` stores
the turn's model calls, its new transcript lines and its counters, and releases the session. Both are
sync and run on the runtime's writer thread (agents.dbthread); the engine (agents.runtime) calls them.
"""

import time
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import budgets, prepared
from .callers import is_one_off
from .context import context_for, has_providers
from .delegation import Delivery, mark_delivered, undelivered_results
from .models import CallerSession, LLMCall, Message, Persona, Process
from .prompts import has_client_history, new_messages, recent_messages, unsaved
from .sessions import (
    Seen,
    claim_session,
    end_session,
    read_open_session,
    refuse_if_recently_full,
    release_session,
)


@dataclass
class Peek:
    """What the prompt needs, read before the model is called: the session the turn continues (as
    `claim_session` will check it is still the same), its transcript, and other apps' context."""

    seen: Seen | None  # the caller's open session as read (None: claim it as it is when the turn begins)
    claimed: bool  # another turn of this caller runs in the session it continues now
    history: list[dict]  # the stored transcript the prompt continues (oldest first), this turn's words last
    new: list[dict]  # the caller's words to store
    context: list[str]  # what other apps add to the prompt (agents.context)
    results: list[Delivery] = field(default_factory=list)  # delegated work finished for this conversation


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
    delivered: list[int] = field(default_factory=list)  # children whose results the prompt carried
    holds: list = field(default_factory=list)  # budgets.Hold of each model call, given back when recorded


def peek_turn(caller, persona: Persona, messages: list[dict]) -> Peek:
    """Read only: the caller's continuing session, whether a turn holds it, what the prompt continues."""
    now = timezone.now()
    seen = read_open_session(caller, persona, now)
    session = seen.session if seen.continues else None
    if session is None:
        refuse_if_recently_full()  # a new conversation would start a process
    new = new_messages(messages)
    history = []
    if session is not None and has_client_history(messages):
        # The client's history is the prompt; only the tail is read, so a client that retries a failed
        # turn (VAPI, the SDKs) does not get its words stored twice.
        new = unsaved(recent_messages(session, limit=len(new) or 1), new)
    elif session is not None:
        history = recent_messages(session)
        new = unsaved(history, new)
    return Peek(
        seen=seen,
        claimed=bool(session and session.turn_claimed_until and session.turn_claimed_until >= now),
        history=history + new,
        new=new,
        context=context_for(persona, caller) if has_providers() else [],
        results=undelivered_results(persona, caller),
    )


def begin_turn(
    caller, persona: Persona, task: str, peek: Peek, hold_usd=None
) -> tuple[CallerSession | None, budgets.Hold | None]:
    """One transaction: claim the session the peek found (or a new one), hold `hold_usd` against the
    persona's budget for the turn's first model call (raises budgets.OverBudget, and nothing is
    stored), and store the caller's new words. (None, None) when the session cannot be claimed as read:
    another turn holds it, or came between."""
    with transaction.atomic():
        session, _created = claim_session(caller, persona, task=task, seen=peek.seen)
        if session is None:
            return None, None
        held = budgets.hold(persona, hold_usd) if hold_usd is not None else None
        for line in peek.new:
            _insert_message(_message(session, line, created_at=session.last_seen_at))
        return session, held


# Every turn's rows (agents.prepared: a message or an LLM call 0.12 ms of CPU through the ORM's bulk_create,
# 0.05 ms so).
_insert_message = prepared.insert(Message)
_insert_llm_call = prepared.insert(LLMCall)

# A turn's counters added to its process, and its outcome (`error`: None leaves it as it is). In every
# turn's record: 0.60 ms of CPU through the ORM, 0.03 ms prepared (agents.prepared).
_add_turn = prepared.update(
    lambda pk, input_tokens, output_tokens, llm_calls, tool_calls, cost, error: (
        Process.objects.filter(pk=pk),
        {
            "input_tokens": F("input_tokens") + input_tokens,
            "output_tokens": F("output_tokens") + output_tokens,
            "llm_calls": F("llm_calls") + llm_calls,
            "tool_calls": F("tool_calls") + tool_calls,
            "cost_usd": F("cost_usd") + cost,
            "error": Coalesce(error, F("error")),
        },
    ),
    Process,
    pk="id",
    input_tokens="input_tokens",
    output_tokens="output_tokens",
    llm_calls="llm_calls",
    tool_calls="tool_calls",
    cost="cost_usd",
    error="error",
)


def record_turn(session: CallerSession, record: TurnRecord) -> None:
    """One transaction: the turn's LLM calls, its transcript lines, the process counters and its
    outcome, the persona's spend today (and its holds given back), and the session released for the
    caller's next turn; a one-off caller's (anonymous: no request of theirs can continue it) ended."""
    process = session.process
    cost = sum((c.cost_usd for c in record.calls), 0)
    # The process carries its last failed turn's reason until a turn succeeds again (a consumer who
    # left changes nothing: None keeps it); a session that ends with it set ends `failed`
    # (finish_by_outcome).
    error = record.error
    if error is None and not record.cancelled:
        error = ""  # answered: the reason of an earlier failure goes
    with transaction.atomic():
        for call in record.calls:
            _insert_llm_call(LLMCall(process=process, **vars(call)))
        for line in record.lines:
            _insert_message(_message(session, line))
        _add_turn(
            pk=process.pk,
            input_tokens=sum(c.input_tokens for c in record.calls),
            output_tokens=sum(c.output_tokens for c in record.calls),
            llm_calls=len(record.calls),
            tool_calls=record.tool_calls,
            cost=cost,
            error=error,
        )
        if record.delivered and record.error is None and not record.cancelled:
            mark_delivered(record.delivered)  # answered with them: they reached the conversation
        if cost or record.holds:
            budgets.settle(process.persona_id, cost, record.holds)
        release_session(session)
        if is_one_off(session.caller_id):
            end_session(session)


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
