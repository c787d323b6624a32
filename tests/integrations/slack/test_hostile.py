"""Hostile requests to /slack/events (issue 29). Before the signature check, anything malformed is a
401; a signed event that does not fit its schema is logged and answered 200 with nothing stored, since
Slack would retry anything else three times with the same bytes."""

import time

import httpx2
import pytest

from integrations.models import SlackMessage, SlackThread

from .conftest import envelope, mention, signed_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "9" * 309},  # past a float: OverflowError inside slack_sdk
        {"X-Slack-Request-Timestamp": "1" * 13},
        {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠"},  # digits, but not ASCII ones
        {"X-Slack-Request-Timestamp": "+1700000000"},
        {"X-Slack-Signature": "v0=" + "é" * 64},  # non-ASCII: TypeError in hmac.compare_digest
        {"X-Slack-Signature": "v0=" + "A" * 64},
        {"X-Slack-Signature": "v1=" + "0" * 64},
        {"X-Slack-Signature": ""},
    ],
    ids=[
        "timestamp-309-digits",
        "timestamp-13-digits",
        "arabic-digits",
        "plus-sign",
        "non-ascii-signature",
        "upper-case-hex",
        "another-version",
        "empty-signature",
    ],
)
def test_a_malformed_signature_header_is_a_401_never_a_500(slack, headers):
    body = b'{"type": "url_verification", "challenge": "c"}'
    sent = {"Content-Type": "application/json", **signed_headers(body), **headers}
    raw = {k: v.encode("utf-8") if not v.isascii() else v for k, v in sent.items()}

    response = httpx2.post(slack.url, content=body, headers=raw, timeout=30)

    assert response.status_code == 401


@pytest.mark.parametrize(
    "event_fields, envelope_fields",
    [
        ({"subtype": ["file_share"]}, {}),
        ({"subtype": {"a": 1}}, {}),
        ({}, {"authorizations": 5}),
        ({}, {"authorizations": [5]}),
        ({"user": ["U1"]}, {}),
        ({"ts": "1700000000.000100" + "1" * 30}, {}),
        ({"channel": "C" * 33}, {}),
        ({"blocks": [], "text": "x" * 40_001}, {}),
        ({"files": [{"name": "n" * 256}]}, {}),
        ({}, {"event_id": "Ev" + "1" * 63}),
        ({}, {"team_id": {"id": "T1"}}),
    ],
    ids=[
        "subtype-list",
        "subtype-dict",
        "authorizations-number",
        "authorizations-of-numbers",
        "user-list",
        "ts-too-long",
        "channel-too-long",
        "text-past-slacks-limit",
        "file-name-too-long",
        "event-id-too-long",
        "team-id-object",
    ],
)
def test_a_signed_event_that_does_not_fit_its_schema_is_logged_and_acknowledged(
    slack, upstream, caplog, event_fields, envelope_fields
):
    event = {**mention("hello"), **event_fields}
    payload = envelope(event, **envelope_fields)

    response = slack.post(payload)

    assert response.status_code == 200
    assert "A signed Slack event was dropped" in caplog.text
    assert not SlackMessage.objects.exists() and not SlackThread.objects.exists()
    assert upstream.requests == []


@pytest.mark.parametrize("text", ["\\ud800", "ok \\udfff", "\\ud83d"])
def test_a_lone_surrogate_in_a_signed_event_is_a_400(slack, text):
    event = f'{{"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.2", "text": "{text}"}}'
    body = f'{{"type": "event_callback", "event_id": "Ev1", "event": {event}}}'.encode()

    response = slack.post(body)

    assert response.status_code == 400 and response.headers["X-Slack-No-Retry"] == "1"
    assert not SlackMessage.objects.exists()


def test_a_lone_surrogate_in_a_ts_is_a_400(slack):
    body = (
        b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention", '
        b'"user": "U1", "channel": "C1", "ts": "1.\\udc00"}}'
    )
    assert slack.post(body).status_code == 400


@pytest.mark.parametrize("depth", [201, 5000])
def test_deep_nesting_in_a_signed_body_is_a_400(slack, depth):
    body = b'{"type": "event_callback", "event": ' + b"[" * depth + b"]" * depth + b"}"
    response = slack.post(body)
    assert response.status_code == 400 and "not JSON" in response.json()["error"]["message"]


def test_an_event_of_another_kind_is_ignored_whatever_its_fields(slack, caplog):
    event = {
        "type": "user_change",
        "user": {"id": "U1", "profile": {"a": [1, 2]}},
        "event_ts": str(time.time()),
    }
    assert slack.post(envelope(event)).status_code == 200
    assert "dropped" not in caplog.text and not SlackMessage.objects.exists()


def test_a_challenge_too_long_is_a_400(slack):
    response = slack.post({"type": "url_verification", "challenge": "c" * 1001})
    assert response.status_code == 400 and response.json()["error"]["param"] == "challenge"
