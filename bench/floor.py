"""The floor under Tron's streaming overhead: the same relay with less of the stack, for
`bench/stream_overhead.py --app`.

Each app answers POST /v1/chat/completions by streaming the upstream's answer back as chat-completion
chunks through Tron's own openai provider (the official SDK sends the request; its lines are parsed
as Tron parses them), and does nothing else: no persona, no session, no database, no record.

    daphne   a bare ASGI callable under Daphne: the server, the SDK and the relay
    django   Tron's chat handler (Django's ASGI handler with the chat paths' middleware) and a Django
             Ninja route: the framework on top of that

What Tron adds above `django` is its own work (the persona, the session read, the prompt, the
writes); what `django` adds above `daphne` is Django and Ninja; what `daphne` adds over calling the
upstream directly is the server and the SDK. None of this is used outside the benchmark.
"""

import json
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tron_site.settings")

import django  # noqa: E402

django.setup()

from django.http import StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from ninja import NinjaAPI  # noqa: E402

from agents.llm.base import LLMRequest  # noqa: E402
from agents.llm.openai_compat import OpenAIProvider  # noqa: E402

provider = OpenAIProvider()
provider.prepare()


async def relay(body: bytes):
    """The upstream's text as chat-completion chunk events, then [DONE]."""
    payload = json.loads(body)
    request = LLMRequest(messages=payload["messages"], model=provider.default_model())
    ident, created = f"chatcmpl-{time.time_ns()}", int(time.time())
    async for delta in provider.stream(request):
        if delta.text:
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": "floor",
                "choices": [{"index": 0, "delta": {"content": delta.text}, "finish_reason": None}],
            }
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def daphne(scope, receive, send):
    """The bare ASGI app."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    async for part in relay(body):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


api = NinjaAPI(urls_namespace="floor")


@api.post("/v1/chat/completions")
async def chat_completions(request):
    return StreamingHttpResponse(relay(request.body), content_type="text/event-stream")


@api.get("/health")
async def health(request):
    return {"status": "ok"}


urlpatterns = [path("", api.urls)]


def _django_app():
    from django.test.utils import override_settings

    from tron_site.asgi import ChatASGIHandler

    with override_settings(ROOT_URLCONF=__name__):
        handler = ChatASGIHandler()
    # The URLconf is read per request, so the handler keeps it as its own.
    original = handler.get_response_async

    async def get_response_async(request):
        request.urlconf = __name__
        return await original(request)

    handler.get_response_async = get_response_async
    return handler


django_app = _django_app()
