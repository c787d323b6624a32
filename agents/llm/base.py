"""The one interface every LLM provider implements, and the errors they raise.

A provider turns a list of OpenAI-style messages into an async stream of `Delta`s: first a mark that
the model has taken the request, then text as it arrives, then the tool calls the model made (each
whole, once its stream has ended), then (when the provider knows it) the exact usage, then the finish
reason. Errors are agents.errors' ModelUnavailable, UpstreamRejected, UpstreamTimeout and UpstreamFailed.
"""

import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: OpenAI's `{"id", "type": "function", "function": {"name", "arguments"}}`."""

    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it (it may not be valid JSON)

    def as_openai(self) -> dict:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class Delta:
    """One event of a stream: exactly one of accepted, text, tool_calls, usage or finish_reason is set."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    # The model has the request (an upstream's response headers, the local model's turn to generate):
    # the runtime does its own writes then, so they do not slow the request on its way out.
    accepted: bool = False
    model: str | None = None  # the model the provider says answered, when it says so
    response_id: str | None = None  # the provider's id of the answer (with the finish reason)


@dataclass
class LLMRequest:
    # OpenAI's messages: {"role": "system"|"user"|"assistant"|"tool", "content": str}, an assistant's with
    # `tool_calls`, a tool's with `tool_call_id`
    messages: list[dict]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None
    tools: list[dict] | None = None  # OpenAI's `tools` (only for providers that support them)
    tool_choice: object = None
    # What a provider that counts its own tokens (the local model) had used when its stream was closed
    # early: by then no usage Delta can reach the consumer, and an estimate would replace real counts.
    measured: Usage | None = None


_own_clients: contextvars.ContextVar[dict | None] = contextvars.ContextVar("tron_own_clients", default=None)


@contextlib.asynccontextmanager
async def own_clients():
    """Within: the model clients this task (and the tasks it starts) needs are made for it and closed at
    the end, instead of the event loop's. For a loop that lives for one call (async_to_sync's, in tasks
    and commands), whose connections would otherwise outlive it."""
    clients: dict = {}
    token = _own_clients.set(clients)
    try:
        yield
    finally:
        _own_clients.reset(token)
        for client in clients.values():
            await client.close()


def own_client(provider, make):
    """The client of `provider` for this task under `own_clients` (made by `make()` at first use), else
    None."""
    clients = _own_clients.get()
    if clients is None:
        return None
    if provider not in clients:
        clients[provider] = make()
    return clients[provider]


class LLMProvider:
    """Base class. Subclasses set `name` and implement `stream`."""

    name = "base"
    compact_prompts = False  # True: the model is small, give it the short form of the persona prompt
    default_temperature: float | None = None  # when set, used instead of the persona's temperature
    supports_tools = True  # False: the model gets no tools and a transcript of plain text only

    def context_tokens(self) -> int | None:
        """Prompt tokens the model can take (its context less the longest answer), when known."""
        return None

    def default_model(self) -> str:
        raise NotImplementedError

    def prepare(self) -> None:
        """Called once when a server process starts: do now what the first request would pay for."""

    def unready(self) -> str | None:
        """Why this provider cannot answer now (/health/ready), or None. A remote upstream is not asked:
        its outage is every node's, and taking them all out of the proxy would not help."""
        return None

    async def aclose(self) -> None:
        """Close what this provider holds open for the running event loop (its connections)."""

    def stream(self, request: LLMRequest) -> AsyncIterator[Delta]:
        """Yield Deltas; cancellation (client gone) must stop generation promptly."""
        raise NotImplementedError
