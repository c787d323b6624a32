"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, …) through the official SDK."""

import asyncio
import functools
import json
import logging
import math
import re
import ssl
import weakref

import aiohttp
import httpx2
import openai
from django.conf import settings

from ..errors import ModelUnavailable, TurnError, UpstreamFailed, UpstreamRejected, UpstreamTimeout
from .base import Delta, LLMProvider, LLMRequest, ToolCall, Usage, own_client

log = logging.getLogger(__name__)


class OpenAIProvider(LLMProvider):
    name = "openai"

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None):
        self.base_url = base_url if base_url is not None else (settings.OPENAI_BASE_URL or None)
        # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
        self.api_key = api_key if api_key is not None else (settings.OPENAI_API_KEY or "no-key")
        # Weakly keyed: a loop made by async_to_sync (tasks, commands) takes its client with it when it goes.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def default_model(self) -> str:
        return settings.TRON_MODEL

    def prepare(self) -> None:
        # Every client loads the CA store (~30 ms), which the first chat of each process used to wait for.
        _tls_context()

    def client(self) -> openai.AsyncOpenAI:
        """This task's own client (base.own_clients), else its event loop's: one connection pool per
        loop, as a connection must not cross loops."""
        client = own_client(self, self._new_client)
        if client is None:
            loop = asyncio.get_running_loop()
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = self._new_client()
        return client

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _new_client(self) -> openai.AsyncOpenAI:
        # The SDK's aiohttp transport: its C parser reads a stream for less CPU than httpx's, 30.0 against
        # 34.7 ms of a web process's CPU per stream of 20 tokens (bench/stream_overhead.py, 1 stream).
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=openai.Timeout(settings.TRON_LLM_TIMEOUT, connect=10.0),
            max_retries=settings.TRON_LLM_MAX_RETRIES,
            http_client=openai.DefaultAioHttpClient(verify=_tls_context()),
        )

    async def stream(self, request: LLMRequest):
        params = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            # Ask for usage on the stream: one extra chunk with empty choices before [DONE].
            "stream_options": {"include_usage": True},
        }
        reasoning = is_reasoning_model(request.model)
        if request.temperature is not None and not reasoning:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
        if request.user:
            params["user"] = request.user
        if request.tools:
            params["tools"] = request.tools
            if request.tool_choice is not None:
                params["tool_choice"] = request.tool_choice
        # The SDK sends the request (base URL, auth, timeouts, retries before the first byte, error
        # mapping); the stream's lines are parsed here with json.loads, because building the SDK's typed
        # chunk objects cost more CPU per token than everything else in a turn (see docs/benchmarks.md).
        try:
            response = await self.client().post(
                "/chat/completions", cast_to=httpx2.Response, body=params, stream=True
            )
        except openai.APIError as exc:
            raise _llm_error(exc) from exc
        try:
            yield Delta(accepted=True)
            chunks = 0
            calls = ToolCalls()
            lines = response.aiter_lines()
            async for line in lines:
                if not chunks and line.lstrip().startswith("{"):
                    # A server that ignored `stream` answered with one whole completion: relay it.
                    body = "\n".join([line, *[rest async for rest in lines]])
                    deltas = list(_deltas(_parse_chunk(body), calls, key="message"))
                    chunks = len(deltas)
                    for delta in deltas:
                        yield delta
                    break
                if not line.startswith("data:"):
                    continue  # blank separators, SSE comments, event names
                data = line[5:].strip()
                if data == "[DONE]":
                    await _read_to_end(lines)
                    break
                chunks += 1
                for delta in _deltas(_parse_chunk(data), calls):
                    yield delta
            if calls:
                yield Delta(tool_calls=calls.finished())
            if not chunks:  # an empty body, an HTML page, a bare [DONE]: no answer, not an empty one
                log.warning(
                    "Upstream answered 200 without a stream (%s)", response.headers.get("content-type")
                )
                raise UpstreamFailed("The model's server sent no answer.")
        except httpx2.TransportError as exc:
            if _timed_out(exc):
                raise UpstreamTimeout("The model stopped answering in time.") from exc
            log.warning("Upstream stream broke: %s", exc)
            raise UpstreamFailed("The model's connection broke mid-answer.") from exc
        finally:
            await response.aclose()  # on cancellation this closes the upstream connection: generation stops


# OpenAI's reasoning models: o1, o3, o4-mini, gpt-5 and later, also fine-tuned (ft:o4-mini-…) and
# behind a router's prefix (openai/o3).
_REASONING_MODEL = re.compile(r"^(ft:)?(o[1-9]\d*|gpt-([5-9]|[1-9]\d+))(?![a-z0-9])")


def is_reasoning_model(model: str) -> bool:
    """Whether `model` is one of OpenAI's reasoning models, which refuse two parameters every other
    model takes: `max_tokens` (they take `max_completion_tokens`, which older OpenAI-compatible servers
    do not know) and any temperature but their own. A persona or client asking for either would
    otherwise get every call refused with a 400."""
    return bool(_REASONING_MODEL.match((model or "").rsplit("/", 1)[-1].lower()))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context (the CA store, SSL_CERT_FILE honoured) shared by the clients of every event loop:
    loading it costs ~30 ms, and a context is safe to share."""
    return httpx2.create_ssl_context()


async def _read_to_end(lines) -> None:
    """Read the end of the body, which follows [DONE] at once: a response read to its end gives its
    connection back to the pool, so the next turn skips the connect (an unread end closes it).
    A server that keeps the body open after [DONE] costs at most a second; the answer is complete."""
    try:
        async with asyncio.timeout(1.0):
            async for _line in lines:
                pass
    except (TimeoutError, httpx2.TransportError):
        log.debug("the upstream did not end its body after [DONE]", exc_info=True)


def _parse_chunk(data: str) -> dict:
    try:
        chunk = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        log.warning("Upstream sent a line that is not JSON: %.200s", data)
        raise UpstreamFailed("The model's server sent an unreadable answer.") from None
    if not isinstance(chunk, dict):
        raise UpstreamFailed("The model's server sent an unreadable answer.")
    if chunk.get("error"):
        log.warning("Upstream error event: %.500s", data)
        raise UpstreamFailed("The model's server reported an error mid-answer.")
    return chunk


class ToolCalls:
    """The tool calls of one answer, put together from the pieces a stream sends them in: the first
    piece of each (by `index`) has its id and name, every piece a part of its arguments."""

    def __init__(self):
        self.parts: dict[int, dict] = {}

    def __bool__(self) -> bool:
        return bool(self.parts)

    def add(self, piece) -> None:
        if not isinstance(piece, dict):
            return
        index = piece.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else len(self.parts)
        call = self.parts.setdefault(index, {"id": "", "name": "", "arguments": ""})
        function = piece.get("function") if isinstance(piece.get("function"), dict) else {}
        call["id"] = call["id"] or _text(piece.get("id"))
        call["name"] = call["name"] or _text(function.get("name"))
        call["arguments"] += _text(function.get("arguments"))

    def finished(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"])
            for index, call in sorted(self.parts.items())
            if call["name"]
        )


def _deltas(chunk: dict, calls: ToolCalls, key: str = "delta"):
    """The Deltas of one chunk (or, with key="message", of a whole completion); its tool-call pieces go
    into `calls`. What the upstream sent is checked here, at the edge: only text is text, only whole
    non-negative numbers are token counts."""
    model = _text(chunk.get("model")) or None
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get(key)
        content = _text(delta.get("content")) if isinstance(delta, dict) else ""
        if content:
            yield Delta(text=content, model=model)
        pieces = delta.get("tool_calls") if isinstance(delta, dict) else None
        for piece in pieces if isinstance(pieces, list) else ():
            calls.add(piece)
        if finish_reason := _text(choice.get("finish_reason")):
            yield Delta(finish_reason=finish_reason, model=model, response_id=_text(chunk.get("id")) or None)
    usage = chunk.get("usage")
    if isinstance(usage, dict) and (usage.get("prompt_tokens") or usage.get("completion_tokens")):
        counts = _count(usage.get("prompt_tokens") or 0), _count(usage.get("completion_tokens") or 0)
        if None in counts:
            log.warning("Upstream usage is not token counts, so they are estimated: %.200s", usage)
        else:
            yield Delta(usage=Usage(*counts), model=model)


_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TOKEN_COUNT = 10**9  # more than any call uses; a larger "count" is garbage


def _text(value) -> str:
    """Upstream text as text that can be sent and stored: anything but a string is none, and a lone
    UTF-16 surrogate (an escaped emoji split over two chunks) becomes U+FFFD instead of failing the
    encoding of the client's stream and the write of the transcript."""
    if not isinstance(value, str):
        return ""
    if _SURROGATE.search(value):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _count(value) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def _timed_out(exc: Exception) -> bool:
    """Whether an error of the SDK or its transport is a timeout. aiohttp's errors reach us mapped to
    httpx's, and the mapping makes a refused or dropped connection a connect *timeout*: what aiohttp
    raised, in the chain of causes, says which it was."""
    while exc is not None:
        if isinstance(exc, aiohttp.ClientError):
            return isinstance(exc, TimeoutError)
        exc = exc.__cause__
    return True


def _llm_error(exc: openai.APIError) -> TurnError:
    """Map an SDK error to what our client should see. Upstream details (which may name the provider's
    account, model or key) go to the log, not to the caller."""
    log.warning("Upstream error: %s", exc)
    if isinstance(exc, openai.APITimeoutError) and _timed_out(exc):
        return UpstreamTimeout("The model did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailed("The model's server could not be reached.", code="upstream_unreachable")
    if isinstance(exc, openai.APIStatusError):
        upstream = exc.status_code
        retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
        if upstream in (429, 503, 529):
            return ModelUnavailable(
                f"The model's server is busy ({upstream}); try again shortly.",
                code="upstream_overloaded",
                retry_after=_seconds(retry_after),
            )
        if upstream in (400, 413, 422):
            # The request itself was refused (too long, a bad parameter): retrying cannot help.
            return UpstreamRejected(f"The model refused the request ({upstream}): {_upstream_message(exc)}")
        return UpstreamFailed(f"The model's server answered {upstream}.")
    # An error event inside the stream (the SDK raises APIError for `data: {"error": …}`).
    return UpstreamFailed("The model's server reported an error mid-answer.")


def _seconds(retry_after: str | None) -> int | None:
    """Retry-After in whole seconds when the upstream gave a number (an HTTP date is ignored)."""
    try:
        return max(0, math.ceil(float(retry_after))) if retry_after else None
    except ValueError:
        return None


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
    return (exc.message or "")[:500]
