"""The turn engine: one turn of a conversation, from the caller's words to the recorded answer.

    async for event in run_turn(TurnInput(...)): ...   # Opened, Text, ToolStarted, Idle, then TurnEnd | TurnFailed
    end = await complete_turn(TurnInput(...))          # the whole turn; raises LLMError when it failed
    end = complete_turn_sync(TurnInput(...))           # the same from sync code (django-q2 tasks, commands)

A turn is plain sequential code, run by one task that owns it from start to end (`Turn.run`):

1. begin: read what the prompt needs (the transcript, other apps' context), waiting while another turn
   of the same caller runs (up to TRON_TURN_WAIT_SECONDS). Once the model has the request, claim the
   caller's session and store their words (one transaction, while the model works on its first token);
   if another turn of the caller came between the read and the claim, the model call is dropped and the
   turn reads again, so a caller's turns never interleave.
2. rounds: call the model with the prompt (persona, context, the history trimmed to its budget) and the
   tools; its text streams out as it comes. When it calls the persona's tools they run and the model is
   called again with their results, at most TRON_TOOL_ROUNDS times (then once more without tools, for
   an answer). A call of one of the client's own tools ends the turn: the client runs it.
3. record: the model calls, the new transcript lines and the process counters in one transaction, and
   the session released. Whatever ended the turn (the answer, an error, the consumer leaving, a bug of
   ours), this happens exactly once, because only the owner task does it, last.

The consumer reads events from a queue (`run_turn`), so it can wait for the next one with a timeout
(keep-alives) without touching the model call. Closing the generator (a client gone) stops the step
the turn is in (waiting for its session, a model call, a tool), and the owner records what was done.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.conf import settings

from . import budgets, metrics, pricing, tokens
from .callers import Caller
from .dbthread import db_read, db_write
from .delegation import Delivery, undelivered_results
from .llm import get_provider
from .llm.base import LLMError, LLMProvider, LLMRequest, ToolCall, Usage, own_clients
from .models import CallerSession, LLMCall, Persona
from .personas import PersonaUnavailable, cached_persona, resolve_persona
from .prompts import build_prompt, refuse_oversized
from .tools import ToolContext, acall_tool, tools_for
from .transcript import CallRecord, Peek, TurnRecord, begin_turn, elapsed_ms, peek_turn, record_turn

log = logging.getLogger(__name__)

MODEL_LENGTH = LLMCall._meta.get_field("model").max_length
FINISH_REASON_LENGTH = LLMCall._meta.get_field("finish_reason").max_length
CLAIM_POLL_SECONDS = 0.05  # how often a turn waiting for its caller's previous turn looks again
# Turns refused before they began store nothing: the caller's previous turn still runs, the persona has
# spent its budget, the server runs all the processes it may.
REFUSED_BEFORE_BEGIN = {"conversation_busy", "insufficient_quota", "server_overloaded"}


@dataclass
class TurnInput:
    messages: list[dict]  # OpenAI-style; an assistant's may carry `tool_calls`, a tool's `tool_call_id`
    caller: Caller
    persona_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None
    task: str = ""
    tools: list[dict] | None = None  # the client's own tools (OpenAI's `tools`), returned to it when called
    tool_choice: object = None


# The events of a turn, in order: Opened; Accepted; then Text, ToolStarted and Idle as they come; then
# TurnEnd or TurnFailed (which may also come before Accepted). A turn refused before anything was stored (no persona, a message too long, its caller's
# previous turn still running) is one TurnFailed.


@dataclass
class Opened:
    """The caller's session (and its process) is claimed for this turn, and their words are stored."""

    session: CallerSession
    persona: Persona


@dataclass
class Accepted:
    """The model has the request (an upstream answered 200, the local model took it from its queue):
    what follows streams. Once per turn, before its first Text."""


@dataclass
class Text:
    text: str


@dataclass
class ToolStarted:
    """The model called one of the persona's tools, which runs now."""

    name: str


@dataclass
class Idle:
    """Nothing happened for `idle_seconds` (a stream sends a keep-alive)."""


@dataclass
class TurnEnd:
    text: str
    finish_reason: str  # "tool_calls" when `tool_calls` asks the client to run its tools
    input_tokens: int
    output_tokens: int
    usage_source: str
    cost_usd: object
    model: str
    process_id: int | None = None
    tool_calls: list[dict] = field(default_factory=list)  # calls of the client's tools, OpenAI-style
    llm_calls: int = 1


@dataclass
class TurnFailed:
    error: LLMError


class _Stopped(Exception):
    """The consumer went away: the turn stops where it is."""


@dataclass
class _Round:
    """One model call."""

    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str = "stop"
    model: str = ""
    ttft_ms: int | None = None
    accepted: bool = False  # the model had the request (an upstream's 200, the local model's turn)
    error: LLMError | None = None
    cancelled: bool = False
    superseded: bool = False  # another turn of the caller came between its read and its claim
    request: LLMRequest | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Turn:
    def __init__(self, turn_input: TurnInput, provider: LLMProvider):
        self.input = turn_input
        self.provider = provider
        self.queue: asyncio.Queue = asyncio.Queue()
        self.started = time.monotonic()
        self.persona: Persona | None = None
        self.peek: Peek | None = None
        self.begun: CallerSession | None = None
        self.record = TurnRecord()
        self.parts: list[str] = []  # the text of every round, as the consumer received it
        self.tools: list[dict] = []  # offered to the model: the persona's, then the client's
        self.client_tools: set[str] = set()  # the names of the client's
        self.client_calls: list[dict] = []
        self.results: list[Delivery] = []  # delegated work that finished during the turn (agents.delegation)
        self.ttft_ms: int | None = None
        self.accepted = False  # the Accepted event is out
        self.stopped = False
        self._step: asyncio.Future | None = None
        self.first_hold = None  # what the first model call holds against the budget, as the turn begins

    # -- the owner task --------------------------------------------------------------------------------

    async def run(self) -> None:
        """The whole turn; never raises. Ends by queueing the final event."""
        error: LLMError | None = None
        try:
            await self._converse()
        except LLMError as exc:
            error = exc
        except (_Stopped, asyncio.CancelledError):
            self.record.cancelled = True
        except Exception:
            log.exception("A turn with %s failed in the server", self.persona)
            error = LLMError(
                "The server failed during the turn; it has been logged.", status=500, code="internal_error"
            )
        if (
            self.begun is None
            and self.persona is not None
            and not (error and error.code in REFUSED_BEFORE_BEGIN)
        ):
            await self._begin_late()
        if self.begun is None and self.record.holds:
            await self._give_back_holds()
        end = self._end()
        if self.begun is not None:
            self.record.error = error.message if error else None
            self.record.delivered = [result.process_id for result in self._results()]
            try:
                await self._finish(db_write(record_turn)(self.begun, self.record))
            except Exception:
                # The answer stands (the client may already have it); the loss of its record must be loud.
                log.exception("Could not record a turn with %s", self.persona)
            metrics.record_turn(
                persona=self.persona.name,
                provider=self.provider.name,
                end=end,
                ttft_ms=self.ttft_ms,
                error=error,
                cancelled=self.record.cancelled,
            )
        self.queue.put_nowait(TurnFailed(error) if error else end)

    async def _converse(self) -> None:
        refuse_oversized(self.input.messages)
        self.persona = await self._persona()
        budgets.refuse_if_known_over(self.persona)
        self._choose_tools()
        max_rounds = settings.TRON_TOOL_ROUNDS
        number = 0
        while number <= max_rounds:
            if self.begun is None:
                self.peek = await self._wait_for_session()
                conversation = list(self.peek.history)
            offered = self.tools if number < max_rounds else []  # the last call must answer in words
            round_ = await self._step_until_stopped(self._call_model(conversation, offered))
            if round_.superseded:
                continue  # another turn of this caller came between: read the conversation again
            number += 1
            self._record_round(round_)
            calls = [call.as_openai() for call in round_.tool_calls]
            answer = {"role": "assistant", "content": round_.text} | ({"tool_calls": calls} if calls else {})
            if round_.text or calls:
                self.record.lines.append(answer)  # also what a failed or interrupted call had said
            if round_.cancelled:
                raise _Stopped
            if round_.error is not None:
                raise round_.error
            if not calls or not offered:
                return  # an answer in words (calls of tools it was not offered are stored, not run)
            exchange = [answer]
            self.record.tool_calls += len(calls)
            for call in round_.tool_calls:
                if call.name not in self.client_tools:  # the persona's (an unknown name gets an error)
                    exchange.append(await self._run_tool(call))
            self.record.lines.extend(exchange[1:])
            self.client_calls = [c.as_openai() for c in round_.tool_calls if c.name in self.client_tools]
            if self.client_calls:
                return  # the client runs its tools and sends their results in its next request
            conversation += exchange
            await self._collect_results()

    async def _persona(self) -> Persona:
        try:
            return cached_persona(self.input.persona_name) or await db_read(resolve_persona)(
                self.input.persona_name
            )
        except PersonaUnavailable as exc:
            raise LLMError(str(exc), status=503, code="no_persona") from None

    async def _begin_late(self) -> None:
        """A turn that ended before the model had its request (it failed, or its consumer left) still
        stores the caller's words and records its call: claimed as peeked, else as the session is now."""
        try:
            if self.peek is None:  # it left before the conversation was read
                args = (self.input.caller, self.persona, self.input.messages)
                self.peek = await self._finish(db_read(peek_turn)(*args))
            if not await self._begin(hold=False):
                self.peek.seen = None  # whatever came between, the words go after it
                await self._begin(hold=False)
        except Exception:
            log.exception("Could not store the words of a turn with %s", self.persona)

    async def _give_back_holds(self) -> None:
        """A turn that recorded nothing gives back what its model calls held against the budget."""
        try:
            await self._finish(db_write(budgets.release)(self.persona.pk, self.record.holds))
        except Exception:  # the holds lapse by themselves (budgets.HOLD_SECONDS)
            log.exception("Could not give back the budget holds of a turn with %s", self.persona)

    async def _hold_budget(self, amount) -> None:
        """Admit one model call, of at most `amount`, against the persona's budget (raises
        budgets.OverBudget)."""
        held = await self._finish(db_write(budgets.hold)(self.persona, amount))
        if held is not None:
            self.record.holds.append(held)
        if self.stopped:
            raise _Stopped

    async def _wait_for_session(self) -> Peek:
        """Read what the prompt needs; while another turn of this caller runs, wait for it (looking again
        every CLAIM_POLL_SECONDS, up to TRON_TURN_WAIT_SECONDS)."""
        deadline = time.monotonic() + settings.TRON_TURN_WAIT_SECONDS
        peek = db_read(peek_turn)
        while True:
            found = await self._step_until_stopped(peek(self.input.caller, self.persona, self.input.messages))
            if not found.claimed:
                return found
            if time.monotonic() >= deadline:
                raise LLMError(
                    "This conversation is busy with an earlier request that has not finished; try again "
                    "when it has.",
                    status=409,
                    code="conversation_busy",
                )
            await self._step_until_stopped(asyncio.sleep(CLAIM_POLL_SECONDS))

    async def _begin(self, *, hold: bool = True) -> bool:
        """Claim the session as peeked, hold the first model call against the budget (raises
        budgets.OverBudget) and store the caller's words (once); False when the conversation moved on
        since the peek. Runs while the model works on its first token."""
        if self.begun is None:
            args = (
                self.input.caller,
                self.persona,
                self.input.task,
                self.peek,
                self.first_hold if hold else None,
            )
            session, held = await self._finish(db_write(begin_turn)(*args))  # once begun, it must be released
            if held is not None:
                self.record.holds.append(held)
            if session is None:
                return False
            self.begun = session
            self.queue.put_nowait(Opened(session, self.persona))
        return True

    async def _collect_results(self) -> None:
        """Delegated work that finished while the turn ran (its tools started some, say): the next
        model call carries it, and the record marks it delivered."""
        seen = [result.process_id for result in self._results()]
        read = db_read(undelivered_results)
        self.results += await self._step_until_stopped(read(self.persona, self.input.caller, seen))

    def _results(self) -> list[Delivery]:
        return (self.peek.results if self.peek else []) + self.results

    def _choose_tools(self) -> None:
        """The tools offered to the model: the persona's, then the client's (whose name wins)."""
        if self.provider.supports_tools:
            client = self.input.tools or []
            self.client_tools = {tool["function"]["name"] for tool in client}
            persona_tools = [t.schema() for t in tools_for(self.persona) if t.name not in self.client_tools]
            self.tools = persona_tools + client

    def _request(self, conversation: list[dict], tools: list[dict]) -> LLMRequest:
        provider, persona = self.provider, self.persona
        return LLMRequest(
            messages=build_prompt(
                persona,
                self.input.messages,
                conversation,
                compact=provider.compact_prompts,
                context_tokens=provider.context_tokens(),
                extra=self.peek.context + [result.text for result in self._results()],
                tools=provider.supports_tools,
            ),
            model=persona.model or provider.default_model(),
            temperature=_first_set(self.input.temperature, provider.default_temperature, persona.temperature),
            max_tokens=self.input.max_tokens,
            user=self.input.user,
            tools=tools or None,
            tool_choice=self.input.tool_choice if tools and self.input.tools else None,
        )

    async def _call_model(self, conversation: list[dict], tools: list[dict]) -> _Round:
        """One model call, its text queued for the consumer as it arrives. Returns however it ended:
        a cancellation (the consumer left) or an error is marked on the round, not raised."""
        request = self._request(conversation, tools)
        # No query for a persona without a budget; the first call is held as the turn begins (begin_turn).
        hold = budgets.estimate(request) if budgets.daily_budget(self.persona) is not None else None
        if self.begun is None:
            self.first_hold = hold
        elif hold is not None:
            await self._hold_budget(hold)
        round_ = _Round(model=request.model, request=request)
        stream = self.provider.stream(request)
        try:
            async for delta in stream:
                if not round_.accepted:  # the model has the request (the first delta says so)
                    round_.accepted = True
                    if not await self._begin():
                        round_.superseded = True
                        break
                    if self.stopped:  # the consumer left while the turn began
                        round_.cancelled = True
                        break
                    if not self.accepted:
                        self.accepted = True
                        self.queue.put_nowait(Accepted())
                if delta.model:
                    round_.model = delta.model
                if delta.text:
                    if round_.ttft_ms is None:
                        round_.ttft_ms = elapsed_ms(round_.started)
                    if self.ttft_ms is None:
                        self.ttft_ms = elapsed_ms(self.started)
                    round_.parts.append(delta.text)
                    self.parts.append(delta.text)
                    self.queue.put_nowait(Text(delta.text))
                elif delta.tool_calls:
                    round_.tool_calls += delta.tool_calls
                elif delta.usage is not None:
                    round_.usage = delta.usage
                elif delta.finish_reason:
                    round_.finish_reason = delta.finish_reason
        except LLMError as exc:
            round_.error = exc
        except asyncio.CancelledError:
            round_.cancelled = True
        except Exception as exc:  # a provider bug must not lose the turn's record
            log.exception("Provider %s failed", self.provider.name)
            round_.error = LLMError(f"The model failed: {exc.__class__.__name__}", status=502)
        finally:
            await _close_quietly(stream)  # stops generation upstream (closes the HTTP stream / local loop)
        return round_

    async def _run_tool(self, call: ToolCall) -> dict:
        self.queue.put_nowait(ToolStarted(call.name))
        context = ToolContext(self.persona, self.begun.process, self.input.caller)
        result = await self._finish(acall_tool(call.name, call.arguments, context))
        return {"role": "tool", "content": result.content, "tool_call_id": call.id, "name": call.name}

    def _record_round(self, round_: _Round) -> None:
        """The round's tokens (the provider's, else estimated; `partial` when the consumer left) and cost."""
        measured = round_.request.measured  # a provider's own count of a stream closed early
        if round_.usage is not None and not round_.cancelled:
            source = LLMCall.UsageSource.PROVIDER
            input_tokens, output_tokens = round_.usage.input_tokens, round_.usage.output_tokens
        elif round_.cancelled and measured is not None:
            source = LLMCall.UsageSource.PARTIAL
            input_tokens, output_tokens = measured.input_tokens, measured.output_tokens
        elif round_.cancelled and not round_.accepted:
            source = LLMCall.UsageSource.PARTIAL  # gone before the model had the request: nothing used
            input_tokens = output_tokens = 0
        else:
            source = LLMCall.UsageSource.PARTIAL if round_.cancelled else LLMCall.UsageSource.ESTIMATED
            input_tokens = tokens.estimate_prompt_tokens(round_.request.messages)
            output_tokens = tokens.estimate_text_tokens(round_.text)
            if round_.error is not None and not round_.text:
                input_tokens = output_tokens = 0  # nothing was generated, nothing is billed
        finish_reason = round_.finish_reason
        if round_.cancelled:
            finish_reason = "cancelled"
        elif round_.error is not None:
            finish_reason = "error"
        # What an upstream names is cut to its column: PostgreSQL refuses a longer value, and with it
        # the whole record.
        model = round_.model[:MODEL_LENGTH]
        self.record.calls.append(
            CallRecord(
                provider=self.provider.name,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=pricing.cost_usd(model, input_tokens, output_tokens),
                usage_source=source,
                finish_reason=finish_reason[:FINISH_REASON_LENGTH],
                ttft_ms=round_.ttft_ms,
                duration_ms=elapsed_ms(round_.started),
                error=round_.error.message if round_.error else "",
            )
        )

    def _end(self) -> TurnEnd:
        calls = self.record.calls
        sources = {call.usage_source for call in calls}
        last = calls[-1] if calls else None
        return TurnEnd(
            text="".join(self.parts),
            finish_reason="tool_calls"
            if self.client_calls
            else (last.finish_reason if last else "cancelled"),
            input_tokens=sum(call.input_tokens for call in calls),
            output_tokens=sum(call.output_tokens for call in calls),
            usage_source=next(
                (s for s in (LLMCall.UsageSource.PARTIAL, LLMCall.UsageSource.ESTIMATED) if s in sources),
                LLMCall.UsageSource.PROVIDER,
            ),
            cost_usd=sum((call.cost_usd for call in calls), 0),
            model=last.model if last else "",
            process_id=self.begun.process_id if self.begun else None,
            tool_calls=self.client_calls,
            llm_calls=len(calls),
        )

    # -- what the consumer side calls ------------------------------------------------------------------

    async def _step_until_stopped(self, awaitable):
        """Await one step the consumer's leaving may interrupt (a model call, a wait)."""
        if self.stopped:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise _Stopped
        self._step = asyncio.ensure_future(awaitable)
        try:
            return await self._step
        except asyncio.CancelledError:
            if self.stopped and self._step.cancelled():
                raise _Stopped from None
            raise
        finally:
            self._step = None

    async def _finish(self, awaitable):
        """Await work that must finish once started (a transaction or a tool on a database thread),
        even when this task is cancelled meanwhile (a server shutting down); the turn then stops."""
        future = asyncio.ensure_future(awaitable)
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                self.stopped = True
                if future.done():
                    return future.result()

    def stop(self) -> None:
        """The consumer is gone: interrupt the step the turn is in; the owner records what was done."""
        self.stopped = True
        if self._step is not None:
            self._step.cancel()


async def _close_quietly(stream):
    try:
        await stream.aclose()
    except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing is best effort
        log.debug("closing the provider stream failed", exc_info=True)


def _first_set(*values):
    return next((value for value in values if value is not None), None)


_running: set[asyncio.Task] = set()  # the owner tasks of running turns (the loop keeps only weak references)


def run_turn(
    turn_input: TurnInput, provider: LLMProvider | None = None, *, idle_seconds: float | None = None
):
    """Start one turn and return its events (TurnEvents; see above). With `idle_seconds`, an Idle event
    comes after that long without one. Call from a running event loop."""
    turn = Turn(turn_input, provider or get_provider())
    owner = asyncio.ensure_future(turn.run())
    _running.add(owner)
    owner.add_done_callback(_running.discard)
    return TurnEvents(turn, owner, idle_seconds)


class TurnEvents:
    """A running turn's events, as an async iterator that ends after TurnEnd or TurnFailed.

    `aclose()` (or `async with contextlib.aclosing(run_turn(...))`) when the consumer goes away early:
    it stops the turn and waits until it is recorded. A consumer that just stops iterating leaves the
    turn to finish and record itself."""

    def __init__(self, turn: Turn, owner: asyncio.Task, idle_seconds: float | None):
        self.turn, self.owner, self.idle_seconds = turn, owner, idle_seconds
        self.finished = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        if (event := self.ready()) is not None:
            return event
        if self.idle_seconds is None:
            event = await self.turn.queue.get()
        else:
            try:
                async with asyncio.timeout(self.idle_seconds):
                    event = await self.turn.queue.get()
            except TimeoutError:
                return Idle()
        self.finished = isinstance(event, TurnEnd | TurnFailed)
        return event

    def ready(self):
        """The next event if one is queued already, else None (never waits: no timer to arm and cancel,
        the common case mid-stream)."""
        if self.finished or self.turn.queue.empty():
            return None
        event = self.turn.queue.get_nowait()
        self.finished = isinstance(event, TurnEnd | TurnFailed)
        return event

    async def aclose(self) -> None:
        self.finished = True
        self.turn.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.owner)  # the owner records the turn; it never raises


async def complete_turn(turn_input: TurnInput, provider: LLMProvider | None = None) -> TurnEnd:
    """Run a whole turn and return its end (`process_id` names its process); raises LLMError when the
    turn failed."""
    async with contextlib.aclosing(run_turn(turn_input, provider)) as events:
        async for event in events:
            if isinstance(event, TurnFailed):
                raise event.error
            if isinstance(event, TurnEnd):
                return event
    raise LLMError("The turn ended without an answer.", status=500, code="internal_error")


async def _complete_with_own_clients(turn_input: TurnInput, provider: LLMProvider | None = None) -> TurnEnd:
    async with own_clients():  # async_to_sync's event loop may end with this call
        return await complete_turn(turn_input, provider)


complete_turn_sync = async_to_sync(_complete_with_own_clients)
