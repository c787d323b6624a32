"""The process page puts the conversation first: its words, turn by turn, then the details and the calls."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import make_llm_call, make_message, make_process, make_session

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 22, 50, 4, tzinfo=UTC)


def page(client, process) -> str:
    response = client.get(reverse("admin:agents_process_change", args=[process.pk]))
    assert response.status_code == 200
    return response.content.decode()


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def at(h, m, s):
    return datetime(2026, 12, 6, h, m, s, tzinfo=UTC)


@pytest.fixture
def call(tony):
    """A phone conversation of two turns: the first answered, the second failed upstream."""
    process = make_process(tony, channel="vapi", started_at=at(22, 40, 0))
    session = make_session("+14155550100", process=process)
    make_message(process, session=session, content="Give me a one-line summary", created_at=at(22, 40, 1))
    make_message(
        process, session=session, role="assistant", content="Ship on Friday.", created_at=at(22, 40, 3)
    )
    make_llm_call(process, ttft_ms=420, duration_ms=900, created_at=at(22, 40, 3))
    make_message(process, session=session, content="And the risks?", created_at=at(22, 45, 10))
    make_llm_call(
        process, finish_reason="error", error="upstream timed out", ttft_ms=None, created_at=at(22, 45, 40)
    )
    return process


@time_machine.travel(NOW, tick=False)
def test_the_conversation_comes_before_the_details(admin_client, call):
    html = page(admin_client, call)
    assert html.index('id="transcript"') < html.index('id="process-details"') < html.index('id="model-calls"')
    words = text(html.split('id="transcript"')[1].split('id="process-details"')[0])
    assert (
        words.index("Give me a one-line summary")
        < words.index("Ship on Friday.")
        < words.index("And the risks?")
    )


@time_machine.travel(NOW, tick=False)
def test_each_line_has_its_time_to_the_second_with_its_zone_and_no_header_line_repeats_it(admin_client, call):
    transcript = page(admin_client, call).split('id="transcript"')[1].split('id="process-details"')[0]
    words = text(transcript)
    assert "2026-12-06 22:40:01 UTC Caller Give me a one-line summary" in words
    assert "22:40:03 UTC Tony Ship on Friday." in words
    assert words.count("Ship on Friday.") == 1


@time_machine.travel(NOW, tick=False)
def test_a_failed_turn_says_so_where_it_happened(admin_client, call):
    words = text(page(admin_client, call).split('id="transcript"')[1].split('id="model-calls"')[0])
    risks = words.index("And the risks?")
    failed = words.index("The model call failed: upstream timed out")
    assert risks < failed
    assert words.index("Ship on Friday.") < risks  # not in the first turn, which answered


@time_machine.travel(NOW, tick=False)
def test_a_stream_the_caller_cut_off_says_cancelled_not_completed(admin_client, tony):
    process = make_process(tony, status="completed", finished_at=at(22, 41, 0))
    make_message(process, content="Tell me a long story", created_at=at(22, 40, 0))
    make_message(process, role="assistant", content="Once upon", created_at=at(22, 40, 2))
    make_llm_call(process, finish_reason="cancelled", usage_source="partial", created_at=at(22, 40, 2))
    words = text(page(admin_client, process).split('id="transcript"')[1].split('id="model-calls"')[0])
    assert "Cancelled: the caller left before the answer ended" in words
    assert words.index("Once upon") < words.index("Cancelled")


@time_machine.travel(NOW, tick=False)
def test_sections_with_nothing_to_say_are_left_out(admin_client, call, tony):
    html = page(admin_client, call)
    for heading in ["Call", "Delegation", "Delegated tasks (children)"]:
        assert f">{heading}</h2>" not in html
    assert ">Model calls</caption>" in html

    quiet = make_process(tony)
    html = page(admin_client, quiet)
    assert "No messages yet." in html and 'id="model-calls"' not in html


@time_machine.travel(NOW, tick=False)
def test_a_call_report_and_delegation_show_when_there_are_some(admin_client, call, maya):
    call.summary, call.ended_reason = "Talked about the launch.", "customer-ended-call"
    call.save()
    make_process(maya, parent=call, spawn_depth=1, task="Draft the post")
    html = page(admin_client, call)
    assert ">Call</h2>" in html and ">Delegation</h2>" in html and "Delegated tasks (children)" in html


@time_machine.travel(NOW, tick=False)
def test_each_model_call_has_an_anchor_the_lists_link_to(admin_client, call):
    html = page(admin_client, call)
    ids = re.findall(r'<tr id="call-(\d+)"', html)
    assert len(ids) == 2
    calls = admin_client.get(reverse("admin:agents_llmcall_changelist")).content.decode()
    assert f"#call-{ids[0]}" in calls


def test_the_page_reads_in_a_fixed_number_of_queries(admin_client, tony):
    process = make_process(tony)
    make_session("+14155550100", process=process)

    def grow(n):
        for i in range(n):
            make_message(process, content=f"question {n}-{i}")
            make_message(process, role="assistant", content=f"answer {n}-{i}")
            make_llm_call(process)

    grow(2)
    url = reverse("admin:agents_process_change", args=[process.pk])
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    grow(30)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)


def test_an_answer_links_to_the_model_call_that_wrote_it_and_the_call_to_the_prompt_it_was_sent(
    admin_client, tony
):
    from agents.models import Turn

    process = make_process(tony)
    session = make_session("+14155550100", process=process)
    turn = Turn.objects.create(
        caller_id=session.caller_id, session=session, process=process, state="answered", lease_until=NOW
    )
    prompt = [{"role": "system", "content": "You are Tony."}, {"role": "user", "content": "Status?"}]
    call = make_llm_call(
        process, turn=turn, request={"messages": prompt, "tools": ["list_team"], "max_tokens": 50}
    )
    make_message(process, session=session, turn=turn, content="Status?")
    make_message(process, session=session, turn=turn, role="assistant", content="All green.", llm_call=call)

    html = page(admin_client, process)

    assert f'href="#call-{call.pk}">model call</a>' in html
    prompt_url = reverse("admin:agents_llmcall_change", args=[call.pk]) + "#prompt"
    assert f'href="{prompt_url}">prompt</a>' in html
    detail = admin_client.get(reverse("admin:agents_llmcall_change", args=[call.pk])).content.decode()
    assert "You are Tony." in detail and "tools offered: list_team" in detail and "max_tokens: 50" in detail
