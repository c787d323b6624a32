"""Retention: callers' words older than the settings' bounds go (in batches), newer ones and every cost
and counter stay; the hourly tasks exist after setup_schedules."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from agents import retention
from agents.models import CallerSession, Channel, LLMCall, Message, Process, Replay, ReplayTurn, Turn
from agents.tasks import keep_within_retention
from integrations.models import SlackMessage, SlackThread
from integrations.slack.retention import prune_old_messages
from tests.factories import ago, make_llm_call, make_message, make_persona, make_process, make_session

pytestmark = pytest.mark.django_db


def conversation(persona, caller, *, days_ago: int, words: str):
    """A finished conversation `days_ago` days old: a session, a turn, two lines, one priced call."""
    when = ago(days=days_ago)
    process = make_process(
        persona,
        status=Process.Status.COMPLETED,
        started_at=when,
        finished_at=when,
        principal_caller_id=caller,
        allowance=caller,
        task=f"chat with {caller}",
        summary=f"The caller said {words}",
        input_tokens=100,
        output_tokens=20,
        llm_calls=1,
        cost_usd=Decimal("0.25"),
    )
    session = make_session(caller, process, created_at=when, last_seen_at=when, ended_at=when)
    turn = Turn.objects.create(
        caller_id=caller,
        session=session,
        process=process,
        state=Turn.State.ANSWERED,
        arrived_at=when,
        finished_at=when,
        lease_until=when,
        principal=f"public ({caller})",
    )
    call = make_llm_call(
        process,
        turn=turn,
        created_at=when,
        cost_usd=Decimal("0.25"),
        request={"messages": [{"role": "user", "content": words}]},
        error=f"upstream echoed {words}",
    )
    make_message(process, "user", words, session=session, turn=turn, created_at=when)
    make_message(process, "assistant", f"You said {words}", turn=turn, llm_call=call, created_at=when)
    return process


def counters():
    return (
        list(
            Process.objects.order_by("pk").values_list(
                "input_tokens", "output_tokens", "llm_calls", "cost_usd"
            )
        ),
        list(
            LLMCall.objects.order_by("pk").values_list("model", "input_tokens", "output_tokens", "cost_usd")
        ),
    )


@pytest.fixture
def two_conversations():
    persona = make_persona()
    return (
        conversation(persona, "+14155550001", days_ago=40, words="old secret"),
        conversation(persona, "+14155550002", days_ago=5, words="new secret"),
    )


def test_kept_forever_by_default(two_conversations):
    keep_within_retention()
    assert Message.objects.count() == 4 and CallerSession.objects.count() == 2 and Turn.objects.count() == 2
    assert LLMCall.objects.filter(request__isnull=False).count() == 2


def test_transcripts_past_the_bound_go_newer_ones_and_the_counters_stay(
    settings, two_conversations, monkeypatch
):
    old, new = two_conversations
    settings.TRON_KEEP_TRANSCRIPTS_DAYS = 30
    monkeypatch.setattr(retention, "BATCH", 1)  # batches of one: the loop, not one statement, does the work
    before = counters()

    assert "2 messages" in keep_within_retention()

    assert list(Message.objects.values_list("content", flat=True)) == ["new secret", "You said new secret"]
    assert list(CallerSession.objects.values_list("caller_id", flat=True)) == ["+14155550002"]
    assert list(Turn.objects.values_list("caller_id", flat=True)) == ["+14155550002"]
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.principal_caller_id, old.allowance, old.task, old.summary) == ("", "", "", "")
    assert (new.principal_caller_id, new.summary) == ("+14155550002", "The caller said new secret")
    assert counters() == before
    # The LLM calls follow their own bound (kept forever here).
    assert LLMCall.objects.filter(request__isnull=False).count() == 2


def test_llm_calls_past_the_bound_lose_their_text_and_keep_their_usage(settings, two_conversations):
    settings.TRON_KEEP_LLM_CALLS_DAYS = 30
    before = counters()

    assert keep_within_retention() == "1 LLM calls redacted"

    old_call, new_call = LLMCall.objects.order_by("created_at")
    assert (old_call.request, old_call.error) == (None, "")
    assert new_call.request == {"messages": [{"role": "user", "content": "new secret"}]}
    assert counters() == before
    assert Message.objects.count() == 4  # transcripts follow their own bound
    assert keep_within_retention() == "0 LLM calls redacted"  # nothing is written twice


def test_replayed_words_of_old_replays_go(settings, two_conversations):
    old, new = two_conversations
    settings.TRON_KEEP_TRANSCRIPTS_DAYS = 30
    replays = []
    for process, days in ((old, 40), (new, 5)):
        replay = Replay.objects.create(persona=process.persona, system_prompt="You are new.")
        Replay.objects.filter(pk=replay.pk).update(created_at=ago(days=days))
        ReplayTurn.objects.create(
            replay=replay, original=process, position=1, said="a secret", answer="b", cost_usd=Decimal("0.1")
        )
        replays.append(replay)
    keep_within_retention()
    assert list(
        ReplayTurn.objects.order_by("replay__created_at").values_list("said", "answer", "cost_usd")
    ) == [
        ("", "", Decimal("0.1")),
        ("a secret", "b", Decimal("0.1")),
    ]


def test_live_turns_and_life_loop_tasks_are_never_pruned(settings):
    settings.TRON_KEEP_TRANSCRIPTS_DAYS = 1
    persona = make_persona()
    life = make_process(persona, channel=Channel.LIFE, task="news", finished_at=ago(days=3))
    session = make_session("+14155550003", make_process(persona))
    live = Turn.objects.create(
        caller_id=session.caller_id, session=session, state=Turn.State.RUNNING, lease_until=ago(days=-1)
    )
    keep_within_retention()
    life.refresh_from_db()
    assert life.task == "news" and Turn.objects.filter(pk=live.pk).exists()


def test_old_answered_slack_messages_go_and_waiting_ones_stay(settings):
    thread = SlackThread.objects.create(channel="C1", thread_ts="1.1")
    rows = {
        (days, status): SlackMessage.objects.create(
            event_id=f"Ev{days}{status}",
            thread=thread,
            kind=SlackMessage.Kind.MENTION,
            user="U1",
            ts=f"{days}.{len(status)}",
            text="hello",
            status=status,
            received_at=ago(days=days),
        )
        for days in (40, 5)
        for status in (SlackMessage.Status.ANSWERED, SlackMessage.Status.PENDING)
    }
    assert prune_old_messages() == "nothing to prune (Slack messages are kept forever)"
    settings.TRON_KEEP_SLACK_DAYS = 30
    assert prune_old_messages() == "deleted 1 Slack message(s)"
    assert set(SlackMessage.objects.values_list("pk", flat=True)) == {
        row.pk for key, row in rows.items() if key != (40, SlackMessage.Status.ANSWERED)
    }
    assert SlackThread.objects.filter(pk=thread.pk).exists()


def test_setup_schedules_makes_the_hourly_retention_tasks_once():
    call_command("setup_schedules", stdout=StringIO())
    call_command("setup_schedules", stdout=StringIO())
    tasks = Schedule.objects.filter(name__in=["agents: retention", "integrations: Slack retention"])
    assert sorted(tasks.values_list("func", "schedule_type", "repeats")) == [
        ("agents.tasks.keep_within_retention", Schedule.HOURLY, -1),
        ("integrations.slack.retention.prune_old_messages", Schedule.HOURLY, -1),
    ]
