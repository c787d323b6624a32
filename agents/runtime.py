"""The turn engine: one turn of a conversation, from the caller's words to the recorded answer.

    async for event in run_turn(TurnInput(...)): ...   # Opened, Accepted, Text, ToolStarted, Idle, then TurnEnd | TurnFailed
    end = await complete_turn(TurnInput(...))          # the whole turn; raises agents.errors.TurnError
    end = complete_turn_sync(TurnInput(...))           # the same from sync code (django-q2 tasks, commands)

One task owns a turn, in plain steps: claim (wait in line, then take the conversation), the model's
rounds with the persona's tools, finish (record how it ended). docs/architecture.md, "A turn".
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils import timezone

from . import metrics, tokens, tracing, turn_store
from .callers import Caller
from .dbthread import db_read, db_write
from .delegation import Delivery, undelivered_results
from .errors import (
    ConversationBusy,
    InternalError,
    ServerDraining,
    ServerStopped,
    TurnError,
    TurnLost,
    UpstreamFailed,
)
from .llm import get_provider
from .llm.base import LLMProvider, LLMRequest, ToolCall, Usage, own_clients
from .models import CallerSession, LLMCall, Persona, Turn
from .principals import Principal
from .prompts import build_prompt, refuse_oversized
from .tools import ToolContext, acall_tool, tools_for
from .tracing import CLIENT
from .turn_store import Begun, Call, CallOutcome, Claim, ToolRun

log = logging.getLogger(__name__)

WAIT_POLL_SECONDS = 0.05  # how often a turn waiting for its caller's earlier turn looks again
DRAIN_RETRY_AFTER = 1  # seconds a caller refused by a draining server waits (another node answers now)


@dataclass
class TurnInput:
    messages: list[dict]  # OpenAI-style; an assistant's may carry `tool_calls`, a tool's `tool_call_id`
    caller: Caller
    principal: Principal
    persona_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None
    task: str = ""
    tools: list[dict] | None = None  # the client's own tools (OpenAI's `tools`), returned to it when called
    tool_choice: object = None
    persona_tools: bool = True  # False: the model gets none of the persona's tools (the memory writer)
    # The caller's W3C trace context (the chat API's `traceparent` and `tracestate` headers): the turn's
    # trace continues theirs (agents.tracing).
    traceparent: str = ""
    tracestate: str = ""
    replaying: "Replaying | None" = None  # a replay's turn (agents.replay)


@dataclass(frozen=True)
class Replaying:
    """A turn of a replay (agents.replay): `persona` answers (a candidate: an unsaved copy of a persona
    with a changed prompt, model, temperature or tools; its budget is the persona's), with the prompt
    context the original turn had (`context`: its system texts after the persona's own) instead of
    today's, and every tool that writes answers with the original turn's result of a call of that tool
    (`tool_results`: (name, content), in the order they ran) instead of running."""

    persona: Persona
    context: tuple[str, ...] = ()
    tool_results: tuple[tuple[str, str], ...] = ()


# The events of a turn, in order: Opened; Accepted; then Text, ToolStarted and Idle as they come; then
# TurnEnd or TurnFailed. A turn refused before it began (no persona, a message too long, its caller's
# earlier turn still running, a budget spent) is one TurnFailed.


@dataclass
class Opened:
    """The turn runs: the caller's session (and its process) is claimed and their words are stored."""

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
    error: TurnError


@dataclass
class Round:
    """One model call as it streams."""

    call: Call
    started: float = field(default_factory=time.monotonic)
    accepted_at: float | None = None  # when the model took the request
    parts: list[str] = field(default_factory=list)
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str = "stop"
    model: str = ""
    ttft_ms: int | None = None
    error: TurnError | None = None
    exchange: list[dict] | None = None  # its answer and the results of the tools it ran, once they ran
    tool_runs: dict[str, ToolRun] = field(default_factory=dict)  # when each of its tool calls ran, by id
    response_id: str = ""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def outcome(self, *, cancelled: bool = False) -> CallOutcome:
        """What the call used (the provider's count, else estimated; `partial` when the consumer left)
        and how it ended."""
        request = self.call.request
        if self.usage is not None and not cancelled:
            source, used = LLMCall.UsageSource.PROVIDER, (self.usage.input_tokens, self.usage.output_tokens)
        elif cancelled and request.measured is not None:  # the local model's own count of a closed stream
            source, used = (
                LLMCall.UsageSource.PARTIAL,
                (request.measured.input_tokens, request.measured.output_tokens),
            )
        elif cancelled and self.accepted_at is None:
            source, used = LLMCall.UsageSource.PARTIAL, (0, 0)  # gone before the model had the request
        elif self.error is not None and not self.parts:
            source, used = LLMCall.UsageSource.ESTIMATED, (0, 0)  # nothing was generated, nothing is billed
        else:
            source = LLMCall.UsageSource.PARTIAL if cancelled else LLMCall.UsageSource.ESTIMATED
            used = (tokens.estimate_prompt_tokens(request.messages), tokens.estimate_text_tokens(self.text))
        finish_reason = (
            "cancelled" if cancelled else "error" if self.error is not None else self.finish_reason
        )
        return CallOutcome(
            model=self.model or request.model,
            input_tokens=used[0],
            output_tokens=used[1],
            usage_source=source,
            finish_reason=finish_reason,
            ttft_ms=self.ttft_ms,
            duration_ms=elapsed_ms(self.started),
            error=self.error.message if self.error else "",
        )

    def answer(self) -> dict | None:
        """The transcript line the call wrote (also what a failed or interrupted call had said)."""
        calls = [call.as_openai() for call in self.tool_calls]
        if not self.text and not calls:
            return None
        return {"role": "assistant", "content": self.text} | ({"tool_calls": calls} if calls else {})


class TurnRunner:
    """The owner of one turn (see the module's docstring)."""

    def __init__(self, turn_input: TurnInput, provider: LLMProvider):
        self.input = turn_input
        self.provider = provider
        self.queue: asyncio.Queue = asyncio.Queue()
        self.started = time.monotonic()
        self.ttft_ms: int | None = None
        self.text: list[str] = []  # every round's text, as the consumer received it
        self.outcomes: list[CallOutcome] = []  # every call recorded, for TurnEnd
        self.client_calls: list[dict] = []
        self.begun: Begun | None = None
        self.pending: Round | None = None  # the model call opened and not yet recorded (finish records it)
        self.results: list[Delivery] = []  # delegated work the prompt carried
        # Set as the turn begins (_prepare): who answers, the tools offered, what other apps add.
        self.persona: Persona | None = None
        self.tools: list[dict] = []
        self.client_tools: set[str] = set()
        self.extra: list[str] = []
        self.span = None  # the turn's span while tracing is on (agents.tracing)
        # Why the turn was stopped from outside its consumer: its server stops (ServerStopped), or it was
        # ended elsewhere as lost (TurnLost, found by its renewal). Set before its owner is cancelled.
        self.stopped: ServerStopped | TurnLost | None = None
        # A replay's recorded results of the tools that write, taken in order as the candidate calls them.
        replaying = turn_input.replaying
        self.recorded = list(replaying.tool_results) if replaying is not None else None

    # -- the owner task ------------------------------------------------------------------------------

    async def run(self) -> None:
        """The whole turn; never raises. Ends by queueing the final event."""
        parent = tracing.parent_from(self.input.traceparent, self.input.tracestate)
        with tracing.span("invoke_agent", self._span_attributes(), parent=parent) as self.span:
            state, error = Turn.State.ANSWERED, None
            try:
                if _draining:
                    raise ServerDraining(
                        "This server is stopping and takes no new turns; send the request again (another "
                        "server answers it).",
                        retry_after=DRAIN_RETRY_AFTER,
                    )
                refuse_oversized(self.input.messages)
                self.begun = await self._claim()
                self.pending = Round(self.begun.call, model=self.begun.call.request.model)
                self.results = list(self.begun.results)
                self._span_opened()
                self.queue.put_nowait(Opened(self.begun.session, self.begun.persona))
                await self._rounds()
            except TurnError as exc:
                state, error = Turn.State.FAILED, exc
            except asyncio.CancelledError:
                state, error = (
                    (Turn.State.FAILED, self.stopped) if self.stopped else (Turn.State.CANCELLED, None)
                )
                _uncancel()
            except Exception:
                log.exception("A turn of %s failed in the server", self.input.caller.caller_id)
                state, error = (
                    Turn.State.FAILED,
                    InternalError("The server failed during the turn; it has been logged."),
                )
            if self.begun is not None:
                state, error = await self._finish(state, error)
            end = TurnFailed(error) if error else self._end()
            self._span_ended(state, end)
        self.queue.put_nowait(end)

    # -- the turn's span (agents.tracing; all of it is skipped while tracing is off) -----------------

    def _span_attributes(self) -> dict | None:
        if not tracing.on():
            return None
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": self.provider.name,
            "tron.channel": self.input.caller.channel,
            "tron.principal.trust": self.input.principal.trust.value,
        }
        if tracing.capture_content():
            attributes["tron.caller.id"] = self.input.caller.caller_id
            attributes["tron.principal"] = str(self.input.principal)
            attributes["gen_ai.input.messages"] = tracing.as_json(self.input.messages)
        return attributes

    def _span_opened(self) -> None:
        if self.span is None:
            return
        begun = self.begun
        self.span.update_name(f"invoke_agent {begun.persona.name}")
        self.span.set_attribute("gen_ai.agent.name", begun.persona.name)
        self.span.set_attribute("gen_ai.conversation.id", begun.session.process.public_id)
        self.span.set_attribute("tron.turn.id", begun.turn_id)

    def _span_ended(self, state: str, end) -> None:
        if self.span is None:
            return
        self.span.set_attribute("tron.turn.state", state)
        if isinstance(end, TurnFailed):
            tracing.failed(self.span, end.error.code, end.error.message)
            return
        self.span.set_attribute("gen_ai.usage.input_tokens", end.input_tokens)
        self.span.set_attribute("gen_ai.usage.output_tokens", end.output_tokens)
        if end.model:
            self.span.set_attribute("gen_ai.response.model", end.model)
        if tracing.capture_content():
            answer = {"role": "assistant", "content": end.text}
            self.span.set_attribute("gen_ai.output.messages", tracing.as_json([answer]))

    async def _claim(self) -> Begun:
        """Take the turn's place in line and wait for its time (see turn_store.claim)."""
        replaying = self.input.replaying
        spec = Claim(
            caller=self.input.caller,
            principal=self.input.principal,
            persona_name=self.input.persona_name,
            messages=self.input.messages,
            task=self.input.task,
            provider=self.provider.name,
            trace=tracing.ids(self.span),
            persona=replaying.persona if replaying else None,
            context=replaying.context if replaying else None,
        )
        with tracing.span("claim") as span:
            begun = await self._wait_and_claim(spec)
            if span is not None and begun.waited:
                span.set_attribute("tron.claim.waited", True)
            return begun

    async def _wait_and_claim(self, spec: Claim) -> Begun:
        deadline = time.monotonic() + settings.TRON_TURN_WAIT_SECONDS
        renew_every = settings.TRON_TURN_LEASE_SECONDS / 3
        turn_id, renewed = None, 0.0
        try:
            while True:
                with tracing.span("turn_store.claim"):
                    claimed = await _uninterrupted(db_write(turn_store.claim)(spec, turn_id, self._prepare))
                if isinstance(claimed, Begun):
                    claimed.waited = turn_id is not None
                    return claimed
                turn_id, renewed = claimed, time.monotonic()
                while time.monotonic() - renewed < renew_every:
                    if time.monotonic() >= deadline:
                        raise ConversationBusy(
                            "This conversation is busy with an earlier request that has not finished; try "
                            "again when it has."
                        )
                    await asyncio.sleep(WAIT_POLL_SECONDS)
                    if not await db_read(turn_store.is_ahead)(turn_id, spec.caller.caller_id):
                        break
        except BaseException:
            if turn_id is not None:
                await _uninterrupted(db_write(turn_store.withdraw)(turn_id))
            raise

    def _prepare(self, persona: Persona, conversation: list[dict], extra: list[str]) -> LLMRequest:
        """The first call's request, made in the claim's transaction from what it read."""
        self.persona = persona
        self.tools = self._offered(persona)
        self.extra = extra
        return self._request(conversation, self.tools if settings.TRON_TOOL_ROUNDS else [])

    def _offered(self, persona: Persona) -> list[dict]:
        """The tools offered to the model: the persona's its principal may use, then the client's (whose
        name wins)."""
        if not self.provider.supports_tools:
            return []
        client = self.input.tools or []
        self.client_tools = {tool["function"]["name"] for tool in client}
        if not self.input.persona_tools:
            return client
        mine = [
            t.schema() for t in tools_for(persona, self.input.principal) if t.name not in self.client_tools
        ]
        return mine + client

    def _request(self, conversation: list[dict], tools: list[dict]) -> LLMRequest:
        provider, persona = self.provider, self.persona
        return LLMRequest(
            messages=build_prompt(
                persona,
                self.input.messages,
                conversation,
                compact=provider.compact_prompts,
                context_tokens=provider.context_tokens(),
                extra=self.extra,
                tools=provider.supports_tools,
            ),
            model=persona.model or provider.default_model(),
            temperature=_first_set(self.input.temperature, provider.default_temperature, persona.temperature),
            max_tokens=self.input.max_tokens,
            user=self.input.user,
            tools=tools or None,
            tool_choice=self.input.tool_choice if tools and self.input.tools else None,
        )

    async def _rounds(self) -> None:
        begun = self.begun
        conversation = list(begun.conversation)
        renewing = asyncio.ensure_future(self._renew_forever(asyncio.current_task()))
        try:
            for number in range(settings.TRON_TOOL_ROUNDS + 1):
                round_ = self.pending
                call = round_.call
                await self._stream(round_)
                if round_.error is not None:
                    raise round_.error
                offered = bool(call.request.tools)
                if not round_.tool_calls or not offered:
                    return  # an answer in words (calls of tools it was not offered are stored, not run)
                # The persona's tools run (an unknown name gets an error); the client's wait for the client.
                exchange = round_.exchange = [round_.answer()]
                for tool_call in round_.tool_calls:
                    if tool_call.name not in self.client_tools:
                        exchange.append(await self._run_tool(tool_call, round_))
                self.client_calls = [c.as_openai() for c in round_.tool_calls if c.name in self.client_tools]
                if self.client_calls:
                    return  # the client runs its tools and sends their results in its next request
                outcome = round_.outcome()
                outcome.lines, outcome.tool_calls = exchange, len(round_.tool_calls)
                outcome.tool_runs = round_.tool_runs
                with tracing.span("turn_store.record_call"):
                    await _uninterrupted(
                        db_write(turn_store.record_call)(
                            begun.turn_id, begun.allowance, begun.session, call, outcome
                        )
                    )
                self.outcomes.append(outcome)
                self.pending = None
                conversation += exchange
                await self._collect_results()
                tools = self.tools if number + 1 < settings.TRON_TOOL_ROUNDS else []
                request = self._request(conversation, tools)
                open_call = db_write(turn_store.open_call)
                with tracing.span("turn_store.open_call"):
                    call = await _uninterrupted(
                        open_call(
                            begun.turn_id, begun.session.process, self.persona, request, self.provider.name
                        )
                    )
                self.pending = Round(call, model=request.model)
        finally:
            renewing.cancel()

    async def _stream(self, round_: Round) -> None:
        """One model call in its span (`chat {model}`)."""
        request = round_.call.request
        with tracing.span(f"chat {request.model}", self._call_attributes(round_), kind=CLIENT) as span:
            cancelled = True  # _stream_into raises only when the turn is cancelled
            try:
                await self._stream_into(round_)
                cancelled = False
            finally:
                if span is not None:
                    _call_span_ended(span, round_, cancelled)

    def _call_attributes(self, round_: Round) -> dict | None:
        if not tracing.on():
            return None
        request = round_.call.request
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider.name,
            "gen_ai.request.model": request.model,
            "tron.llm_call.id": round_.call.id,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if tracing.capture_content():
            attributes["gen_ai.input.messages"] = tracing.as_json(request.messages)
        return attributes

    async def _stream_into(self, round_: Round) -> None:
        """One model call, its text queued for the consumer as it arrives. An error is marked on the round;
        a cancellation (the consumer left) is raised once the stream is closed."""
        stream = self.provider.stream(round_.call.request)
        try:
            async for delta in stream:
                if round_.accepted_at is None:
                    round_.accepted_at = time.monotonic()
                    if round_.call is self.begun.call:  # the turn's first call: what follows streams
                        self.queue.put_nowait(Accepted())
                if delta.model:
                    round_.model = delta.model
                if delta.response_id:
                    round_.response_id = delta.response_id
                if delta.text:
                    if round_.ttft_ms is None:
                        round_.ttft_ms = elapsed_ms(round_.started)
                    if self.ttft_ms is None:
                        self.ttft_ms = elapsed_ms(self.started)
                    round_.parts.append(delta.text)
                    self.text.append(delta.text)
                    self.queue.put_nowait(Text(delta.text))
                elif delta.tool_calls:
                    round_.tool_calls += delta.tool_calls
                elif delta.usage is not None:
                    round_.usage = delta.usage
                elif delta.finish_reason:
                    round_.finish_reason = delta.finish_reason
        except TurnError as exc:
            round_.error = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a provider's bug must not lose the turn's record
            log.exception("Provider %s failed", self.provider.name)
            round_.error = UpstreamFailed(f"The model failed: {exc.__class__.__name__}")
        finally:
            await _close_quietly(stream)  # stops generation upstream (closes the HTTP stream / local loop)

    async def _run_tool(self, call: ToolCall, round_: Round) -> dict:
        self.queue.put_nowait(ToolStarted(call.name))
        begun = self.begun
        context = ToolContext(
            self.persona, self.input.principal, begun.session.process, self.input.caller, self.recorded
        )
        started = timezone.now()
        result = await _uninterrupted(acall_tool(call.name, call.arguments, context, call_id=call.id))
        round_.tool_runs[call.id] = ToolRun(started, timezone.now())
        return {"role": "tool", "content": result.content, "tool_call_id": call.id, "name": call.name}

    async def _collect_results(self) -> None:
        """Delegated work that finished while the turn ran (its tools started some): the next model call
        carries it, and the turn's end marks it delivered."""
        seen = [result.process_id for result in self.results]
        found = await db_read(undelivered_results)(self.persona, self.input.caller, seen)
        self.results += found
        self.extra = self.extra + [result.text for result in found]

    async def _renew_forever(self, owner: asyncio.Task) -> None:
        """Renew the turn's lease while it runs (in `owner`). A turn found ended meanwhile (reaped as lost
        while this server could not renew it in time) is stopped where it is: it ends as TurnLost, and the
        reaper's record of it stands."""
        every = settings.TRON_TURN_LEASE_SECONDS / 3
        while True:
            await asyncio.sleep(every)
            try:
                alive = await db_write(turn_store.renew)(self.begun.turn_id)
            except Exception:  # noqa: BLE001 - the next renewal tries again
                log.exception("Could not renew the lease of turn %s", self.begun.turn_id)
                continue
            if not alive:
                self.stopped = TurnLost(turn_store.LOST_HERE)
                owner.cancel()
                return

    async def _finish(self, state: str, error: TurnError | None) -> tuple[str, TurnError | None]:
        """Record how the turn ended; returns its end state and error, TurnLost when it was ended
        elsewhere meanwhile (reaped as lost: nothing of it is recorded twice)."""
        begun = self.begun
        last = None
        if self.pending is not None:
            round_ = self.pending
            if self.stopped is not None and round_.error is None:
                round_.error = self.stopped  # its call says why it was cut, as the turn does
            outcome = round_.outcome(cancelled=state == Turn.State.CANCELLED or self.stopped is not None)
            if round_.exchange is not None:
                outcome.lines = round_.exchange
            elif (answer := round_.answer()) is not None:
                outcome.lines = [answer]
            outcome.tool_calls = len(round_.tool_calls)
            outcome.tool_runs = round_.tool_runs
            self.outcomes.append(outcome)
            last = (round_.call, outcome)
        try:
            with tracing.span("turn_store.finish"):
                await _uninterrupted(
                    db_write(turn_store.finish)(
                        begun.turn_id,
                        begun.allowance,
                        begun.session,
                        state,
                        error=error.message if error else "",
                        last=last,
                        delivered=[result.process_id for result in self.results],
                    )
                )
        except TurnLost as lost:
            state, error = Turn.State.FAILED, lost
        except Exception:
            # The answer stands (the client may already have it); the loss of its record must be loud.
            log.exception("Could not record turn %s", begun.turn_id)
        metrics.record_turn(
            persona=begun.persona.name,
            provider=self.provider.name,
            end=self._end(),
            ttft_ms=self.ttft_ms,
            error=error,
            cancelled=state == Turn.State.CANCELLED,
        )
        return state, error

    def _end(self) -> TurnEnd:
        outcomes = self.outcomes
        sources = {o.usage_source for o in outcomes}
        last = outcomes[-1] if outcomes else None
        return TurnEnd(
            text="".join(self.text),
            finish_reason="tool_calls"
            if self.client_calls
            else (last.finish_reason if last else "cancelled"),
            input_tokens=sum(o.input_tokens for o in outcomes),
            output_tokens=sum(o.output_tokens for o in outcomes),
            usage_source=next(
                (s for s in (LLMCall.UsageSource.PARTIAL, LLMCall.UsageSource.ESTIMATED) if s in sources),
                LLMCall.UsageSource.PROVIDER,
            ),
            cost_usd=sum((o.cost_usd for o in outcomes), 0),
            model=last.model if last else "",
            process_id=self.begun.session.process_id if self.begun else None,
            tool_calls=self.client_calls,
            llm_calls=len(outcomes),
        )


async def _uninterrupted(awaitable):
    """Await work that must finish once started (a transaction on a database thread, a tool) and return
    its result, even when the task is cancelled meanwhile: the cancellation then comes at the task's
    next await, so the result is never lost between the two."""
    future = asyncio.ensure_future(awaitable)
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        asyncio.current_task().cancel()
    return future.result()


def _uncancel() -> None:
    """The owner goes on to record the turn after its cancellation: later awaits must not see it."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


async def _close_quietly(stream):
    try:
        await stream.aclose()
    except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing is best effort
        log.debug("closing the provider stream failed", exc_info=True)


def _call_span_ended(span, round_: Round, cancelled: bool) -> None:
    """What a model call's span says once it ended: the answer's model, id, finish reason, usage and
    time to first token, or its error."""
    outcome = round_.outcome(cancelled=cancelled)
    span.set_attribute("gen_ai.response.model", outcome.model)
    if round_.response_id:
        span.set_attribute("gen_ai.response.id", round_.response_id)
    span.set_attribute("gen_ai.response.finish_reasons", [outcome.finish_reason])
    span.set_attribute("gen_ai.usage.input_tokens", outcome.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", outcome.output_tokens)
    span.set_attribute("tron.usage_source", outcome.usage_source)
    if round_.ttft_ms is not None:
        span.set_attribute("gen_ai.response.time_to_first_chunk", round_.ttft_ms / 1000)
    if round_.error is not None:
        tracing.failed(span, round_.error.code, round_.error.message)
    elif tracing.capture_content():
        span.set_attribute("gen_ai.output.messages", tracing.as_json([round_.answer()]))


def _first_set(*values):
    return next((value for value in values if value is not None), None)


def elapsed_ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


# The owner tasks of running turns, with their runners (the loop keeps only weak references to tasks).
_running: dict[asyncio.Task, TurnRunner] = {}
_draining = False  # set once, when the server stops (stop_taking_turns)
_stop_announced = False  # set once, when the server is told to stop (announce_stop)


def run_turn(
    turn_input: TurnInput, provider: LLMProvider | None = None, *, idle_seconds: float | None = None
):
    """Start one turn and return its events (TurnEvents; see above). With `idle_seconds`, an Idle event
    comes after that long without one. Call from a running event loop."""
    runner = TurnRunner(turn_input, provider or get_provider())
    owner = asyncio.ensure_future(runner.run())
    _running[owner] = runner
    owner.add_done_callback(lambda task: _running.pop(task, None))
    return TurnEvents(runner, owner, idle_seconds)


def turns_in_flight() -> int:
    """Turns this process runs now."""
    return len(_running)


# -- stopping: a server that drains (tron_site/web.py) ----------------------------------------------------


def announce_stop() -> None:
    """Say the process is about to stop (/health/ready answers 503, so a proxy sends new callers
    elsewhere) while it still takes turns."""
    global _stop_announced
    _stop_announced = True


def stop_taking_turns() -> None:
    """From now on every new turn of this process fails at once with ServerDraining (the edges answer
    503 with Retry-After, or their equivalent); the turns running go on."""
    global _draining
    announce_stop()
    _draining = True


def taking_turns() -> bool:
    return not _draining


def stop_announced() -> bool:
    return _stop_announced


async def finish_turns(seconds: float) -> int:
    """Wait until this process's running turns have ended, at most `seconds`; then end those still
    running as failed (ServerStopped: their calls and words are recorded as far as they got) and wait
    until they are recorded. Returns how many were ended so."""
    deadline = asyncio.get_running_loop().time() + seconds
    while _running:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        await asyncio.wait(list(_running), timeout=remaining)
    left = list(_running.items())
    for owner, runner in left:
        runner.stopped = ServerStopped(
            f"The server stopped before the turn finished ({seconds:g} s after it was told to stop, "
            "TRON_DRAIN_SECONDS); send the request again."
        )
        owner.cancel()
    if left:
        await asyncio.wait([owner for owner, _ in left])  # the owners record their turns; they never raise
    return len(left)


class TurnEvents:
    """A running turn's events, as an async iterator that ends after TurnEnd or TurnFailed.

    `aclose()` (or `async with contextlib.aclosing(run_turn(...))`) when the consumer goes away early:
    it stops the turn and waits until it is recorded. A consumer that just stops iterating leaves the
    turn to finish and record itself."""

    def __init__(self, runner: TurnRunner, owner: asyncio.Task, idle_seconds: float | None):
        self.runner, self.owner, self.idle_seconds = runner, owner, idle_seconds
        self.finished = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        if (event := self.ready()) is not None:
            return event
        if self.idle_seconds is None:
            event = await self.runner.queue.get()
        else:
            try:
                async with asyncio.timeout(self.idle_seconds):
                    event = await self.runner.queue.get()
            except TimeoutError:
                return Idle()
        self.finished = isinstance(event, TurnEnd | TurnFailed)
        return event

    def ready(self):
        """The next event if one is queued already, else None (never waits)."""
        if self.finished or self.runner.queue.empty():
            return None
        event = self.runner.queue.get_nowait()
        self.finished = isinstance(event, TurnEnd | TurnFailed)
        return event

    async def aclose(self) -> None:
        self.finished = True
        if not self.owner.done():
            self.owner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.owner)  # the owner records the turn; it never raises


async def complete_turn(turn_input: TurnInput, provider: LLMProvider | None = None) -> TurnEnd:
    """Run a whole turn and return its end (`process_id` names its process); raises TurnError when the
    turn failed."""
    async with contextlib.aclosing(run_turn(turn_input, provider)) as events:
        async for event in events:
            if isinstance(event, TurnFailed):
                raise event.error
            if isinstance(event, TurnEnd):
                return event
    raise InternalError("The turn ended without an answer.")


async def _complete_with_own_clients(turn_input: TurnInput, provider: LLMProvider | None = None) -> TurnEnd:
    async with own_clients():  # async_to_sync's event loop may end with this call
        return await complete_turn(turn_input, provider)


complete_turn_sync = async_to_sync(_complete_with_own_clients)
