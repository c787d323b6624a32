"""POST /slack/events: signatures, the URL handshake, configuration, and what is answered or ignored."""

import time

import pytest

from integrations.models import SlackMessage
from tests.slack_api import BOT_ID, BOT_USER_ID

from .conftest import BOT_TOKEN, direct, envelope, mention


def test_url_verification_answers_the_challenge(slack):
    response = slack.post(
        {
            "token": "x",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


@pytest.mark.parametrize(
    "how",
    [
        {"signed": False},
        {"secret": "not-the-signing-secret"},
        {"timestamp": -310},  # seconds from now: older than Slack's five-minute window
        {"timestamp": +310},
        {"headers": {"X-Slack-Signature": "v0=" + "0" * 64}},
        {"headers": {"X-Slack-Request-Timestamp": "yesterday"}},
    ],
    ids=[
        "unsigned",
        "wrong-secret",
        "stale",
        "from-the-future",
        "forged-signature",
        "timestamp-not-a-number",
    ],
)
def test_a_request_without_a_good_signature_is_a_401_and_nothing_happens(slack, upstream, fake_slack, how):
    if "timestamp" in how:
        how = {"timestamp": int(time.time()) + how["timestamp"]}
    challenge = slack.post({"challenge": "c", "type": "url_verification"}, **how)
    assert challenge.status_code == 401
    assert (
        challenge.json()["error"]["message"] == "The request's Slack signature is missing, wrong or too old."
    )
    event = slack.event(mention("hello"), **how)
    assert event.status_code == 401
    assert not SlackMessage.objects.exists()
    assert upstream.requests == [] and fake_slack.posts() == []


def test_a_signature_over_other_bytes_is_refused(slack):
    body = b'{"type": "url_verification", "challenge": "c"}'
    from .conftest import signed_headers

    headers = {"Content-Type": "application/json", **signed_headers(body)}
    import httpx2

    tampered = body.replace(b'"c"', b'"d"')
    assert httpx2.post(slack.url, content=tampered, headers=headers).status_code == 401
    assert httpx2.post(slack.url, content=body, headers=headers).json() == {"challenge": "c"}


def test_without_a_signing_secret_every_request_is_refused(slack, settings, upstream):
    settings.SLACK_SIGNING_SECRET = ""
    for payload in ({"challenge": "c", "type": "url_verification"}, envelope(mention("hello"))):
        response = slack.post(payload)  # signed with the secret Slack would use: still refused
        assert response.status_code == 503
        assert "SLACK_SIGNING_SECRET is not set" in response.json()["error"]["message"]
    assert upstream.requests == []


def test_without_a_bot_token_a_message_is_refused_loudly_not_dropped(slack, settings, caplog):
    settings.SLACK_BOT_TOKEN = ""
    response = slack.event(mention("hello"))
    assert response.status_code == 503
    assert "SLACK_BOT_TOKEN is not set" in response.json()["error"]["message"]
    assert "SLACK_BOT_TOKEN is not set" in caplog.text
    assert slack.post({"challenge": "c", "type": "url_verification"}).json() == {"challenge": "c"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The body is not JSON: "),
        (b"[1, 2]", "The body must be a JSON object."),
        (b"\xff\xfe", None),
    ],
)
def test_a_signed_body_that_is_no_json_object_is_a_400_or_401(slack, body, message):
    response = slack.post(body)
    if message is None:  # not UTF-8: Slack never signs such a body
        assert response.status_code == 401
    else:
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith(message)
        assert response.headers["X-Slack-No-Retry"] == "1"  # the same bytes would fail again


def test_only_post_is_allowed(slack):
    import httpx2

    response = httpx2.get(slack.url)
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"


def test_a_mention_is_answered_in_its_thread_through_the_web_api(slack, upstream, fake_slack):
    upstream.reset(tokens=["Ship", " it", "!"])
    event = mention("what do you think about the launch?", ts="1700000000.000100")
    response = slack.event(event)
    assert response.status_code == 200
    [post] = fake_slack.posts()
    assert post["channel"] == "C0GENERAL"
    assert post["thread_ts"] == "1700000000.000100"  # a new thread under the mention
    assert post["text"] == "Ship it!"
    assert fake_slack.attempts("chat.postMessage")[0].token == BOT_TOKEN
    prompt = upstream.requests[0].body["messages"]
    assert prompt[-1] == {"role": "user", "content": "what do you think about the launch?"}  # no <@UBOT…>
    assert "This message is from ada." in " ".join(m["content"] for m in prompt if m["role"] == "system")
    row = SlackMessage.objects.get()
    assert row.status == "answered" and row.reply == "Ship it!" and row.persona_name == "Tony"
    assert row.process.channel == "slack"
    assert list(row.process.messages.values_list("role", "content")) == [
        ("user", "what do you think about the launch?"),
        ("assistant", "Ship it!"),
    ]


def test_a_reply_inside_a_thread_goes_to_that_thread(slack, fake_slack):
    slack.event(mention("and now?", ts="1700000000.000300", thread_ts="1700000000.000100"))
    assert fake_slack.posts()[0]["thread_ts"] == "1700000000.000100"


def test_a_direct_message_is_answered_in_its_thread(slack, upstream, fake_slack):
    upstream.reset(tokens=["Hi Ada"])
    slack.event(direct("hello there", ts="1700000001.000001"))
    [post] = fake_slack.posts()
    assert (post["channel"], post["thread_ts"], post["text"]) == ("D0ADA0001", "1700000001.000001", "Hi Ada")
    assert SlackMessage.objects.get().kind == "direct"


def test_user_mentions_are_resolved_to_names_where_the_bot_can_read_them(slack, upstream, fake_slack):
    fake_slack.add_user("U0GRACE01", "Grace Hopper")
    slack.event(
        mention(
            "ask <@U0GRACE01> and <@U0NOBODY1> in <#C0DESIGN|design>, see <https://x.io|the doc> &amp; reply"
        )
    )
    assert upstream.requests[0].body["messages"][-1]["content"] == (
        "ask @Grace Hopper and @U0NOBODY1 in #design, see the doc (https://x.io) & reply"
    )


@pytest.mark.parametrize(
    "event",
    [
        mention("loop?", bot_id=BOT_ID),  # a bot's post (ours carry our bot_id)
        mention("loop?", user=BOT_USER_ID),  # our own user
        direct("from another bot", bot_id="B0OTHER01", subtype="bot_message"),
        direct("edited", subtype="message_changed"),
        direct("", subtype="message_deleted", hidden=True),
        direct("joined", subtype="channel_join"),
        {
            "type": "message",
            "channel_type": "channel",
            "user": "U0ADA0001",
            "text": "no mention",
            "channel": "C0GENERAL",
            "ts": "1.2",
        },
        {"type": "reaction_added", "user": "U0ADA0001", "reaction": "thumbsup"},
    ],
    ids=["bot-id", "own-user", "bot-message", "edit", "delete", "join", "channel-message", "reaction"],
)
def test_bots_edits_and_other_events_are_acknowledged_and_ignored(slack, upstream, fake_slack, event):
    assert slack.event(event).status_code == 200
    assert not SlackMessage.objects.exists()
    assert upstream.requests == [] and fake_slack.posts() == []


def test_the_bot_does_not_answer_its_own_reply_when_slack_echoes_it(slack, upstream, fake_slack):
    slack.event(direct("hello", ts="1700000002.000001"))
    [post] = fake_slack.posts()
    echo = direct(post["text"], user=BOT_USER_ID, bot_id=BOT_ID, thread_ts="1700000002.000001")
    slack.event(echo)
    assert len(upstream.requests) == 1 and len(fake_slack.posts()) == 1


def test_a_message_with_files_is_answered_and_the_files_are_named(slack, upstream, fake_slack):
    event = direct("what do you make of this?", subtype="file_share", files=[{"name": "q3.pdf"}])
    slack.event(event)
    assert "[attached: q3.pdf;" in upstream.requests[0].body["messages"][-1]["content"]
    assert len(fake_slack.posts()) == 1


def test_app_rate_limited_is_acknowledged_and_logged(slack, caplog):
    response = slack.post({"type": "app_rate_limited", "team_id": "T0001", "minute_rate_limited": 1518467820})
    assert response.status_code == 200
    assert "app_rate_limited" in caplog.text


def test_a_bare_mention_gets_a_prompt_not_a_model_call(slack, upstream, fake_slack):
    slack.event({**mention(""), "text": f"<@{BOT_USER_ID}>"})
    assert upstream.requests == []
    assert fake_slack.posts()[0]["text"] == "Yes? Ask me anything, here in the thread."


def test_a_signature_within_the_five_minutes_is_accepted(slack):
    old = slack.post({"challenge": "c", "type": "url_verification"}, timestamp=int(time.time()) - 280)
    assert old.json() == {"challenge": "c"}


def test_the_api_token_does_not_guard_slack_its_signature_does(slack, settings):
    settings.TRON_API_TOKEN = "operators-only"
    assert slack.post({"challenge": "c", "type": "url_verification"}).json() == {"challenge": "c"}
    assert slack.post({"challenge": "c", "type": "url_verification"}, signed=False).status_code == 401


def test_a_body_past_the_upload_limit_is_a_413(slack, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = slack.post(envelope(mention("x" * 2000)))
    assert response.status_code == 413
    assert not SlackMessage.objects.exists()
