"""ASGI entry point.

HTTP: a body declared larger than TRON_MAX_BODY_BYTES is refused (413) before it is read, on every path;
the chat API's paths go to a Django handler with only the middleware they use (CORS, errors, the
chat key); static files (STATIC_ROOT, filled by `collectstatic`) are answered by ServeStatic before
Django; everything else gets the full stack (sessions, CSRF, auth, messages for the admin). Each
MiddlewareMixin middleware costs two thread hops per request under ASGI, which the hot streaming path
should not pay. WebSockets: Channels' router (tron_site/routing.py), which refuses unknown paths.
"""

import gc
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tron_site.settings")
django_asgi_app = get_asgi_application()  # before anything that imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from .middleware import CHAT_PREFIXES, LEAN_MIDDLEWARE, body_too_large  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402

log = logging.getLogger("tron_site.asgi")


class ChatASGIHandler(ASGIHandler):
    """Django's ASGI handler with the chat paths' middleware, and one long-lived thread for their
    thread-sensitive work.

    Django runs each request in a ThreadSensitiveContext of its own, whose first thread-sensitive call
    (the `request_started` signal, before the view) starts a new thread, and whose end starts another
    to join it: two threads per request. The chat path's only thread-sensitive work is those signals'
    receivers and the odd small read (`/v1/models`), so here every request's context shares one
    thread that lives as long as the process.
    """

    def __init__(self):
        super().__init__()
        self.sync_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tron-chat-sync")

    def load_middleware(self, is_async=False):
        """The chain Django builds from settings.MIDDLEWARE, built from LEAN_MIDDLEWARE instead. Those
        are async middleware without hooks (process_view, process_exception...), so the chain is each
        wrapped around the next, as Django wraps them."""
        assert is_async, "the chat handler serves ASGI only"
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response_async)
        for middleware in reversed(LEAN_MIDDLEWARE):
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"The chat handler serves HTTP only, not {scope['type']}.")
        async with ThreadSensitiveContext(executor=self.sync_executor):
            await self.handle(scope, receive, send)


def _housekeeping_for_the_site_only() -> None:
    """Django's receivers of `request_started` (the query log's reset, stale connections closed) are
    sync, so each request's handler runs them on a thread before the view: a thread hop on the way to
    every first token. The chat handler's requests use no connection of their request's thread (a
    turn's database work runs on agents.dbthread's threads), so the receivers are left to the site's
    handler: a thread hop less on the way to the first token (docs/benchmarks.md)."""
    for receiver in (reset_queries, close_old_connections):
        request_started.disconnect(receiver)
        request_started.connect(receiver, sender=ASGIHandler)


_housekeeping_for_the_site_only()
chat_asgi_app = ChatASGIHandler()
# Files are indexed once, here: `collectstatic` runs before the server starts (`make run`). A path that is
# not a collected file goes on to Django (a 404 there).
static_root = settings.STATIC_ROOT if Path(settings.STATIC_ROOT).is_dir() else None
if static_root is None:
    log.warning(
        "%s does not exist: run `manage.py collectstatic`, or the admin has no CSS", settings.STATIC_ROOT
    )
site_asgi_app = ServeStaticASGI(django_asgi_app, root=static_root, prefix=settings.STATIC_URL)


# A web process's helper threads (the database threads, the request signals' thread) wait for the GIL
# while the event loop works, and hold it as long once they have it: Python's switch interval, 5 ms by
# default. At 1 ms the loop gets it back sooner (docs/decisions.md, "1 ms GIL switch interval").
WEB_SWITCH_INTERVAL = 0.001


def warm_up() -> None:
    """Do now what the first request would do: import the URLconf with its APIs and schemas, and ready
    the LLM provider (its client library, its TLS context). A cold process answered its first chat
    ~0.4 s late."""
    from django.urls import get_resolver

    from agents.llm import get_provider

    get_resolver().url_patterns  # noqa: B018 - the property imports the URLconf
    get_provider().prepare()


warm_up()
sys.setswitchinterval(WEB_SWITCH_INTERVAL)
# What is loaded by now (Django, the URLconf, the SDK, the models) lives as long as the process. A full
# collection used to walk all of it, 80-100 ms in which a web process served nothing, once every few
# hundred streams: the slowest first tokens of a run. Frozen, it is left out of every collection.
gc.freeze()


def _declared_length(scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0  # the server has refused a malformed one
    return 0


async def _refuse(send, response) -> None:
    """Answer with a Django response, without reading the request's body (the connection then closes)."""
    headers = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in response.items()]
    headers += [(b"content-length", str(len(response.content)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


async def http_application(scope, receive, send):
    # Django's handlers read the whole body (to a temporary file) before any middleware runs: one too
    # large is refused here, before the key is checked. A body of undeclared length (chunked) is
    # bounded by the proxy (deploy/Caddyfile).
    if _declared_length(scope) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        await _refuse(send, body_too_large(scope["path"]))
        return
    app = chat_asgi_app if scope["path"].startswith(CHAT_PREFIXES) else site_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
