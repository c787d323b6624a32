"""Slack tests: signed requests to the live server's /slack/events, Slack's Web API played by a local
server (tests/slack_api.py), the model by the fake upstream (tests/upstream.py)."""

import hashlib
import hmac
import itertools
import json
import time

import httpx2
import pytest

from tests.slack_api import BOT_USER_ID, FakeSlack

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"
ADMIN = "U0ADMIN01"
_ids = itertools.count(1)


def signed_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict:
    """Slack's request signature, computed as Slack documents it (independently of slack_sdk):
    `v0=` + HMAC-SHA256(secret, "v0:<timestamp>:<raw body>")."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def envelope(event: dict, event_id: str | None = None, **extra) -> dict:
    return {
        "token": "legacy-unused",
        "team_id": "T0001",
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": "T0001", "user_id": BOT_USER_ID, "is_bot": True}],
        "event": event,
        **extra,
    }


def _ts() -> str:
    return f"{int(time.time())}.{next(_ids):06d}"


def mention(text: str, *, user="U0ADA0001", channel="C0GENERAL", ts=None, thread_ts=None, **fields) -> dict:
    """An app_mention event: `text` after the bot's mention, as Slack writes it."""
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "channel": channel,
        "ts": ts or _ts(),
        **fields,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.setdefault("event_ts", event["ts"])
    return event


def direct(text: str, *, user="U0ADA0001", channel="D0ADA0001", ts=None, thread_ts=None, **fields) -> dict:
    """A message event in the bot's DM with `user`."""
    event = {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "channel": channel,
        "ts": ts or _ts(),
        **fields,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


class SlackSender:
    """Posts to /slack/events as Slack does: the raw JSON body, signed."""

    def __init__(self, base_url: str):
        self.url = f"{base_url}/slack/events"

    def post(self, payload, *, headers=None, signed=True, secret=SIGNING_SECRET, timestamp=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"}
        if signed:
            sent.update(signed_headers(body, secret, timestamp))
        sent.update(headers or {})
        return httpx2.post(self.url, content=body, headers=sent, timeout=60)

    def event(self, event: dict, **kwargs):
        return self.post(envelope(event), **kwargs)


@pytest.fixture(scope="session")
def fake_slack():
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def slack(settings, chat_setup, live_tron, fake_slack):
    """Tron configured for Slack against the fake Web API, the fake model, and the live server."""
    from integrations.slack import client

    settings.SLACK_SIGNING_SECRET = SIGNING_SECRET
    settings.SLACK_BOT_TOKEN = BOT_TOKEN
    settings.SLACK_API_URL = fake_slack.url
    settings.SLACK_ADMIN_USERS = [ADMIN]
    settings.SLACK_CHANNEL_PERSONAS = {}
    fake_slack.reset()
    fake_slack.add_user("U0ADA0001", "Ada Lovelace", display_name="ada")
    client.forget()
    yield SlackSender(live_tron.url)
    client.forget()
