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
