"""Operator commands in Slack, for SLACK_ADMIN_USERS only, from the control API's own queries."""

from decimal import Decimal

import httpx2
import pytest

from agents.models import CallerSession, Channel
from tests.factories import make_llm_call, make_process, make_session

from .conftest import ADMIN, direct, mention

REFUSAL = "Sorry, `{}` is an operator command, and only Tron's operators can run it. Anything else, just ask!"


def _reply(slack, fake_slack, text, **fields):
    slack.event(direct(text, **fields))
    return fake_slack.posts()[-1]["text"]


@pytest.mark.parametrize("command", ["status", "sessions", "clear sessions", "costs today"])
def test_anyone_not_listed_gets_a_polite_refusal(slack, team, upstream, fake_slack, command):
    make_session("+14155550100", process=make_process(team["tony"]), channel=Channel.SLACK)
    assert _reply(slack, fake_slack, command) == REFUSAL.format(command)
    assert upstream.requests == []
    assert CallerSession.objects.open().count() == 1  # `clear sessions` did nothing


def test_status_says_what_api_status_says(slack, team, live_tron, fake_slack):
    make_session("slack-x", process=make_process(team["tony"]))
    api = httpx2.get(f"{live_tron.url}/api/status").json()
    text = _reply(slack, fake_slack, "Status", user=ADMIN)
    assert text.splitlines()[1:] == [
        f"• Active processes: {api['process_count']}",
        f"• Open sessions: {api['session_count']}",
        "• Personas: Tony, Maya",
        "• With a life loop: none",
    ]
    assert text.startswith("*Tron*: ok, up ")


def test_a_command_works_in_a_mention_too(slack, fake_slack):
    slack.event(mention("status?", user=ADMIN))
    assert fake_slack.posts()[-1]["text"].startswith("*Tron*: ok")


def test_sessions_lists_the_open_sessions_as_the_api_does(slack, team, live_tron, fake_slack):
    tony = team["tony"]
    make_session("+14155550100", process=make_process(tony), channel=Channel.VAPI)
    ended = make_session("gone", process=make_process(tony))
    CallerSession.objects.filter(pk=ended.pk).update(ended_at=ended.created_at)
    [api] = httpx2.get(f"{live_tron.url}/api/sessions").json()
    text = _reply(slack, fake_slack, "sessions", user=ADMIN)
    assert text.splitlines() == [
        "*Open sessions: 1*",
        f"• `+14155550100` → Tony, process `{api['process_id']}` (running, vapi), last seen {api['last_seen_at']}",
    ]


def test_clear_sessions_ends_the_slack_sessions_only(slack, team, fake_slack):
    tony = team["tony"]
    make_session("slack-T-C-1", process=make_process(tony), channel=Channel.SLACK)
    make_session("slack-T-C-2", process=make_process(tony), channel=Channel.SLACK)
    make_session("+14155550100", process=make_process(tony), channel=Channel.VAPI)
    text = _reply(slack, fake_slack, "clear sessions", user=ADMIN)
    assert text == "Ended 2 Slack session(s): the next message in each thread starts a fresh conversation."
    assert list(CallerSession.objects.open().values_list("caller_id", flat=True)) == ["+14155550100"]
    assert set(
        CallerSession.objects.filter(channel=Channel.SLACK).values_list("process__status", flat=True)
    ) == {"completed"}


def test_after_clear_sessions_a_thread_starts_afresh(slack, upstream, fake_slack):
    slack.event(mention("remember the number 7", ts="1700002000.000001"))
    _reply(slack, fake_slack, "clear sessions", user=ADMIN)
    slack.event(mention("which number?", ts="1700002000.000002", thread_ts="1700002000.000001"))
    last = [m for m in upstream.requests[-1].body["messages"] if m["role"] != "system"]
    assert last == [{"role": "user", "content": "which number?"}]


def test_costs_today_totals_the_spend_per_persona(slack, team, fake_slack):
    tony, maya = team["tony"], team["maya"]
    make_llm_call(make_process(tony), cost_usd=Decimal("0.002"), input_tokens=1000, output_tokens=200)
    make_llm_call(make_process(maya), cost_usd=Decimal("0.0005"), input_tokens=300, output_tokens=50)
    make_llm_call(make_process(maya), model="fake-model", cost_usd=0, input_tokens=10, output_tokens=5)
    text = _reply(slack, fake_slack, "costs today", user=ADMIN)
    lines = text.splitlines()
    assert lines[0].endswith(": $0.0025, 3 LLM calls, 1,565 tokens")
    assert lines[1:] == [
        "• Tony: $0.002 (1 calls, 1,200 tokens)",
        "• Maya: $0.0005 (2 calls, 365 tokens)",
        "_no price set for fake-model: add it under Model prices_",
    ]


def test_a_question_that_merely_contains_a_command_goes_to_the_persona(slack, upstream, fake_slack):
    slack.event(direct("what is the status of the launch?", user=ADMIN))
    assert len(upstream.requests) == 1
