"""Failures visible in Slack, and nothing lost: the model failing, Slack's API refusing or rate
limiting, a worker that died, a message stored while the broker was down."""

import logging
import threading
import time
from datetime import timedelta

from django.utils import timezone

from agents.models import Message, Process
from integrations.models import SlackMessage, SlackThread
from integrations.slack.tasks import resume_waiting
from tests.slack_api import Reply

from .conftest import BOT_TOKEN, mention

APOLOGY = (
    "Sorry, I couldn't answer that just now: something went wrong on my side. Please try again in a moment."
)


def test_when_the_model_fails_the_persona_apologises_and_the_failure_is_on_the_process(
    slack, upstream, fake_slack
):
    upstream.reset(status=500)
    slack.event(mention("what's our runway?", ts="1700001000.000001"))
    [post] = fake_slack.posts()
    assert (post["thread_ts"], post["text"]) == ("1700001000.000001", APOLOGY)
    row = SlackMessage.objects.get()
    assert row.status == "answered" and "502" not in row.reply
    assert row.error and row.process is not None
    assert row.process.error  # the engine recorded why the turn failed
    assert list(Message.objects.filter(process=row.process).values_list("role", "content")) == [
        ("user", "what's our runway?")  # the user's words are in the transcript all the same
    ]
    upstream.reset(tokens=["Eighteen months."])
    slack.event(mention("try again?", ts="1700001000.000002", thread_ts="1700001000.000001"))
    assert fake_slack.posts()[-1]["text"] == "Eighteen months."


def test_a_rate_limited_post_is_retried_after_retry_after(slack, upstream, fake_slack):
    fake_slack.script(
        "chat.postMessage", Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    )
    slack.event(mention("hello"))
    attempts = fake_slack.attempts("chat.postMessage")
    assert len(attempts) == 2
    assert attempts[1].at - attempts[0].at >= 1.0
    assert [p["text"] for p in fake_slack.posts()] == ["Hello there!"]
    assert SlackMessage.objects.get().status == "answered"


def test_a_post_still_rate_limited_after_the_retries_is_logged_and_kept(slack, upstream, fake_slack, caplog):
    limited = Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})
    fake_slack.script("chat.postMessage", *[limited] * 4)
    with caplog.at_level(logging.ERROR, logger="integrations"):
        slack.event(mention("hello"))
    assert len(fake_slack.attempts("chat.postMessage")) == 4  # the first try and three retries
    row = SlackMessage.objects.get()
    assert (row.status, row.error, row.reply) == ("failed", "Slack: ratelimited", "Hello there!")
    assert "ratelimited" in caplog.text


def test_not_in_channel_is_logged_and_the_answer_kept_in_the_transcript(slack, upstream, fake_slack, caplog):
    fake_slack.script("chat.postMessage", Reply(200, {"ok": False, "error": "not_in_channel"}))
    with caplog.at_level(logging.ERROR, logger="integrations"):
        response = slack.event(mention("hello", channel="C0PRIVATE"))
    assert response.status_code == 200
    assert fake_slack.posts() == []
    row = SlackMessage.objects.get()
    assert (row.status, row.error) == ("failed", "Slack: not_in_channel")
    assert "not_in_channel" in caplog.text and "C0PRIVATE" in caplog.text
    assert list(row.process.messages.values_list("role", flat=True)) == ["user", "assistant"]
    assert BOT_TOKEN not in caplog.text


def test_a_slack_server_error_is_retried(slack, fake_slack):
    fake_slack.script("chat.postMessage", Reply(503, {"ok": False, "error": "service_unavailable"}))
    slack.event(mention("hello"))
    assert len(fake_slack.attempts("chat.postMessage")) == 2
    assert len(fake_slack.posts()) == 1


def test_a_long_answer_is_split_within_slacks_limit_in_order(slack, upstream, fake_slack):
    paragraphs = [f"Paragraph {n}: " + "word " * 300 for n in range(1, 8)]  # 7 × 1,513 characters
    upstream.reset(tokens=["\n\n".join(paragraphs)])
    slack.event(mention("tell me everything", ts="1700001100.000001"))
    posts = fake_slack.posts()
    assert len(posts) == 4  # two paragraphs fit in 4,000 characters, three do not
    assert all(len(p["text"]) <= 4000 and p["text"].startswith("Paragraph") for p in posts)
    assert {p["thread_ts"] for p in posts} == {"1700001100.000001"}
    assert " ".join(p["text"] for p in posts).split() == "\n\n".join(paragraphs).split()


def test_the_answer_is_in_slack_mrkdwn(slack, upstream, fake_slack):
    upstream.reset(
        tokens=["## Plan\n", "**Ship** it, see [the doc](https://x.io/a?b=1&c=2).\n", "- one\n- two"]
    )
    slack.event(mention("plan?"))
    assert fake_slack.posts()[0]["text"] == (
        "*Plan*\n*Ship* it, see <https://x.io/a?b=1&amp;c=2|the doc>.\n• one\n• two"
    )
    process = Process.objects.get()
    assert process.messages.last().content.startswith("## Plan")  # the transcript keeps what was said


def test_a_message_too_long_for_the_engine_gets_told_so(slack, settings, upstream, fake_slack):
    settings.TRON_MAX_MESSAGE_CHARS = 20
    slack.event(mention("x" * 50))
    assert fake_slack.posts()[0]["text"].startswith("Sorry, that message is too long")
    assert SlackMessage.objects.get().error


def _left_waiting(slack, status, attempts=0, age=timedelta(minutes=5)):
    thread = SlackThread.objects.create(team_id="T0001", channel="C0GENERAL", thread_ts="1700001200.000001")
    return SlackMessage.objects.create(
        event_id="Ev0LEFT",
        thread=thread,
        kind="mention",
        user="U0ADA0001",
        ts="1700001200.000001",
        text="<@UBOT0001> are you still there?",
        status=status,
        attempts=attempts,
        received_at=timezone.now() - age,
    )


def test_the_sweep_answers_a_message_stored_while_the_broker_was_down(slack, fake_slack):
    row = _left_waiting(slack, "pending")
    assert resume_waiting() == "resumed 1 Slack thread(s)"
    row.refresh_from_db()
    assert row.status == "answered"
    assert fake_slack.posts()[0]["thread_ts"] == "1700001200.000001"
    assert resume_waiting() == "resumed 0 Slack thread(s)"


def test_the_sweep_leaves_fresh_and_leased_threads_alone(slack, fake_slack):
    fresh = _left_waiting(slack, "pending", age=timedelta(seconds=5))
    assert resume_waiting() == "resumed 0 Slack thread(s)"
    SlackMessage.objects.filter(pk=fresh.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    SlackThread.objects.update(lease_holder="busy", lease_until=timezone.now() + timedelta(minutes=5))
    assert resume_waiting() == "resumed 0 Slack thread(s)"
    assert fake_slack.posts() == []


def test_a_message_whose_worker_died_is_answered_by_the_next_one(slack, fake_slack):
    row = _left_waiting(slack, "answering", attempts=1)
    SlackThread.objects.update(lease_holder="dead", lease_until=timezone.now() - timedelta(seconds=1))
    resume_waiting()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("answered", 2)
    assert fake_slack.posts()[0]["text"] == "Hello there!"


def test_a_message_that_killed_its_worker_twice_is_given_up_with_an_apology(
    slack, upstream, fake_slack, caplog
):
    row = _left_waiting(slack, "answering", attempts=2)
    resume_waiting()
    row.refresh_from_db()
    assert row.status == "failed" and "gave up" in row.error
    assert [p["text"] for p in fake_slack.posts()] == [APOLOGY]
    assert upstream.requests == []
    assert "Giving up on Slack message Ev0LEFT" in caplog.text


def test_the_slack_api_unreachable_is_recorded_not_raised(slack, settings, fake_slack):
    settings.SLACK_API_URL = "http://127.0.0.1:9/api/"  # nothing listens on the discard port
    started = time.monotonic()
    assert slack.event(mention("hello")).status_code == 200
    row = SlackMessage.objects.get()
    assert row.status == "failed" and row.error.startswith("Slack: connection failed")
    assert time.monotonic() - started < 30


def test_a_persona_over_budget_says_so_in_the_thread(slack, upstream, fake_slack, team):
    from decimal import Decimal

    from integrations.slack.answer import OVER_BUDGET

    team["tony"].budget_usd = Decimal("0")
    team["tony"].save()

    slack.event(mention("what's our runway?", ts="1700001000.000009"))

    [post] = fake_slack.posts()
    assert post["text"] == OVER_BUDGET and not upstream.requests
    assert "used today's budget" in SlackMessage.objects.get().error


def test_a_process_deleted_while_its_turn_runs_still_gets_its_answer_posted_and_kept(
    slack, upstream, fake_slack
):
    upstream.reset(tokens=["Still here."], first_token_delay=1.0)
    asking = threading.Thread(target=slack.event, args=(mention("are you there?", ts="1700002000.000001"),))
    asking.start()
    deadline = time.monotonic() + 10
    while not Message.objects.filter(role="user").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Process.objects.all().delete()  # an operator, in the admin
    asking.join(20)
    assert fake_slack.posts()[-1]["text"] == "Still here."
    row = SlackMessage.objects.get()
    assert (row.status, row.reply, row.process) == ("answered", "Still here.", None)
