"""Threads as conversations: routing to a persona, context kept per thread, order within a thread,
threads side by side, Slack's retries answered once (across web processes too), and the work done in
a django-q2 task after Slack has its answer."""

import threading
import time

import pytest
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage

from agents.models import CallerSession
from integrations.models import SlackMessage, SlackThread
from integrations.slack.tasks import answer_thread
from tests.liveserver import LiveASGIServer

from .conftest import SlackSender, envelope, mention


def _prompt_text(record) -> str:
    return "\n".join(m["content"] for m in record.body["messages"])


def _system(record) -> str:
    return record.body["messages"][0]["content"]


def test_a_leading_persona_name_chooses_the_persona_and_the_thread_stays_with_her(
    slack, upstream, fake_slack
):
    slack.event(mention("Maya, what do you think of the new tagline?", ts="1700000100.000001"))
    slack.event(mention("and for the landing page?", ts="1700000100.000002", thread_ts="1700000100.000001"))
    assert [_system(r) for r in upstream.requests] == ["You are Maya, the CMO."] * 2
    assert (
        upstream.requests[0].body["messages"][-1]["content"] == "Maya, what do you think of the new tagline?"
    )
    assert SlackThread.objects.get().persona_name == "Maya"
    assert set(SlackMessage.objects.values_list("persona_name", flat=True)) == {"Maya"}


def test_without_a_name_tony_answers(slack, upstream):
    slack.event(mention("what should we build next?"))
    assert _system(upstream.requests[0]) == "You are Tony, the CTO."


@pytest.mark.parametrize(
    "text", ["hey maya, quick one", "@Maya is this on brand?", "MAYA: thoughts?", "Maya?"]
)
def test_the_ways_of_addressing_a_persona(slack, upstream, text):
    slack.event(mention(text))
    assert _system(upstream.requests[0]) == "You are Maya, the CMO."


@pytest.mark.parametrize("text", ["Mayan calendars, anyone?", "ask maya later", "Maya's idea is good"])
def test_a_name_that_is_not_an_address_does_not_route(slack, upstream, text):
    slack.event(mention(text))
    assert _system(upstream.requests[0]) == "You are Tony, the CTO."


def test_a_configured_channel_has_its_persona_and_a_name_still_wins(slack, settings, upstream):
    settings.SLACK_CHANNEL_PERSONAS = {"C0MARKET1": "maya"}
    slack.event(mention("how is the campaign?", channel="C0MARKET1"))
    slack.event(mention("Tony, can the site take the traffic?", channel="C0MARKET1"))
    slack.event(mention("and you?", channel="C0GENERAL"))
    assert [_system(r) for r in upstream.requests] == [
        "You are Maya, the CMO.",
        "You are Tony, the CTO.",
        "You are Tony, the CTO.",
    ]


def test_a_channel_mapped_to_no_persona_falls_back_to_tony_with_a_warning(slack, settings, upstream, caplog):
    settings.SLACK_CHANNEL_PERSONAS = {"C0MARKET1": "nobody"}
    slack.event(mention("hello", channel="C0MARKET1"))
    assert _system(upstream.requests[0]) == "You are Tony, the CTO."
    assert "which is no enabled persona" in caplog.text


def test_a_thread_keeps_its_context_and_another_thread_starts_fresh(slack, upstream, fake_slack):
    upstream.queue({"tokens": ["Postgres."]}, {"tokens": ["Because it scales."]}, {"tokens": ["Hello."]})
    slack.event(mention("which database?", ts="1700000200.000001"))
    slack.event(mention("why?", ts="1700000200.000002", thread_ts="1700000200.000001"))
    slack.event(mention("hi", ts="1700000300.000001"))
    second, other = upstream.requests[1], upstream.requests[2]
    assert [m for m in second.body["messages"] if m["role"] != "system"] == [
        {"role": "user", "content": "which database?"},
        {"role": "assistant", "content": "Postgres."},
        {"role": "user", "content": "why?"},
    ]
    assert [m for m in other.body["messages"] if m["role"] != "system"] == [{"role": "user", "content": "hi"}]
    assert [p["thread_ts"] for p in fake_slack.posts()] == [
        "1700000200.000001",
        "1700000200.000001",
        "1700000300.000001",
    ]
    callers = set(CallerSession.objects.values_list("caller_id", flat=True))
    assert callers == {"slack-T0001-C0GENERAL-1700000200.000001", "slack-T0001-C0GENERAL-1700000300.000001"}


def test_two_quick_messages_in_one_thread_are_both_answered_in_order(slack, upstream, fake_slack):
    upstream.queue({"tokens": ["First answer."], "first_token_delay": 1.5}, {"tokens": ["Second answer."]})
    parent = "1700000400.000001"
    done = {}

    def send(name, event):
        done[name] = slack.event(event)
        done[f"{name}_at"] = time.monotonic()

    first = threading.Thread(target=send, args=("first", mention("draft the plan", ts=parent)))
    first.start()
    time.sleep(0.5)  # the first answer is being written
    second_sent = time.monotonic()
    send("second", mention("and the budget too", ts="1700000400.000002", thread_ts=parent))
    first.join(30)
    assert done["first"].status_code == done["second"].status_code == 200
    assert done["second_at"] - second_sent < 1.0  # acknowledged at once: the thread's worker takes it
    assert [(p["thread_ts"], p["text"]) for p in fake_slack.posts()] == [
        (parent, "First answer."),
        (parent, "Second answer."),
    ]
    later = [m for m in upstream.requests[1].body["messages"] if m["role"] != "system"]
    assert later == [
        {"role": "user", "content": "draft the plan"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "and the budget too"},
    ]
    assert set(SlackMessage.objects.values_list("status", flat=True)) == {"answered"}


def test_two_threads_are_answered_side_by_side_and_never_mix(slack, upstream, fake_slack):
    upstream.reset(tokens=["On it."], first_token_delay=2.0)
    events = [mention(f"topic {name}", ts=f"1700000500.00000{i}") for i, name in enumerate("AB", 1)]
    started = time.monotonic()
    threads = [threading.Thread(target=slack.event, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert time.monotonic() - started < 3.8  # one after the other would take 4 s and more
    posts = sorted((p["thread_ts"], p["text"]) for p in fake_slack.posts())
    assert posts == [("1700000500.000001", "On it."), ("1700000500.000002", "On it.")]
    for record in upstream.requests:
        asked = [m["content"] for m in record.body["messages"] if m["role"] == "user"]
        assert asked in (["topic A"], ["topic B"])
    assert CallerSession.objects.count() == 2
    assert len(set(CallerSession.objects.values_list("process_id", flat=True))) == 2


def test_a_retry_of_an_answered_event_gets_no_second_reply(slack, upstream, fake_slack):
    payload = envelope(mention("status of the release?"))
    assert slack.post(payload).status_code == 200
    retry = slack.post(payload, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200
    assert len(fake_slack.posts()) == 1 and len(upstream.requests) == 1
    assert SlackMessage.objects.count() == 1


def test_one_mention_delivered_as_two_events_is_answered_once(slack, upstream, fake_slack):
    event = mention("hello", ts="1700000600.000001")
    slack.post(envelope(event))
    slack.post(envelope({**event, "type": "message", "channel_type": "im"}))  # same channel and ts
    assert len(fake_slack.posts()) == 1


@pytest.fixture(scope="module")
def second_web_process():
    from tron_site.asgi import application

    server = LiveASGIServer(application).start()
    yield server
    server.stop()


def test_copies_of_one_event_at_two_web_processes_at_once_get_one_reply(
    slack, upstream, fake_slack, second_web_process
):
    upstream.reset(tokens=["Once."], first_token_delay=1.0)
    other = SlackSender(second_web_process.url)
    payload = envelope(mention("are you there?"))
    responses = []
    senders = [
        threading.Thread(target=lambda: responses.append(slack.post(payload))),
        threading.Thread(
            target=lambda: responses.append(other.post(payload, headers={"X-Slack-Retry-Num": "1"}))
        ),
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert [r.status_code for r in responses] == [200, 200]
    assert [p["text"] for p in fake_slack.posts()] == ["Once."]
    assert len(upstream.requests) == 1
    assert SlackMessage.objects.get().status == "answered"


def test_slack_gets_its_200_at_once_and_a_django_q2_worker_answers(slack, upstream, fake_slack, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # as in production: the task goes to the broker
    upstream.reset(tokens=["Worth the wait."], first_token_delay=3.2)  # longer than Slack waits
    started = time.monotonic()
    response = slack.event(mention("think it over", ts="1700000700.000001"))
    assert response.status_code == 200
    assert time.monotonic() - started < 1.5
    assert fake_slack.posts() == [] and upstream.requests == []
    assert SlackMessage.objects.get().status == "pending"

    broker = get_broker()
    [(ack_id, payload)] = broker.dequeue()
    task = SignedPackage.loads(payload)
    assert task["func"] == "integrations.slack.tasks.answer_thread"
    assert answer_thread(*task["args"]) == f"answered 1 message(s) of thread {task['args'][0]}"
    broker.acknowledge(ack_id)
    assert [(p["thread_ts"], p["text"]) for p in fake_slack.posts()] == [
        ("1700000700.000001", "Worth the wait.")
    ]


def test_a_retry_of_a_message_still_waiting_hands_it_out_again(slack, upstream, fake_slack, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    payload = envelope(mention("anyone?"))
    slack.post(payload)
    get_broker().purge_queue()  # the first task is lost (a worker crashed with it)
    monkeypatch.setattr(Conf, "SYNC", True)
    slack.post(payload, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert len(fake_slack.posts()) == 1
    assert SlackMessage.objects.get().status == "answered"
