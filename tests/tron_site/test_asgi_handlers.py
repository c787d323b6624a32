"""The two HTTP handlers of tron_site.asgi: Django's per-request housekeeping runs for the site's
requests, and no thread is woken for it on the way to a chat request's view."""

from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

from tron_site.asgi import ChatASGIHandler, _housekeeping_for_the_site_only


def test_only_site_requests_run_the_housekeeping():
    # As tron_site.asgi leaves it at import. (Django's test client connects close_old_connections
    # again, for every sender, after each of its requests: so it is wired again here.)
    _housekeeping_for_the_site_only()

    site, _ = request_started._live_receivers(ASGIHandler)
    chat, _ = request_started._live_receivers(ChatASGIHandler)
    assert close_old_connections in site and reset_queries in site
    assert chat == []


async def _get(path: str, headers=()) -> tuple[int, dict]:
    from channels.testing import HttpCommunicator

    from tron_site.asgi import application

    headers = [(b"host", b"localhost"), *headers]
    communicator = HttpCommunicator(application, "GET", path, headers=headers)
    response = await communicator.get_response()
    return response["status"], {k.decode().lower(): v.decode() for k, v in response["headers"]}


async def test_chat_paths_run_only_the_lean_middleware(settings, db):
    settings.TRON_CHAT_API_KEY = "chat-key"
    # The chat chain checks the key (ApiTokenMiddleware) and adds CORS headers (ApiEdgeMiddleware)...
    status, headers = await _get("/v1/models")
    assert status == 401 and headers["access-control-allow-origin"] == "*"
    # ...and none of the site's middleware runs: XFrameOptionsMiddleware, innermost, would mark this.
    status, headers = await _get("/v1/models", [(b"authorization", b"Bearer chat-key")])
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    assert "x-frame-options" not in headers


async def test_site_paths_run_the_whole_middleware(db):
    status, headers = await _get("/admin/login/")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
