"""Slack's Web API through slack_sdk's WebClient: posting replies, and the names behind user ids.

The client retries what is worth retrying by itself: a rate limit after the `Retry-After` Slack sends
(429), a 500/503, a dropped connection. Anything else (`not_in_channel`, `channel_not_found`, a bad
token) raises `SlackApiError`, which the caller records and logs.
"""

import logging
import threading
import time

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from .mrkdwn import split_message

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
RATE_LIMIT_RETRIES = 3
NAME_CACHE_SECONDS = 3600  # a renamed user shows their new name within the hour

_names: dict[str, tuple[float, str | None]] = {}
_bot_ids: dict[str, str] = {}  # bot token's hash → the bot's user id (auth.test)
_lock = threading.Lock()


class PostFailed(Exception):
    """Slack refused a reply, after the retries: `error` is Slack's code (`not_in_channel`…)."""

    def __init__(self, error: str, posted: int):
        super().__init__(error)
        self.error = error
        self.posted = posted  # parts of the reply posted before the failure


def web_client() -> WebClient:
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_URL,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def post_reply(client: WebClient, channel: str, thread_ts: str, text: str) -> int:
    """Post `text` in the thread, in as many messages as Slack's limits need; returns how many.
    Raises PostFailed when Slack refuses one (after its retries)."""
    parts = split_message(text)
    for posted, part in enumerate(parts):
        try:
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=part)
        except SlackApiError as exc:
            raise PostFailed(_error_code(exc), posted) from exc
        except OSError as exc:  # the connection, after the client's own retries
            raise PostFailed(f"connection failed: {exc.__class__.__name__}", posted) from exc
    return len(parts)


def _error_code(exc: SlackApiError) -> str:
    response = exc.response
    code = response.get("error") if hasattr(response, "get") else None
    status = getattr(response, "status_code", None)
    return str(code or f"HTTP {status}")


def user_name(client: WebClient, user_id: str) -> str | None:
    """The name Slack shows for `user_id` (display name, else real name, else handle), or None when the
    bot cannot read the user (no `users:read` scope, an unknown user, Slack unreachable). Remembered
    for NAME_CACHE_SECONDS, failures too, so a busy thread does not ask for every message."""
    now = time.monotonic()
    with _lock:
        cached = _names.get(user_id)
    if cached is not None and now - cached[0] < NAME_CACHE_SECONDS:
        return cached[1]
    name = None
    try:
        user = client.users_info(user=user_id).get("user") or {}
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
        )
    except (SlackApiError, OSError) as exc:
        log.info(
            "Slack user %s cannot be read (%s): their id stands for their name",
            user_id,
            exc.__class__.__name__,
        )
    with _lock:
        _names[user_id] = (now, name or None)
    return name or None


def own_user_id(client: WebClient) -> str:
    """The bot's user id from auth.test (once per token), for envelopes that do not name it; "" if
    Slack cannot say."""
    key = str(hash(client.token))
    with _lock:
        if key in _bot_ids:
            return _bot_ids[key]
    try:
        user_id = str(client.auth_test().get("user_id") or "")
    except (SlackApiError, OSError):
        log.warning("auth.test failed: the bot's own mentions cannot be told apart", exc_info=True)
        return ""
    with _lock:
        _bot_ids[key] = user_id
    return user_id


def forget() -> None:
    """Drop the remembered names and ids (tests; a token change)."""
    with _lock:
        _names.clear()
        _bot_ids.clear()
