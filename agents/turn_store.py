"""The turn store: every database step of a turn, and the only way the engine (agents.runtime) reaches
the database. Plain sync functions, run on the engine's database threads (agents.dbthread): `claim`,
`is_ahead`, `renew`, `record_call`, `open_call`, `finish`, `withdraw`, `reap_lapsed`. A turn's row
(agents.models.Turn) is its place in line and its lease-held claim: docs/architecture.md, "A turn".

Rows that turns of different callers share are updated in one order in every transaction: the caller's
usage row (callers may share an allowance, e.g. one address), then the persona's day of spend. On
PostgreSQL the claim's order (usage, then day) against the finish's (day, then usage) deadlocked.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import allowances, budgets, pricing, tokens
from .callers import Caller, is_one_off
from .delegation import Delivery, mark_delivered, undelivered_results
from .errors import TurnLost
from .llm.base import LLMRequest
from .models import CallerSession, Channel, LLMCall, Message, Persona, Process, Turn
from .personas import resolve_persona
from .principals import Principal
from .prompt_context import context_for
from .prompts import has_client_history, new_messages, recent_messages, unsaved
from .sessions import continue_or_open, end_session

log = logging.getLogger(__name__)

LOST = "Lost mid-turn: the server running it stopped before it was recorded."
LOST_HERE = (
    "This turn was ended as lost while it ran: its server did not renew its claim in time. Send the "
    "request again."
)
MODEL_LENGTH = LLMCall._meta.get_field("model").max_length
FINISH_REASON_LENGTH = LLMCall._meta.get_field("finish_reason").max_length


def lease_end(now):
    return now + timedelta(seconds=settings.TRON_TURN_LEASE_SECONDS)


@dataclass
class Call:
    """A model call the store opened: its row and what it holds against the persona's budget and the
    caller's allowance."""

    id: int
    request: LLMRequest
    held: budgets.Hold | None
    caller_held: budgets.Hold | None = None


@dataclass
class Begun:
    """A turn that runs: what it claimed and what its first model call needs."""

    turn_id: int
    allowance: str  # whose allowance its calls count against ("" for none)
    persona: Persona
    session: CallerSession
    conversation: list[dict]  # the conversation the prompt continues (oldest first), this turn's words last
    results: list[Delivery]  # delegated work that finished for this conversation
    call: Call  # its first model call, opened
    waited: bool = False  # it waited in line behind an earlier turn of its caller


@dataclass
class CallOutcome:
    """How one model call ended, as its LLMCall row records it."""

    model: str
    input_tokens: int
    output_tokens: int
    usage_source: str
    finish_reason: str
    ttft_ms: int | None
    duration_ms: int
    error: str = ""
    lines: list[dict] = field(default_factory=list)  # the transcript lines it led to, OpenAI-style
    tool_calls: int = 0  # calls of the persona's tools it made
    tool_runs: dict[str, "ToolRun"] = field(default_factory=dict)  # when they ran, by tool call id
    cost_usd: Decimal = Decimal(0)  # priced when it is recorded (prices are read off the event loop)


@dataclass(frozen=True)
class ToolRun:
    """When one of the persona's tools ran (its transcript line keeps it: the admin's timeline)."""

    started_at: datetime
    finished_at: datetime


@dataclass
class Claim:
    """Who asks for a turn, and with what."""

    caller: Caller
    principal: Principal
    persona_name: str | None
    messages: list[dict]
    task: str
    provider: str
    trace: tuple[str, str] = ("", "")  # the turn's trace and span ids, while tracing is on
    # A replay's turn (agents.runtime.Replaying): its candidate persona, and the prompt context the
    # original turn had instead of what the providers say today.
    persona: Persona | None = None
    context: tuple[str, ...] | None = None


# -- claiming --------------------------------------------------------------------------------------------


def claim(spec: Claim, turn_id: int | None, prepare) -> Begun | int:
    """Run the turn `turn_id` (None: a new turn, which takes its place in line) when no earlier live turn
    of its caller waits or runs; else keep (or take) its place and return its id. `prepare(persona,
    conversation, extra)` makes the first model call's request from what was read. Raises the refusals
    of agents.errors (NoPersona, OverBudget, CallerLimited, Overloaded): then nothing of the attempt is
    stored (a turn already in line keeps its place)."""
    for _attempt in range(3):
        try:
            return _claim(spec, turn_id, prepare)
        except IntegrityError:
            # Another turn of the caller began running between our look and our write (PostgreSQL's
            # concurrent transactions; SQLite takes them one at a time): look again.
            log.debug("%s: two turns claimed at once", spec.caller.caller_id)
        except _Lapsed:
            # A turn of the caller was lost with its server: it is ended in transactions of its own, before
            # the claim's (inside it, its rows would be held until the claim ends, the persona's day before
            # the claim's usage row, and a refusal of the claim would undo the ending), then looked again.
            reap_lapsed(spec.caller.caller_id)
    raise RuntimeError(f"could not claim a turn for {spec.caller.caller_id}")


class _Lapsed(Exception):
    """The claim found a turn of its caller whose lease ran out: it leaves its transaction (nothing written)."""


def _claim(spec: Claim, turn_id: int | None, prepare) -> Begun | int:
    now = timezone.now()
    caller_id = spec.caller.caller_id
    with transaction.atomic():
        # Its place in line, locked as the reaper takes it; gone when it was given up (reaped) while this
        # server was too slow to renew it: then it takes a new one.
        if turn_id is not None and not Turn.objects.select_for_update().filter(pk=turn_id).exists():
            turn_id = None
        # The caller's other turns in line (waiting or running): none, nearly always.
        others = Turn.objects.filter(caller_id=caller_id, state__in=Turn.LIVE_STATES).exclude(pk=turn_id)
        others = list(others.values_list("pk", "lease_until"))
        if any(lease < now for _pk, lease in others):
            raise _Lapsed
        if any(lease >= now and (turn_id is None or pk < turn_id) for pk, lease in others):
            if turn_id is None:  # its place in line
                return Turn.objects.create(caller_id=caller_id, lease_until=lease_end(now), **_whom(spec)).pk
            Turn.objects.filter(pk=turn_id).update(lease_until=lease_end(now))
            return turn_id
        persona = spec.persona or resolve_persona(spec.persona_name)
        allowance = allowances.counted(spec.principal)
        limits = None
        if allowance:
            # Work a caller's turn started (a delegated task, the memory writer) spends the caller's
            # allowance, but it is no request of theirs.
            background = spec.caller.channel in (Channel.DELEGATED, Channel.MEMORY)
            limits = allowances.limits_of(allowance) if background else allowances.admit(allowance, now)
        session, opened = continue_or_open(spec.caller, persona, principal=spec.principal, task=spec.task)
        conversation, new = _conversation(session, spec.messages, opened)
        if spec.context is not None:
            results, extra = [], list(spec.context)
        else:
            results = undelivered_results(persona, spec.caller)
            extra = context_for(persona, spec.caller) + [r.text for r in results]
        request = prepare(persona, conversation, extra)
        held, caller_held = _hold(persona, request, allowance, limits, now)
        # It runs: the unique constraint lets one turn of the caller run.
        turn = (
            Turn.objects.get(pk=turn_id) if turn_id is not None else Turn(caller_id=caller_id, **_whom(spec))
        )
        turn.state, turn.started_at, turn.lease_until = Turn.State.RUNNING, now, lease_end(now)
        turn.session, turn.process, turn.allowance = session, session.process, allowance
        turn.held_usd = held.amount if held else 0
        turn.caller_held_usd = caller_held.amount if caller_held else 0
        turn.trace_id, turn.span_id = spec.trace
        turn.save()
        if spec.trace[0] and not session.process.trace_id:  # the process's trace: its first traced turn's
            Process.objects.filter(pk=session.process_id, trace_id="").update(trace_id=spec.trace[0])
        Message.objects.bulk_create(_message(session, turn, line, created_at=now) for line in new)
        call = _open(turn, session.process, request, spec.provider, held, caller_held)
    return Begun(turn.pk, allowance, persona, session, conversation, results, call)


def _whom(spec: Claim) -> dict:
    principal_length = Turn._meta.get_field("principal").max_length
    return {"trust": spec.principal.trust, "principal": str(spec.principal)[:principal_length]}


def _conversation(
    session: CallerSession, messages: list[dict], opened: bool
) -> tuple[list[dict], list[dict]]:
    """The stored conversation the prompt continues (the client's own history when it sends one), and
    the caller's new words to store: not again when the transcript already ends with them (a client
    retrying a failed turn). A session opened just now has no transcript to read."""
    new = new_messages(messages)
    if opened:
        return ([] if has_client_history(messages) else new), new
    if has_client_history(messages):
        # The client's history is the prompt; only the tail is read, for the retry check.
        return [], unsaved(recent_messages(session, limit=len(new) or 1), new)
    history = recent_messages(session)
    new = unsaved(history, new)
    return history + new, new


def is_ahead(turn_id: int, caller_id: str) -> bool:
    """Whether an earlier turn of the caller still waits or runs (read only)."""
    return Turn.objects.live().filter(caller_id=caller_id, pk__lt=turn_id).exists()


def renew(turn_id: int) -> bool:
    """The holder of a waiting or running turn is alive: its lease runs on from now, also when it ran out a
    moment ago and nobody ended the turn meanwhile (a late renewal: a stalled event loop, a backlog of
    writes). False only when the turn was ended (reaped as lost)."""
    live = Turn.objects.filter(pk=turn_id, state__in=Turn.LIVE_STATES)
    return bool(live.update(lease_until=lease_end(timezone.now())))


def withdraw(turn_id: int) -> None:
    """A turn that never ran leaves the line (refused while waiting, or its caller went away)."""
    Turn.objects.filter(pk=turn_id, state=Turn.State.WAITING).delete()


# -- model calls -----------------------------------------------------------------------------------------


def open_call(turn_id: int, process: Process, persona: Persona, request: LLMRequest, provider: str) -> Call:
    """Hold the next model call of a running turn against the budgets (raises OverBudget or
    CallerLimited, and nothing is stored) and open its row. Raises TurnLost when the turn was ended
    meanwhile (reaped as lost): then nothing is held or opened."""
    with transaction.atomic():
        # The turn first, locked, as the reaper takes it (then the caller's usage row, the persona's day).
        running = Turn.objects.select_for_update().filter(pk=turn_id, state=Turn.State.RUNNING)
        allowance = running.values_list("allowance", flat=True).first()
        if allowance is None:
            raise TurnLost(LOST_HERE)
        limits = allowances.limits_of(allowance) if allowance else None
        held, caller_held = _hold(persona, request, allowance, limits, timezone.now())
        if held or caller_held:
            Turn.objects.filter(pk=turn_id).update(
                held_usd=F("held_usd") + (held.amount if held else 0),
                caller_held_usd=F("caller_held_usd") + (caller_held.amount if caller_held else 0),
            )
        return _open(Turn(pk=turn_id), process, request, provider, held, caller_held)


def _hold(persona: Persona, request: LLMRequest, allowance: str, limits, now):
    """What the call holds against the persona's budget and the caller's allowance (either may be
    None: nothing to hold); raises OverBudget or CallerLimited."""
    budget = budgets.daily_budget(persona)
    if budget is None and limits is None:
        return None, None
    estimate = budgets.estimate(request)
    # The caller's usage row before the persona's day: the module's one order.
    caller_held = allowances.hold(allowance, limits, estimate, now) if limits is not None else None
    held = budgets.hold(persona, estimate, now) if budget is not None else None
    return held, caller_held


def _open(turn: Turn, process: Process, request: LLMRequest, provider: str, held, caller_held) -> Call:
    row = LLMCall.objects.create(
        process=process,
        turn=turn,
        provider=provider,
        model=request.model[:MODEL_LENGTH],
        input_tokens=tokens.estimate_prompt_tokens(request.messages),
        usage_source=LLMCall.UsageSource.ESTIMATED,
        request={
            "messages": request.messages,
            "tools": [tool["function"]["name"] for tool in request.tools or ()],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        },
    )
    return Call(row.pk, request, held, caller_held)


def record_call(
    turn_id: int, allowance: str, session: CallerSession, call: Call, outcome: CallOutcome
) -> None:
    """One transaction: a call that ended mid-turn (its tools ran): its outcome, its transcript lines,
    the counters and spend; the turn's lease renewed and its holds given back. Raises TurnLost when the
    turn was ended meanwhile (reaped as lost: the reaper recorded the call): then nothing is recorded."""
    held, caller_held = _amount(call.held), _amount(call.caller_held)
    with transaction.atomic():
        # The turn first, as the reaper takes it: the round is recorded only while the turn runs.
        running = Turn.objects.filter(pk=turn_id, state=Turn.State.RUNNING).update(
            lease_until=lease_end(timezone.now()),
            held_usd=F("held_usd") - held,
            caller_held_usd=F("caller_held_usd") - caller_held,
        )
        if not running:
            raise TurnLost(LOST_HERE)
        _record(turn_id, allowance, session, call, outcome)


def _amount(hold) -> Decimal:
    return hold.amount if hold else Decimal(0)


def _record(turn_id, allowance, session, call: Call, outcome: CallOutcome, process_error=None) -> None:
    """The call's outcome on its row, its lines, the process's counters (and `process_error`, when the
    turn's outcome changes it), the persona's and the caller's spend; once (TurnLost when the call was
    closed already)."""
    cost = _priced(outcome)
    closed = LLMCall.objects.filter(pk=call.id, finished_at__isnull=True).update(
        model=outcome.model[:MODEL_LENGTH],
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        cost_usd=cost,
        usage_source=outcome.usage_source,
        finish_reason=outcome.finish_reason[:FINISH_REASON_LENGTH],
        ttft_ms=outcome.ttft_ms,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        finished_at=timezone.now(),
    )
    if not closed:
        raise TurnLost(LOST_HERE)
    if outcome.lines:
        Message.objects.bulk_create(
            _message(session, turn_id, line, **_line_extra(line, call, outcome)) for line in outcome.lines
        )
    Process.objects.filter(pk=session.process_id).update(
        input_tokens=F("input_tokens") + outcome.input_tokens,
        output_tokens=F("output_tokens") + outcome.output_tokens,
        llm_calls=F("llm_calls") + 1,
        tool_calls=F("tool_calls") + outcome.tool_calls,
        cost_usd=F("cost_usd") + cost,
        error=F("error") if process_error is None else process_error,
    )
    _spend(allowance, session.process.persona_id, call, cost)


def _priced(outcome: CallOutcome) -> Decimal:
    """What the call cost, kept on its outcome (the turn's end reports it)."""
    outcome.cost_usd = pricing.cost_usd(outcome.model, outcome.input_tokens, outcome.output_tokens)
    return outcome.cost_usd


def _spend(allowance: str, persona_id: int, call: Call, cost: Decimal) -> None:
    """What a call cost, spent against the caller's allowance and the persona's budget; its holds given
    back."""
    caller_held = [call.caller_held] if call.caller_held else []
    if allowance and (cost or caller_held):
        allowances.settle(allowance, cost, caller_held)
    held = [call.held] if call.held else []
    if cost or held:
        budgets.settle(persona_id, cost, held)


def finish(
    turn_id: int,
    allowance: str,
    session: CallerSession,
    state: str,
    *,
    error: str = "",
    last: tuple[Call, CallOutcome] | None = None,
    delivered=(),
) -> None:
    """One transaction: the turn's end state, its last call (when one is not yet recorded), the process's
    outcome (a failed turn leaves its reason on the process until a turn answers; a cancelled one
    changes nothing), the delegated results it carried marked delivered when it answered, and a
    one-off caller's session ended (no request of theirs can continue it). Raises TurnLost when the turn
    was ended meanwhile (reaped as lost): the reaper's record stands, nothing is recorded twice. A turn
    deleted meanwhile (with its process, by an operator) spends its last call's cost and raises nothing."""
    process_error = {Turn.State.ANSWERED: "", Turn.State.FAILED: error}.get(state)
    with transaction.atomic():
        ended = Turn.objects.filter(pk=turn_id, state=Turn.State.RUNNING).update(
            state=state, error=error, finished_at=timezone.now()
        )
        if not ended and not Turn.objects.filter(pk=turn_id).exists():
            # Deleted with its process by an operator while it ran: the answer is the caller's all the same,
            # and what the last call cost is spent; nothing else of the turn is left to record it on.
            log.error("Turn %s was deleted while it ran; its outcome is not recorded", turn_id)
            if last is not None:
                call, outcome = last
                _spend(allowance, session.process.persona_id, call, _priced(outcome))
            return
        if not ended:
            # Reaped as lost while this server was too slow to renew it: the reaper recorded it.
            log.error(
                "Turn %s was ended elsewhere while it ran here; its outcome is not recorded twice", turn_id
            )
            raise TurnLost(LOST_HERE)
        if last is not None:
            _record(turn_id, allowance, session, *last, process_error=process_error)
        elif process_error is not None:
            Process.objects.filter(pk=session.process_id).update(error=process_error)
        if delivered and state == Turn.State.ANSWERED:
            mark_delivered(delivered)
        if is_one_off(session.caller_id):
            end_session(session)


def _line_extra(line: dict, call: Call, outcome: CallOutcome) -> dict:
    """An answer's model call; a tool result's run (its start, and its line's time is its end)."""
    if line["role"] == "assistant":
        return {"llm_call_id": call.id}
    ran = outcome.tool_runs.get(line.get("tool_call_id", "")) if line["role"] == "tool" else None
    return {"started_at": ran.started_at, "created_at": ran.finished_at} if ran else {}


def _message(session: CallerSession, turn, line: dict, **extra) -> Message:
    """A transcript line of `turn` (a Turn or its id)."""
    return Message(
        process_id=session.process_id,
        session=session,
        turn_id=getattr(turn, "pk", turn),
        role=line["role"],
        content=line["content"],
        tool_calls=line.get("tool_calls"),
        tool_call_id=line.get("tool_call_id", ""),
        name=line.get("name", ""),
        **extra,
    )


# -- turns lost with their server ------------------------------------------------------------------------


def reap_lapsed(caller_id: str | None = None, now=None) -> int:
    """End the turns whose holder stopped renewing them (its server died): a waiting one leaves the line;
    a running one fails as lost, its open model calls closed with what they were estimated to use, its
    holds given back, its process marked with the reason. Of one caller, or of everyone (the sweep).
    Returns how many ran when they were lost."""
    now = now or timezone.now()
    lapsed = Turn.objects.lapsed(now)
    if caller_id is not None:
        lapsed = lapsed.filter(caller_id=caller_id)
    lost = 0
    for turn_id in list(lapsed.values_list("pk", flat=True)):
        # A transaction per turn: each takes the rows turns share in the module's order (a sweep of
        # several in one transaction took one caller's usage row after the persona's day).
        with transaction.atomic():
            turn = lapsed.filter(pk=turn_id).select_for_update(of=("self",)).select_related("process").first()
            if turn is not None and _reap(turn, now):
                lost += 1
    return lost


def _reap(turn: Turn, now) -> bool:
    """End one lapsed turn (locked); True when it was running."""
    if turn.state == Turn.State.WAITING or turn.process is None:
        turn.delete()
        return False
    open_calls = LLMCall.objects.filter(turn=turn, finished_at__isnull=True)
    cost = Decimal(0)
    for row in open_calls:
        row_cost = pricing.cost_usd(row.model, row.input_tokens, 0)
        cost += row_cost
        LLMCall.objects.filter(pk=row.pk).update(
            finish_reason="lost", error=LOST, cost_usd=row_cost, finished_at=now
        )
    Process.objects.filter(pk=turn.process_id).update(
        input_tokens=F("input_tokens")
        + sum(row.input_tokens for row in open_calls),  # evaluated before the update above
        llm_calls=F("llm_calls") + len(open_calls),
        cost_usd=F("cost_usd") + cost,
        error=LOST,
    )
    day = (turn.started_at or turn.arrived_at).astimezone(UTC).date()
    caller_holds = [budgets.Hold(day, turn.caller_held_usd)] if turn.caller_held_usd else []
    if turn.allowance and (cost or caller_holds):
        allowances.settle(turn.allowance, cost, caller_holds, now=now)
    holds = [budgets.Hold(day, turn.held_usd)] if turn.held_usd else []
    if cost or holds:
        budgets.settle(turn.process.persona_id, cost, holds, now=now)
    Turn.objects.filter(pk=turn.pk).update(state=Turn.State.FAILED, error=LOST, finished_at=now)
    log.warning("Turn %s of %s was lost with its server; ended as failed", turn.pk, turn.caller_id)
    return True
