"""The OpenAI-compatible chat endpoints: /chat/completions, /v1/chat/completions, /v1/models and
ElevenLabs' custom LLM at /v1/elevenlabs-llm. Protocol only: the turn itself is agents.runtime."""

import json
import logging
import time
from urllib.parse import quote

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from ninja import Router

from agents import errors, metrics
from agents.dbthread import db_read
from agents.models import Channel, Persona
from agents.runtime import Accepted, Opened, Text, ToolStarted, TurnEnd, TurnFailed, TurnInput, run_turn

from .chat_schemas import ChatCompletionIn, RequestError, client_tools, normalize_messages, parse_chat_request
from .error_envelope import error_body, error_response, error_type_for
from .identify import identify_caller, join_call
from .trust import chat_principal

log = logging.getLogger(__name__)

router = Router(tags=["chat"])

# The request body, documented from the model that validates it (parse_chat_request reads the raw body
# itself, for OpenAI's error messages). Its schema and the ones it refers to are components of the chat
# API's document (tron_site/api.py).
_body_schema = ChatCompletionIn.model_json_schema(ref_template="#/components/schemas/{model}")
REQUEST_BODY_SCHEMAS = {"ChatCompletionIn": _body_schema, **_body_schema.pop("$defs", {})}
REQUEST_BODY_DOC = {
    "requestBody": {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionIn"}}},
        "required": True,
    }
}


@router.post("/chat/completions", openapi_extra=REQUEST_BODY_DOC, summary="Chat with a persona")
async def chat_completions(request):
    return await chat(request)


@router.post("/v1/chat/completions", openapi_extra=REQUEST_BODY_DOC, summary="Chat with a persona (alias)")
async def v1_chat_completions(request):
    return await chat(request)


@router.post("/v1/elevenlabs-llm", openapi_extra=REQUEST_BODY_DOC, summary="ElevenLabs custom LLM")
async def elevenlabs_llm(request):
    return await chat(request, channel=Channel.ELEVENLABS)


# ElevenLabs treats its server URL as a base and appends /chat/completions (integrators report); both work.
@router.post(
    "/v1/elevenlabs-llm/chat/completions", openapi_extra=REQUEST_BODY_DOC, summary="ElevenLabs (as base URL)"
)
async def elevenlabs_llm_as_base(request):
    return await chat(request, channel=Channel.ELEVENLABS)


@router.get("/v1/models", summary="The personas, as models")
async def list_models(request):
    personas = await db_read(_enabled_personas)()
    return JsonResponse({"object": "list", "data": [_model_card(p) for p in personas]})


@router.get("/v1/models/{model_id}", summary="One persona, as a model")
async def get_model(request, model_id: str):
    persona = await db_read(_enabled_persona)(model_id)
    if persona is None:
        return error_response(
            404, f"The model {model_id!r} does not exist.", code="model_not_found", param="model"
        )
    return JsonResponse(_model_card(persona))


def _enabled_personas() -> list[Persona]:
    return list(Persona.objects.enabled())


def _enabled_persona(name: str) -> Persona | None:
    return Persona.objects.enabled().filter(name__iexact=name).first()


def _model_card(persona: Persona) -> dict:
    return {
        "id": persona.name.lower(),
        "object": "model",
        "created": int(persona.created_at.timestamp()),
        "owned_by": "tron",
        "description": f"{persona.name}, {persona.role}",
    }


async def chat(request, channel: str | None = None):
    try:
        payload = parse_chat_request(request.body)
        messages = normalize_messages(payload.messages)
    except RequestError as exc:
        return error_response(400, exc.message, param=exc.param)

    caller = await join_call(identify_caller(request.headers, payload, channel))  # VAPI: a call id alone
    turn_input = TurnInput(
        messages=messages,
        caller=caller,
        principal=chat_principal(caller, request.META.get("REMOTE_ADDR", "")),
        persona_name=payload.model,
        temperature=payload.temperature,
        max_tokens=payload.max_completion_tokens or payload.max_tokens,
        user=payload.user,
        tools=client_tools(payload),
        tool_choice=payload.tool_choice,
        # W3C trace context (VAPI and OpenAI clients that trace send it): the turn continues their trace.
        traceparent=request.headers.get("traceparent", ""),
        tracestate=request.headers.get("tracestate", ""),
    )
    keepalive = settings.TRON_SSE_KEEPALIVE_SECONDS
    events = run_turn(turn_input, idle_seconds=keepalive if payload.stream else None)
    headers = {"X-Tron-Caller-ID": quote(caller.caller_id, safe="+-_.:@"), "X-Tron-Process-ID": ""}
    try:
        event = await anext(events)  # Opened, or TurnFailed when the turn was refused before it began
        persona = None
        if isinstance(event, Opened):
            persona = event.persona
            headers["X-Tron-Process-ID"] = event.session.process.public_id
            # Streams answer once the model has the request, so a failure before that (the upstream
            # refused, or could not be reached) is a real HTTP error, and what comes after streams as it
            # comes (an error then is an SSE error event). A model slow to accept gets its 200 and
            # keep-alives after TRON_SSE_KEEPALIVE_SECONDS.
            event = await anext(events)
        if isinstance(event, TurnFailed):
            await events.aclose()
            if caller.channel == Channel.VAPI and isinstance(event.error, errors.CallerLimited):
                # A phone caller hears a refusal rather than VAPI's error tone; nothing is stored.
                return Reply(payload, persona, headers).spoken(LIMIT_REACHED_SPOKEN)
            if caller.channel == Channel.VAPI and isinstance(event.error, errors.ServerDraining):
                # VAPI does not send a turn elsewhere on a 503: the caller would hear its error tone and
                # the call could end. They hear a request to repeat; nothing is stored, and their next
                # words reach a server that takes turns (the proxy has taken this one out by then).
                return Reply(payload, persona, headers).spoken(DRAINING_SPOKEN)
            return _llm_error_response(event.error, headers)
        reply = Reply(payload, persona, headers)
        if payload.stream:
            return reply.streaming(events, event)
        while not isinstance(event, TurnEnd):
            event = await anext(events)
            if isinstance(event, TurnFailed):
                return _llm_error_response(event.error, headers)
        return reply.completion(event)
    except BaseException:
        await events.aclose()  # the client went away (or we failed) before the answer: stop and record
        raise


DRAINING_SPOKEN = "Sorry, I missed that. Could you say it again?"
LIMIT_REACHED_SPOKEN = (
    "Sorry, this line can't take more from your number right now. Please call again a little later."
)


# What the chat API answers for each error of the core (agents.errors): the HTTP status; the body is
# OpenAI's envelope with the error's message and code.
STATUS = {
    errors.MessageTooLong: 413,
    errors.NoPersona: 503,
    errors.ConversationBusy: 409,
    errors.OverBudget: 429,
    errors.CallerLimited: 429,
    errors.Overloaded: 503,
    errors.ServerDraining: 503,
    errors.ModelUnavailable: 503,
    errors.UpstreamRejected: 400,
    errors.UpstreamTimeout: 504,
    errors.UpstreamFailed: 502,
    errors.ServerStopped: 503,
    errors.TurnLost: 503,
    errors.InternalError: 500,
}


def status_of(error: errors.TurnError) -> int:
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 500)


def _llm_error_response(error: errors.TurnError, headers: dict | None = None):
    status = status_of(error)
    headers = dict(headers or {})
    if error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    if status == 400 or isinstance(error, errors.OverBudget):
        headers["x-should-retry"] = "false"  # the same request would fail the same way (today)
    return error_response(status, error.message, code=error.code, headers=headers)


def _event(data) -> bytes:
    """One SSE event, as bytes: Django passes bytes through, where each str would cost it an encode."""
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


class Reply:
    """Formats one turn as an OpenAI chat completion (JSON) or a stream of chunks (SSE)."""

    def __init__(self, payload: ChatCompletionIn, persona, headers: dict):
        self.id = f"chatcmpl-{time.time_ns()}"
        self.created = int(time.time())
        # The persona that answers; a model slow to take the request starts a stream before it is known.
        self.model = (persona.name if persona else payload.model or settings.TRON_DEFAULT_PERSONA).lower()
        self.include_usage = bool(payload.stream_options and payload.stream_options.include_usage)
        self.stream = bool(payload.stream)
        self.headers = headers

    def completion(self, end: TurnEnd) -> JsonResponse:
        message = {"role": "assistant", "content": end.text or (None if end.tool_calls else "")}
        if end.tool_calls:
            message["tool_calls"] = end.tool_calls
        response = JsonResponse(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": end.finish_reason, "logprobs": None}
                ],
                "usage": _usage(end),
                "system_fingerprint": None,
            }
        )
        return self._with_headers(response)

    def spoken(self, text: str):
        """A fixed answer in words, not the model's (a refusal a caller hears), streamed when asked."""
        end = TurnEnd(
            text=text,
            finish_reason="stop",
            input_tokens=0,
            output_tokens=0,
            usage_source="",
            cost_usd=0,
            model="",
        )
        if not self.stream:
            return self.completion(end)
        body = [self.chunk({"role": "assistant"}), self.chunk({"content": text}), *self.ending(end)]
        response = StreamingHttpResponse(iter([b"".join(body)]), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        return self._with_headers(response)

    def streaming(self, events, first) -> StreamingHttpResponse:
        response = StreamingHttpResponse(self.sse(events, first), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return self._with_headers(response)

    def _with_headers(self, response):
        for key, value in self.headers.items():
            response[key] = value
        return response

    def chunk(self, delta: dict, finish_reason=None) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

    def _chunk(self, choices: list, usage: dict | None = None) -> bytes:
        """A chat.completion.chunk event; with include_usage every chunk carries `usage` (null until
        the last one, which has no choices)."""
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            data["usage"] = usage
        return _event(data)

    async def sse(self, events, first):
        """The stream's bytes: the role chunk at once, then the turn's events. Events that are queued
        when one is written (a model faster than this stream, or a busy server catching up) go out with
        it in one write: every write crosses Django's response iterator, Daphne and a send() call."""
        metrics.OPEN_STREAMS.inc()
        try:
            out = [self.chunk({"role": "assistant"})]
            event = first
            while True:
                if isinstance(event, TurnEnd | TurnFailed):
                    out.extend(self.ending(event))
                    yield b"".join(out)
                    return
                out.append(self.piece(event))
                if (event := events.ready()) is None:
                    yield b"".join(out)
                    out = []
                    event = await anext(events)
        except Exception:
            # A failure of ours once the headers are out: the stream must still end, with an error
            # event the SDKs raise on (Daphne can no longer send a 500, and would leave it hanging).
            log.exception("A chat stream failed")
            yield _event(error_body("The server failed mid-answer; it has been logged.", "server_error"))
        finally:
            metrics.OPEN_STREAMS.dec()
            await events.aclose()

    def piece(self, event) -> bytes:
        if isinstance(event, Text):
            return self.chunk({"content": event.text})
        if isinstance(event, Accepted | Opened):
            return b""
        if isinstance(event, ToolStarted):
            return f": running {event.name}\n\n".encode()
        return b": keep-alive\n\n"  # Idle

    def ending(self, event) -> list[bytes]:
        if isinstance(event, TurnFailed):  # mid-stream: an error event the SDK raises on, never a fake "stop"
            error = event.error
            return [
                _event(
                    error_body(error.message, error_type_for(status_of(error), error.code), None, error.code)
                )
            ]
        events = []
        if event.tool_calls:
            calls = [{"index": index, **call} for index, call in enumerate(event.tool_calls)]
            events.append(self.chunk({"tool_calls": calls}))
        events.append(self.chunk({}, finish_reason=event.finish_reason))
        if self.include_usage:
            events.append(self._chunk([], _usage(event)))
        events.append(b"data: [DONE]\n\n")
        return events


def _usage(end: TurnEnd) -> dict:
    return {
        "prompt_tokens": end.input_tokens,
        "completion_tokens": end.output_tokens,
        "total_tokens": end.input_tokens + end.output_tokens,
    }
