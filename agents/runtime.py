"""One conversational turn: prompt → model → record, callable from HTTP streams, consumers and tasks.

    turn = await start_turn(TurnInput(...))        # persona, prompt; the model started
    session = await turn.opened()                  # the session, process and the user's words, stored
    async for event in turn.events(): ...          # Delta texts as they arrive, then a TurnEnd
    # or: result = complete_turn_sync(TurnInput(...)) from sync code (django-q2 tasks)

Only reads stand between a request and the model's call: the persona (cached) and, when the client
sends just its new words, the session's transcript. The writes (the session and process for a new
caller, the user's words) start once the model has the request, and run on the writer thread while
the model works on its first token.

The model runs in a task of its own that feeds a queue, so a consumer can wait on the queue with a
timeout (SSE keep-alives) without cancelling the model call. Whatever happens (finish, upstream error,
client gone) the task records the LLM call, the transcript and the process counters exactly once.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.db import transaction

from . import loop_reads, metrics, pricing, tokens
from .callers import Caller
from .context import context_for, has_providers
from .dbthread import db_read, db_write
from .llm import get_provider
from .llm.base import Delta, LLMError, LLMProvider, LLMRequest
from .models import CallerSession, LLMCall, Message, Persona, Process
from .personas import PersonaUnavailable, cached_persona, resolve_persona
from .prompts import (
    build_prompt,
    has_client_history,
    recent_messages,
    refuse_oversized,
    trailing_user_messages,
    unsaved,
)
from .sessions import continuing_session, idle_cutoff, open_session

log = logging.getLogger(__name__)

MODEL_LENGTH = LLMCall._meta.get_field("model").max_length
FINISH_REASON_LENGTH = LLMCall._meta.get_field("finish_reason").max_length


@dataclass
class TurnInput:
    messages: list[dict]  # normalised: [{"role": "system"|"user"|"assistant", "content": str}]
    caller: Caller
    persona_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None
    task: str = ""
    tools: list[dict] | None = None  # the client's own tools (OpenAI's `tools`), returned to it when called
    tool_choice: object = None


@dataclass
class Opened:
    """The turn's session (and its process) is stored, with the user's words."""

    session: CallerSession


@dataclass
class Text:
    text: str


@dataclass
class TurnEnd:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    usage_source: str
    cost_usd: object
    model: str
    process_id: int | None = None


@dataclass
class TurnFailed:
    error: LLMError


@dataclass
class TurnContext:
    """What a prompt needs, read before the model is called."""

    persona: Persona
    session: CallerSession | None  # the caller's open session when this turn continues it
    recent: list[dict]  # its stored transcript, when the client sent no history of its own
    new_words: list[dict]  # the user's words in this request that are not stored yet


@dataclass
class Turn:
    persona: Persona
    request: LLMRequest
    provider: LLMProvider
    write_opening: Callable[[], Awaitable[CallerSession]]  # the session and the user's words
    opening: asyncio.Future | None = None  # that write, once started
    session: CallerSession | None = None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    finished: bool = False  # the final event (TurnEnd or TurnFailed) is in the queue
    model_has_request: bool = False  # an upstream's 200, the local model's turn to generate
    producing: bool = False  # the task has taken its first step (one cancelled before that never runs)
    # set once the model has the request, or once the turn ended (a failure before that included)
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def process(self) -> Process:
        return self.session.process

    async def opened(self) -> CallerSession:
        """The turn's session (and through it the process), once the opening writes are done; raises
        what they raised. Shielded: a consumer that gives up does not cancel the writes."""
        self.session = await asyncio.shield(self._begin_opening())
        return self.session

    def _begin_opening(self) -> asyncio.Future:
        if self.opening is None:
            self.opening = asyncio.ensure_future(self.write_opening())
        return self.opening

    def run(self) -> "Turn":
        self.task = asyncio.ensure_future(self._produce())
        self.task.add_done_callback(self._ensure_final_event)
        return self

    def _ensure_final_event(self, task: asyncio.Task) -> None:
        # A producer that died without its final event (a bug) must not leave a consumer waiting forever.
        if not self.finished and not task.cancelled():
            self.queue.put_nowait(
                TurnFailed(LLMError("The turn ended without an answer.", status=500, code="internal_error"))
            )
        self.settled.set()

    async def accepted(self, timeout: float) -> None:
        """Wait until the model has the request (an upstream answered 200), or the turn ended before
        that (its TurnFailed is then queued), or `timeout` seconds passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.settled.wait()

    async def next_event(self, timeout: float | None = None):
        """The next Delta, TurnEnd or TurnFailed; raises TimeoutError if none within `timeout`."""
        if (event := self.ready_event()) is not None:
            return event  # no timer to arm and cancel: the common case mid-stream
        if timeout is None:
            return await self.queue.get()
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    def ready_event(self):
        """The next event if one is already queued, else None (never waits)."""
        return None if self.queue.empty() else self.queue.get_nowait()

    async def events(self):
        while True:
            event = await self.next_event()
            yield event
            if not isinstance(event, Delta):
                return

    async def cancel(self):
        """The consumer is gone: stop the model and record what was produced (marked partial)."""
        if self.task is None:
            return
        if not self.task.done():
            self.task.cancel()
            # Errors were recorded inside the task; shield() lets it finish recording if we are cancelled.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(self.task)
        if self.task.done() and not self.producing and not self.finished:
            # Cancelled before its first step (a client gone at once): the task never ran, so nothing
            # reached the model, but the caller's words are still stored and the call recorded. (A task
            # that ran records itself, however it ends; the two never both record.)
            try:
                await asyncio.shield(
                    self._finish(None, "stop", self.request.model, None, None, cancelled=True)
                )
            except asyncio.CancelledError:
                pass  # _finish re-raises the cancellation it records; the record itself is done
            except Exception:
                log.exception("Could not record a turn with %s whose client left", self.persona)

    async def _produce(self):
        self.producing = True
        usage = None
        finish_reason = "stop"
        model = self.request.model
        ttft_ms = None
        error: LLMError | None = None
        cancelled = False
        stream = self.provider.stream(self.request)
        try:
            async for delta in stream:
                if delta.accepted:
                    self.model_has_request = True
                    self._begin_opening()
                    self.settled.set()
                    continue
                if delta.model:
                    model = delta.model
                if delta.text:
                    if ttft_ms is None:
                        ttft_ms = int((time.monotonic() - self.started) * 1000)
                    self.parts.append(delta.text)
                    self.queue.put_nowait(delta)
                elif delta.usage is not None:
                    usage = delta.usage
                elif delta.finish_reason:
                    finish_reason = delta.finish_reason
        except LLMError as exc:
            error = exc
        except asyncio.CancelledError:
            cancelled = True
        except Exception as exc:  # a provider bug must not lose the turn's record
            log.exception("Provider %s failed", self.provider.name)
            error = LLMError(f"The model failed: {exc.__class__.__name__}", status=502)
        finally:
            await _close_quietly(stream)  # stops generation upstream (closes the HTTP stream / local loop)
        await self._finish(usage, finish_reason, model, ttft_ms, error, cancelled)

    async def _finish(self, usage, finish_reason, model, ttft_ms, error, cancelled) -> None:
        """Record the turn, queue its final event, and re-raise a cancellation."""
        end = self._summarize(usage, finish_reason, model, error, cancelled)
        metrics.record_turn(
            persona=self.persona.name,
            provider=self.provider.name,
            end=end,
            ttft_ms=ttft_ms,
            error=error,
            cancelled=cancelled,
        )
        try:
            await asyncio.shield(self._opened_then_write(end, ttft_ms, error))
        except asyncio.CancelledError:
            cancelled = True  # cancelled while writing: the shielded write still completes
        except Exception:
            # The answer stands (the client may already have it); the loss of its record must be loud.
            log.exception("Could not record a turn with %s", self.persona)
        self.queue.put_nowait(TurnFailed(error) if error else end)
        self.finished = True
        self.settled.set()
        if cancelled:
            raise asyncio.CancelledError

    async def _opened_then_write(self, end, ttft_ms, error):
        # After the opening writes, so the transcript keeps its order (the user's words, then the answer).
        try:
            await self.opened()
        except Exception:
            log.exception("Could not store the session of a turn with %s: it is not recorded", self.persona)
            return
        await db_write(self._write)(end, ttft_ms, error)

    def _summarize(self, usage, finish_reason, model, error, cancelled) -> TurnEnd:
        """Tokens (the provider's, else estimated; `partial` when the client left) and their cost."""
        text = "".join(self.parts)
        measured = self.request.measured  # a provider's own count of a stream closed early
        if usage is not None and not cancelled:
            source = LLMCall.UsageSource.PROVIDER
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        elif cancelled and measured is not None:
            source = LLMCall.UsageSource.PARTIAL
            input_tokens, output_tokens = measured.input_tokens, measured.output_tokens
        elif cancelled and not self.model_has_request:
            source = LLMCall.UsageSource.PARTIAL  # gone before the model had the request: nothing used
            input_tokens = output_tokens = 0
        else:
            source = LLMCall.UsageSource.PARTIAL if cancelled else LLMCall.UsageSource.ESTIMATED
            input_tokens = tokens.estimate_prompt_tokens(self.request.messages)
            output_tokens = tokens.estimate_text_tokens(text)
            if error is not None and not text:
                input_tokens = output_tokens = 0  # nothing was generated, nothing is billed
        if cancelled:
            finish_reason = "cancelled"
        elif error is not None:
            finish_reason = "error"
        # What an upstream names is cut to its column: PostgreSQL refuses a longer value, and with it
        # the whole record.
        model, finish_reason = model[:MODEL_LENGTH], finish_reason[:FINISH_REASON_LENGTH]
        cost = pricing.cost_usd(model, input_tokens, output_tokens)
        return TurnEnd(text, finish_reason, input_tokens, output_tokens, source, cost, model)

    def _write(self, end: TurnEnd, ttft_ms, error) -> None:
        """The LLM call, the assistant's words and the process counters, in one transaction. (The
        session's last-seen time is when its caller last spoke: the opening write set it.)"""
        with transaction.atomic():
            LLMCall.objects.create(
                process=self.process,
                provider=self.provider.name,
                model=end.model,
                input_tokens=end.input_tokens,
                output_tokens=end.output_tokens,
                cost_usd=end.cost_usd,
                usage_source=end.usage_source,
                finish_reason=end.finish_reason,
                ttft_ms=ttft_ms,
                duration_ms=int((time.monotonic() - self.started) * 1000),
                error=error.message if error else "",
            )
            if end.text:
                Message.objects.create(
                    process=self.process,
                    session=self.session,
                    role=Message.Role.ASSISTANT,
                    content=end.text,
                )
            self.process.add_usage(
                input_tokens=end.input_tokens,
                output_tokens=end.output_tokens,
                llm_calls=1,
                cost_usd=end.cost_usd,
            )
            # The process carries its last failed turn's reason until a turn succeeds again (a client who
            # left changes nothing); a session that ends with it set ends `failed`
            # (ProcessQuerySet.finish_by_outcome).
            if error is not None:
                reason = error.message
            elif end.finish_reason == "cancelled":
                reason = self.process.error
            else:
                reason = ""
            if reason != self.process.error:
                Process.objects.filter(pk=self.process.pk).update(error=reason)
                self.process.error = reason


async def _close_quietly(stream):
    try:
        await stream.aclose()
    except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing is best effort
        log.debug("closing the provider stream failed", exc_info=True)


async def read_context(turn_input: TurnInput) -> TurnContext:
    """What the prompt needs, read only: the persona (cached), the session this turn continues and, when
    the client sent only its new words, that session's recent transcript.

    On SQLite, with the personas cached, a new caller's turn (or one whose client sends its own
    history) reads on the event loop and never waits for a thread (agents/loop_reads.py); the ORM
    reads on a reader thread cover the rest."""
    persona = cached_persona(turn_input.persona_name)
    if persona is not None and loop_reads.available():
        session = loop_reads.continuing_session(turn_input.caller.caller_id, persona, idle_cutoff())
        if session is not loop_reads.UNKNOWN:
            if session is None or has_client_history(turn_input.messages):
                return _context(turn_input, persona, session, recent=[])
            return _context(turn_input, persona, session, recent=await db_read(recent_messages)(session))
    return await db_read(_read_context)(turn_input, persona)


def _read_context(turn_input: TurnInput, persona: Persona | None) -> TurnContext:
    """read_context through the ORM, on a database thread (the persona too when none was cached):
    at most three queries."""
    persona = persona or resolve_persona(turn_input.persona_name)
    session = continuing_session(turn_input.caller, persona)
    needs_history = session is not None and not has_client_history(turn_input.messages)
    recent = recent_messages(session) if needs_history else []
    return _context(turn_input, persona, session, recent)


def _context(turn_input: TurnInput, persona: Persona, session, recent: list[dict]) -> TurnContext:
    new_words = unsaved(recent, trailing_user_messages(turn_input.messages))
    return TurnContext(persona=persona, session=session, recent=recent, new_words=new_words)


def open_turn(turn_input: TurnInput, context: TurnContext) -> CallerSession:
    """Sync, one transaction: the caller's session (a new one with its process when due, else the one
    read a moment ago, marked seen) and the user's new words."""
    with transaction.atomic():
        session = open_session(
            turn_input.caller, context.persona, task=turn_input.task, known=context.session
        )
        new_words = context.new_words
        continued = context.session is not None and session.pk == context.session.pk
        if new_words and continued and not context.recent:
            # The client sent its own history, so the transcript was not read before the model call:
            # a client retrying a failed turn (VAPI, the SDKs) must not store its words twice either.
            last = Message.objects.filter(process=session.process).order_by("-id").values("role", "content")
            new_words = unsaved(list(reversed(last[: len(new_words)])), new_words)
        Message.objects.bulk_create(
            Message(
                process=session.process,
                session=session,
                role=Message.Role.USER,
                content=m["content"],
                created_at=session.last_seen_at,
            )
            for m in new_words
        )
    return session


async def start_turn(turn_input: TurnInput, provider: LLMProvider | None = None) -> Turn:
    """Read what the prompt needs and start the model; once the model has the request, the session and
    the user's words are written while it works on its first token. Returns the running Turn
    (`await turn.opened()` for its rows).

    The turn's own record waits for those writes, so the transcript keeps its order and the user's
    words are stored even when the model fails.
    """
    refuse_oversized(turn_input.messages)
    provider = provider or get_provider()
    context = await read_context(turn_input)
    persona = context.persona
    extra = await db_read(context_for)(persona, turn_input.caller) if has_providers() else []
    request = LLMRequest(
        messages=build_prompt(
            persona,
            turn_input.messages,
            context.recent + context.new_words,
            extra=extra,
            compact=provider.compact_prompts,
            context_tokens=provider.context_tokens(),
        ),
        model=persona.model or provider.default_model(),
        temperature=_first_set(turn_input.temperature, provider.default_temperature, persona.temperature),
        max_tokens=turn_input.max_tokens,
        user=turn_input.user,
    )
    opening = db_write(open_turn)
    turn = Turn(
        persona=persona,
        request=request,
        provider=provider,
        write_opening=lambda: opening(turn_input, context),
    )
    return turn.run()


def _first_set(*values):
    return next((value for value in values if value is not None), None)


async def complete_turn(turn_input: TurnInput, provider: LLMProvider | None = None) -> TurnEnd:
    """Run a whole turn and return its end (`process_id` names its process); raises LLMError when the
    turn failed."""
    async for event in run_turn(turn_input, provider):
        if isinstance(event, TurnFailed):
            raise event.error
        if isinstance(event, TurnEnd):
            return event
    raise LLMError("The model ended without an answer.")


complete_turn_sync = async_to_sync(complete_turn)


async def run_turn(turn_input: TurnInput, provider: LLMProvider | None = None):
    """Run one turn, yielding its events: `Opened` (the session, stored), `Text` deltas, then a `TurnEnd`
    or a `TurnFailed` (also for a turn refused before anything was stored: no persona, a message too long).
    Closing the generator early (the consumer went away) stops the model and records the turn."""
    try:
        turn = await start_turn(turn_input, provider)
    except PersonaUnavailable as exc:
        yield TurnFailed(LLMError(str(exc), status=503, code="no_persona"))
        return
    except LLMError as exc:
        yield TurnFailed(exc)
        return
    try:
        session = await turn.opened()
        yield Opened(session)
        async for event in turn.events():
            if isinstance(event, Delta):
                yield Text(event.text)
            else:
                if isinstance(event, TurnEnd):
                    event.process_id = session.process_id
                yield event
    finally:
        await turn.cancel()
