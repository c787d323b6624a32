"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, …) through the official SDK."""

import asyncio
import logging
import weakref

import openai
from django.conf import settings

from .base import Delta, LLMError, LLMProvider, LLMRequest, Usage

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

    def client(self) -> openai.AsyncOpenAI:
        """One client (and connection pool) per event loop: an httpx client must not cross loops."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=openai.Timeout(settings.TRON_LLM_TIMEOUT, connect=10.0),
                max_retries=settings.TRON_LLM_MAX_RETRIES,
            )
            self._clients[loop] = client
        return client

    async def stream(self, request: LLMRequest):
        params = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            # Ask for usage on the stream: one extra chunk with empty choices before [DONE].
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.user:
            params["user"] = request.user
        try:
            stream = await self.client().chat.completions.create(**params)
            try:
                async for chunk in stream:
                    for delta in _deltas(chunk):
                        yield delta
            finally:
                await stream.close()  # on cancellation this closes the upstream connection: generation stops
        except openai.APIError as exc:
            raise _llm_error(exc) from exc


def _deltas(chunk):
    model = getattr(chunk, "model", None)
    for choice in chunk.choices or ():
        content = getattr(choice.delta, "content", None) if choice.delta else None
        if content:
            yield Delta(text=content, model=model)
        if choice.finish_reason:
            yield Delta(finish_reason=choice.finish_reason, model=model)
    usage = getattr(chunk, "usage", None)
    if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
        yield Delta(usage=Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0), model=model)


def _llm_error(exc: openai.APIError) -> LLMError:
    """Map an SDK error to what our client should see. Upstream details (which may name the provider's
    account, model or key) go to the log, not to the caller."""
    log.warning("Upstream error: %s", exc)
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("The model did not answer in time.", status=504, code="upstream_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("The model's server could not be reached.", status=502, code="upstream_unreachable")
    if isinstance(exc, openai.APIStatusError):
        upstream = exc.status_code
        retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
        if upstream in (429, 503, 529):
            return LLMError(
                f"The model's server is busy ({upstream}); try again shortly.",
                status=503,
                code="upstream_overloaded",
                retry_after=retry_after,
            )
        if upstream in (400, 413, 422):
            # The request itself was refused (too long, a bad parameter): retrying cannot help.
            return LLMError(
                f"The model refused the request ({upstream}): {_upstream_message(exc)}",
                status=400,
                code="upstream_rejected",
            )
        return LLMError(f"The model's server answered {upstream}.", status=502, code="upstream_error")
    # An error event inside the stream (the SDK raises APIError for `data: {"error": …}`).
    return LLMError("The model's server reported an error mid-answer.", status=502, code="upstream_error")


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
    return (exc.message or "")[:500]
