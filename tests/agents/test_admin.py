"""The control panel for personas, processes, sessions, transcripts and LLM calls."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents.models import CallerSession, LLMCall, Message, Persona, Process
from tests.factories import (
    ago,
    make_llm_call,
    make_message,
    make_persona,
    make_process,
    make_session,
    make_turn,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
COST_SUMMARY = reverse("admin:agents_llmcall_cost_summary")


def changelist(model_name):
    return reverse(f"admin:agents_{model_name}_changelist")


def change_page(obj):
    return reverse(f"admin:agents_{obj._meta.model_name}_change", args=[obj.pk])


def listed(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def changelist_rows(response) -> list[str]:
    """The text of each row of a changelist, its cells' words joined by single spaces."""
    assert response.status_code == 200
    body = response.content.decode().split('id="result_list"')[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


def queries_for(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def make_operator(*perms, superuser=False):
    user = User.objects.create_user("operator", password="x", is_staff=True, is_superuser=superuser)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="agents", codename=codename))
    return user


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """admin_client creates a superuser per test; PBKDF2 at full strength costs most of a second each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def system_rows(tony):
    process = make_process(tony, task="Draft the roadmap")
    session = make_session("+14155550100", process=process)
    message = make_message(process, session=session)
    call = make_llm_call(process)
    return {"process": process, "callersession": session, "message": message, "llmcall": call}


# --- Every page answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["process", "callersession", "message", "llmcall"])
def test_system_written_changelists_list_their_rows(admin_client, system_rows, model_name):
    assert listed(admin_client.get(changelist(model_name))) == [system_rows[model_name]]


@pytest.mark.parametrize("model_name", ["process", "callersession", "message", "llmcall"])
def test_system_written_change_pages_render(admin_client, system_rows, model_name):
    assert admin_client.get(change_page(system_rows[model_name])).status_code == 200


def test_admin_index_is_titled_and_links_to_the_cost_summary(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert b"Tron control panel" in response.content
    assert COST_SUMMARY.encode() in response.content


# --- System-written rows are read-only ------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["process", "callersession", "message", "llmcall"])
def test_system_written_rows_cannot_be_added(admin_client, model_name):
    assert admin_client.get(reverse(f"admin:agents_{model_name}_add")).status_code == 403


def test_posting_to_a_process_change_page_does_not_change_it(admin_client, system_rows):
    process = system_rows["process"]
    response = admin_client.post(change_page(process), {"status": "completed", "task": "Hijacked"})
    assert response.status_code == 403
    process.refresh_from_db()
    assert (process.status, process.task) == ("running", "Draft the roadmap")


def test_posting_to_a_session_change_page_does_not_change_it(admin_client, system_rows):
    session = system_rows["callersession"]
    response = admin_client.post(change_page(session), {"caller_id": "someone-else"})
    assert response.status_code == 403
    session.refresh_from_db()
    assert session.caller_id == "+14155550100"


def test_posting_to_a_message_change_page_does_not_change_it(admin_client, system_rows):
    message = system_rows["message"]
    response = admin_client.post(change_page(message), {"role": "assistant", "content": "Forged"})
    assert response.status_code == 403
    message.refresh_from_db()
    assert (message.role, message.content) == ("user", "Hello")


def test_posting_to_an_llm_call_change_page_does_not_change_it(admin_client, system_rows):
    call = system_rows["llmcall"]
    response = admin_client.post(change_page(call), {"input_tokens": "1", "cost_usd": "0"})
    assert response.status_code == 403
    call.refresh_from_db()
    assert call.input_tokens == 100


def test_superusers_may_purge_a_process(admin_client, system_rows):
    process = system_rows["process"]
    response = admin_client.post(reverse("admin:agents_process_delete", args=[process.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Process.objects.filter(pk=process.pk).exists()


def test_staff_without_superuser_cannot_delete_a_process(client, system_rows):
    client.force_login(make_operator("view_process", "change_process", "delete_process"))
    process = system_rows["process"]
    response = client.post(reverse("admin:agents_process_delete", args=[process.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Process.objects.filter(pk=process.pk).exists()


# --- Processes changelist -------------------------------------------------------------------------


def test_processes_filter_by_status(admin_client, tony):
    failed = make_process(tony, status="failed")
    make_process(tony, status="running")
    assert listed(admin_client.get(changelist("process") + "?status__exact=failed")) == [failed]


def test_processes_filter_by_persona(admin_client, tony, maya):
    mayas = make_process(maya)
    make_process(tony)
    assert listed(admin_client.get(changelist("process") + f"?persona__id__exact={maya.pk}")) == [mayas]


def test_processes_filter_by_channel(admin_client, tony):
    call = make_process(tony, channel="vapi")
    make_process(tony, channel="http")
    assert listed(admin_client.get(changelist("process") + "?channel__exact=vapi")) == [call]


def test_processes_search_by_public_id(admin_client, tony):
    wanted = make_process(tony)
    make_process(tony)
    assert listed(admin_client.get(changelist("process") + f"?q={wanted.public_id}")) == [wanted]


def test_processes_search_by_caller_id_lists_each_process_once(admin_client, tony):
    wanted = make_process(tony)
    make_session("+14155550123", process=wanted, ended_at=ago(hours=1))
    make_session("+14155550123", process=wanted)
    make_session("+14155550999", process=make_process(tony))
    assert listed(admin_client.get(changelist("process") + "?q=%2B14155550123")) == [wanted]


@time_machine.travel(NOW, tick=False)
def test_processes_changelist_shows_tokens_cost_and_start_compactly(admin_client, tony):
    make_process(
        tony,
        input_tokens=12_345,
        output_tokens=34,
        cost_usd=Decimal("0.0125"),
        started_at=datetime(2024, 5, 10, 11, 56, 55, tzinfo=UTC),
        finished_at=NOW,
    )
    content = admin_client.get(changelist("process")).content.decode()
    assert '<span class="nowrap" title="12,345 in / 34 out">12.3k / 34</span>' in content
    assert "$0.0125" in content
    assert "2024-05-10 11:56:55 UTC" in content


@time_machine.travel(NOW, tick=False)
def test_processes_changelist_tells_a_turn_running_from_a_caller_awaited(admin_client, tony, maya):
    talking = make_process(tony)
    make_turn(make_session("+14155550001", process=talking), lease_until=NOW + timedelta(minutes=10))
    waiting = make_process(maya, started_at=NOW - timedelta(minutes=20))
    make_turn(make_session("+14155550002", process=waiting), lease_until=NOW - timedelta(seconds=1))
    make_message(
        waiting, role="assistant", content="Anything else?", created_at=NOW - timedelta(minutes=2, seconds=5)
    )
    ended = make_process(maya, status="completed", finished_at=NOW)
    rows = {row.split()[0]: row for row in changelist_rows(admin_client.get(changelist("process")))}
    assert "In a turn now" in rows[talking.public_id]
    assert "Waiting for the caller since 11:57:55 UTC (2m 05s)" in rows[waiting.public_id]
    assert "Completed" in rows[ended.public_id]
    assert listed(admin_client.get(changelist("process") + "?live=in_turn")) == [talking]
    assert listed(admin_client.get(changelist("process") + "?live=waiting")) == [waiting]
    in_turn = listed(admin_client.get(changelist("callersession") + "?state=in_turn"))
    assert [session.process for session in in_turn] == [talking]


@time_machine.travel(NOW, tick=False)
def test_a_zero_cost_says_whether_the_model_is_free_or_unpriced(admin_client, tony):
    local = make_process(tony)
    make_llm_call(local, model="smollm2-135m-instruct", provider="local")
    unknown = make_process(tony)
    make_llm_call(unknown, model="fake-model")
    rows = {row.split()[0]: row for row in changelist_rows(admin_client.get(changelist("process")))}
    assert rows[local.public_id].endswith("free 2024-05-10 12:00:00 UTC")
    assert rows[unknown.public_id].endswith("no price set 2024-05-10 12:00:00 UTC")
    calls = " ".join(changelist_rows(admin_client.get(changelist("llmcall"))))
    assert "free" in calls and "no price set" in calls and "$0" not in calls


def test_processes_search_finds_words_of_the_conversation(admin_client, tony):
    wanted = make_process(tony)
    make_message(wanted, content="Can we ship the Kubernetes upgrade on Friday?")
    make_message(wanted, role="assistant", content="Friday works.")
    make_message(make_process(tony), content="Lunch plans?")
    assert listed(admin_client.get(changelist("process") + "?q=kubernetes+upgrade")) == [wanted]


def test_processes_changelist_links_to_the_cost_summary(admin_client):
    assert COST_SUMMARY.encode() in admin_client.get(changelist("process")).content


def test_processes_changelist_query_count_does_not_grow_with_rows(admin_client, tony, maya):
    url = changelist("process")
    for i in range(3):
        make_process(tony if i % 2 else maya, input_tokens=i)
    admin_client.get(url)  # warm caches (content types, sessions) so both counts compare like for like
    few = queries_for(admin_client, url)
    for i in range(27):
        make_process(tony if i % 2 else maya, input_tokens=i)
    assert queries_for(admin_client, url) == few


# --- Process change page --------------------------------------------------------------------------


def test_process_page_shows_the_transcript_in_order(admin_client, tony):
    process = make_process(tony)
    for text in ["Zeta opens", "Alpha answers", "Mid closes"]:
        make_message(process, content=text)
    content = admin_client.get(change_page(process)).content.decode()
    positions = [content.index(text) for text in ["Zeta opens", "Alpha answers", "Mid closes"]]
    assert positions == sorted(positions)


def test_process_page_shows_its_llm_calls(admin_client, tony):
    process = make_process(tony)
    make_llm_call(process, model="gpt-4.1-nano", error="upstream timeout")
    content = admin_client.get(change_page(process)).content.decode()
    assert "gpt-4.1-nano" in content
    assert "upstream timeout" in content


def test_process_page_links_to_parent_and_sessions(admin_client, tony):
    parent = make_process(tony)
    child = make_process(tony, parent=parent)
    session = make_session("+14155550100", process=child)
    content = admin_client.get(change_page(child)).content.decode()
    assert change_page(parent) in content
    assert change_page(session) in content


def test_process_page_links_to_its_children(admin_client, tony):
    parent = make_process(tony)
    child = make_process(tony, parent=parent)
    make_process(tony)
    children_url = changelist("process") + f"?parent__id__exact={parent.pk}"
    assert children_url in admin_client.get(change_page(parent)).content.decode()
    assert listed(admin_client.get(children_url)) == [child]


def test_process_page_shows_its_delegated_tasks_and_their_results(admin_client, tony, maya):
    parent = make_process(tony)
    child = make_process(
        maya, parent=parent, spawn_depth=1, task="Draft the launch post", status=Process.Status.COMPLETED
    )
    Process.objects.filter(pk=child.pk).update(result="Here is the draft.", delivered_at=ago(minutes=1))

    content = admin_client.get(change_page(parent)).content.decode()
    assert "Delegated tasks (children)" in content
    assert change_page(child) in content
    assert "Draft the launch post" in content and "Here is the draft." in content

    child_page = admin_client.get(change_page(child)).content.decode()
    assert "Delegation" in child_page and change_page(parent) in child_page
    assert "Here is the draft." in child_page


# --- Mark as failed -------------------------------------------------------------------------------


def test_mark_as_failed_stops_stuck_processes(admin_client, tony):
    running = make_process(tony, status="running")
    pending = make_process(tony, status="pending")
    form = {"action": "mark_failed", "_selected_action": [running.pk, pending.pk]}
    response = admin_client.post(changelist("process"), form, follow=True)
    assert "Marked 2 process(es) as failed." in [str(m) for m in response.context["messages"]]
    for process in (running, pending):
        process.refresh_from_db()
        assert (process.status, process.error) == ("failed", "Stopped by operator")
        assert process.finished_at is not None


def test_mark_as_failed_leaves_ended_processes_alone(admin_client, tony):
    done = make_process(tony, status="completed", finished_at=ago(hours=1))
    finished_at = done.finished_at
    admin_client.post(changelist("process"), {"action": "mark_failed", "_selected_action": [done.pk]})
    done.refresh_from_db()
    assert (done.status, done.error, done.finished_at) == ("completed", "", finished_at)


def test_viewers_without_change_permission_cannot_mark_as_failed(client, tony):
    client.force_login(make_operator("view_process"))
    running = make_process(tony, status="running")
    client.post(changelist("process"), {"action": "mark_failed", "_selected_action": [running.pk]})
    running.refresh_from_db()
    assert running.status == "running"


# --- Sessions -------------------------------------------------------------------------------------


def test_sessions_filter_open_and_ended(admin_client, tony):
    open_one = make_session("+14155550001", process=make_process(tony))
    ended = make_session("+14155550002", process=make_process(tony), ended_at=ago(minutes=5))
    assert listed(admin_client.get(changelist("callersession") + "?state=open")) == [open_one]
    assert listed(admin_client.get(changelist("callersession") + "?state=ended")) == [ended]


def test_sessions_search_by_caller_id_and_process_id(admin_client, tony):
    wanted = make_session("+14155550001", process=make_process(tony))
    make_session("+14155550002", process=make_process(tony))
    url = changelist("callersession")
    assert listed(admin_client.get(url + "?q=550001")) == [wanted]
    assert listed(admin_client.get(url + f"?q={wanted.process.public_id}")) == [wanted]


def test_a_long_caller_id_is_cut_in_the_list_and_whole_on_its_page(admin_client, tony):
    caller_id = "req-" + "x" * 251
    session = make_session(caller_id, process=make_process(tony))
    listing = admin_client.get(changelist("callersession")).content.decode()
    cell = listing.split('class="field-caller">')[1].split("</th>")[0]
    assert cell.endswith(f">{caller_id[:31]}…</a>")
    assert caller_id in admin_client.get(change_page(session)).content.decode()


def test_sessions_link_to_the_process_transcript(admin_client, tony):
    session = make_session("+14155550001", process=make_process(tony))
    content = admin_client.get(changelist("callersession")).content.decode()
    assert f'{change_page(session.process)}#transcript">Transcript' in content


def test_sessions_changelist_query_count_does_not_grow_with_rows(admin_client, tony):
    url = changelist("callersession")
    for i in range(3):
        make_session(f"caller-{i}", process=make_process(tony))
    admin_client.get(url)
    few = queries_for(admin_client, url)
    for i in range(3, 30):
        make_session(f"caller-{i}", process=make_process(tony))
    assert queries_for(admin_client, url) == few


def test_end_session_ends_it_and_completes_its_process(admin_client, tony):
    session = make_session("+14155550001", process=make_process(tony, status="running"))
    form = {"action": "end_sessions", "_selected_action": [session.pk]}
    response = admin_client.post(changelist("callersession"), form, follow=True)
    assert "Ended 1 session(s)." in [str(m) for m in response.context["messages"]]
    session.refresh_from_db()
    session.process.refresh_from_db()
    assert session.ended_at is not None
    assert session.process.status == "completed"


def test_end_session_leaves_ended_sessions_alone(admin_client, tony):
    ended_at = ago(hours=2)
    session = make_session("+14155550001", process=make_process(tony, status="running"), ended_at=ended_at)
    form = {"action": "end_sessions", "_selected_action": [session.pk]}
    admin_client.post(changelist("callersession"), form)
    session.refresh_from_db()
    session.process.refresh_from_db()
    assert session.ended_at == ended_at
    assert session.process.status == "running"


# --- Messages -------------------------------------------------------------------------------------


def test_messages_filter_by_role(admin_client, tony):
    process = make_process(tony)
    make_message(process, role="user")
    answer = make_message(process, role="assistant", content="Ship it.")
    assert listed(admin_client.get(changelist("message") + "?role__exact=assistant")) == [answer]


def test_messages_search_content_and_process_id(admin_client, tony):
    process = make_process(tony)
    wanted = make_message(process, content="The quarterly roadmap")
    make_message(make_process(tony), content="Lunch?")
    assert listed(admin_client.get(changelist("message") + "?q=roadmap")) == [wanted]
    assert listed(admin_client.get(changelist("message") + f"?q={process.public_id}")) == [wanted]


def test_messages_changelist_shortens_long_content(admin_client, tony):
    long_text = "word " * 100
    make_message(make_process(tony), content=long_text)
    content = admin_client.get(changelist("message")).content.decode()
    assert long_text[:79] + "…" in content
    assert long_text.strip() not in content


def test_messages_changelist_query_count_does_not_grow_with_rows(admin_client, tony):
    url = changelist("message")
    for _ in range(3):
        make_message(make_process(tony))
    admin_client.get(url)
    few = queries_for(admin_client, url)
    for _ in range(27):
        make_message(make_process(tony))
    assert queries_for(admin_client, url) == few


# --- LLM calls ------------------------------------------------------------------------------------


def test_llm_calls_filter_by_provider(admin_client, tony):
    process = make_process(tony)
    local = make_llm_call(process, provider="local")
    make_llm_call(process, provider="openai")
    assert listed(admin_client.get(changelist("llmcall") + "?provider=local")) == [local]


def test_llm_calls_show_persona_and_a_cross_for_a_failed_call(admin_client, maya):
    failed = make_llm_call(make_process(maya), error="rate limited")
    content = admin_client.get(changelist("llmcall")).content.decode()
    assert "Maya" in content
    row = content.split(f'href="{change_page(failed)}')[1].split("</tr>")[0]
    assert 'class="column-succeeded"' not in row  # the cell, not the header
    assert "icon-no.svg" in row and "icon-yes.svg" not in row


def test_llm_calls_show_a_tick_for_a_call_that_answered(admin_client, maya):
    answered = make_llm_call(make_process(maya))
    content = admin_client.get(changelist("llmcall")).content.decode()
    row = content.split(f'href="{change_page(answered)}')[1].split("</tr>")[0]
    assert "icon-yes.svg" in row and "icon-no.svg" not in row


def test_llm_calls_filter_by_result(admin_client, maya):
    process = make_process(maya)
    failed = make_llm_call(process, error="upstream timed out")
    answered = make_llm_call(process)
    assert listed(admin_client.get(changelist("llmcall") + "?result=failed")) == [failed]
    assert listed(admin_client.get(changelist("llmcall") + "?result=ok")) == [answered]


def test_llm_calls_changelist_links_to_the_cost_summary(admin_client):
    assert COST_SUMMARY.encode() in admin_client.get(changelist("llmcall")).content


def test_llm_calls_changelist_query_count_does_not_grow_with_rows(admin_client, tony, maya):
    url = changelist("llmcall")
    for i in range(3):
        make_llm_call(make_process(tony if i % 2 else maya))
    admin_client.get(url)
    few = queries_for(admin_client, url)
    for i in range(27):
        make_llm_call(make_process(tony if i % 2 else maya))
    assert queries_for(admin_client, url) == few


# --- Cost summary ---------------------------------------------------------------------------------


@pytest.fixture
def known_calls(tony, maya):
    """Tony: 100+20 tokens, $0.01 on May 9 and 200+40, $0.02 on May 10; Maya: 1000+100, $0.50 on May 10.

    Plus one older call (April 1) that a 7-day summary must leave out.
    """
    tonys, mayas = make_process(tony), make_process(maya)
    for process, tokens_in, tokens_out, cost, created_at in [
        (tonys, 100, 20, "0.01", datetime(2024, 5, 9, 23, 59, tzinfo=UTC)),
        (tonys, 200, 40, "0.02", datetime(2024, 5, 10, 0, 1, tzinfo=UTC)),
        (mayas, 1000, 100, "0.5", datetime(2024, 5, 10, 8, 0, tzinfo=UTC)),
        (mayas, 5000, 500, "9", datetime(2024, 4, 1, 8, 0, tzinfo=UTC)),
    ]:
        make_llm_call(
            process,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=Decimal(cost),
            created_at=created_at,
        )


def totals(row):
    return (row["calls"], row["input_tokens"], row["output_tokens"], row["cost_usd"])


@time_machine.travel(NOW, tick=False)
def test_cost_summary_totals_per_persona(admin_client, known_calls):
    response = admin_client.get(COST_SUMMARY)
    assert response.status_code == 200
    rows = {row["label"]: totals(row) for row in response.context["per_persona"]}
    assert rows == {"Maya": (1, 1000, 100, Decimal("0.5")), "Tony": (2, 300, 60, Decimal("0.03"))}


@time_machine.travel(NOW, tick=False)
def test_cost_summary_totals_per_model(admin_client, known_calls, tony):
    make_llm_call(
        make_process(tony), model="smollm2-135m-instruct", input_tokens=7, output_tokens=3, created_at=NOW
    )
    response = admin_client.get(COST_SUMMARY)
    rows = {row["label"]: totals(row) for row in response.context["per_model"]}
    assert rows == {"gpt-4o-mini": (3, 1300, 160, Decimal("0.53")), "smollm2-135m-instruct": (1, 7, 3, 0)}
    per_model = response.content.decode().split('id="per-model"')[1].split("</table>")[0]
    assert "smollm2-135m-instruct</a></th>" in per_model
    assert "free" in per_model.split("smollm2-135m-instruct</a>")[1].split("</tr>")[0]


@time_machine.travel(NOW, tick=False)
def test_cost_summary_totals_per_utc_day(admin_client, known_calls):
    response = admin_client.get(COST_SUMMARY)
    rows = {row["label"]: totals(row) for row in response.context["per_day"]}
    assert rows == {
        "2024-05-10": (2, 1200, 140, Decimal("0.52")),
        "2024-05-09": (1, 100, 20, Decimal("0.01")),
    }


@time_machine.travel(NOW, tick=False)
def test_cost_summary_rows_link_to_their_llm_calls(admin_client, known_calls):
    content = admin_client.get(COST_SUMMARY).content.decode()
    per_persona, per_day = content.split('id="per-persona"')[1].split('id="per-day"')
    assert re.search(r'<a href="[^"]*process__persona__id__exact=\d+[^"]*">Maya</a>', per_persona)
    assert re.search(r'<a href="[^"]*created_at__day=10[^"]*">2024-05-10</a>', per_day)


@time_machine.travel(NOW, tick=False)
def test_cost_summary_has_a_grand_total(admin_client, known_calls):
    response = admin_client.get(COST_SUMMARY)
    assert totals(response.context["grand_total"]) == (3, 1300, 160, Decimal("0.53"))
    assert "$0.53" in response.content.decode()


@time_machine.travel(NOW, tick=False)
def test_cost_summary_period_follows_days(admin_client, known_calls):
    response = admin_client.get(COST_SUMMARY + "?days=1")
    assert response.context["days"] == 1
    assert totals(response.context["grand_total"]) == (2, 1200, 140, Decimal("0.52"))
    response = admin_client.get(COST_SUMMARY + "?days=366")
    assert response.context["grand_total"]["calls"] == 4


@pytest.mark.parametrize("raw", ["abc", "0", "367", "-3", ""])
def test_cost_summary_falls_back_to_seven_days_on_a_bad_value(admin_client, raw):
    assert admin_client.get(COST_SUMMARY + f"?days={raw}").context["days"] == 7


@time_machine.travel(NOW, tick=False)
def test_cost_summary_marks_spend_of_a_model_with_no_price(admin_client, known_calls, tony):
    make_llm_call(make_process(tony), model="fake-model", input_tokens=700, output_tokens=50, created_at=NOW)
    response = admin_client.get(COST_SUMMARY)
    content = response.content.decode()
    per_persona, per_day = content.split('id="per-persona"')[1].split('id="per-day"')
    note = "no price set for fake-model: add it under Model prices"
    warning = re.sub(r"\s+", " ", content.split('id="unpriced"')[1].split("</ul>")[0])
    assert (
        "No price set for fake-model: add it under Model prices. 1 call (750 tokens) in this period are "
        "counted at $0." in warning
    )
    tony_row = per_persona.split(">Tony</a>")[1].split("</tr>")[0]
    maya_row = per_persona.split(">Maya</a>")[1].split("</tr>")[0]
    assert note in tony_row and note not in maya_row
    assert note in per_day.split(">2024-05-10</a>")[1].split("</tr>")[0]
    assert note not in per_day.split(">2024-05-09</a>")[1].split("</tr>")[0]
    assert note in per_day.split("grand-total")[1]


@time_machine.travel(NOW, tick=False)
def test_cost_summary_says_nothing_of_prices_when_every_model_has_one(admin_client, known_calls, settings):
    assert "no price" not in admin_client.get(COST_SUMMARY).content.decode()


def test_cost_summary_with_no_calls_shows_zero_totals(admin_client):
    response = admin_client.get(COST_SUMMARY)
    assert response.status_code == 200
    assert "No LLM calls in this period." in response.content.decode()


def test_cost_summary_query_count_does_not_grow_with_rows(admin_client, tony, maya):
    for i in range(3):
        make_llm_call(make_process(tony if i % 2 else maya), created_at=ago(days=i % 5))
    admin_client.get(COST_SUMMARY)
    few = queries_for(admin_client, COST_SUMMARY)
    for i in range(40):
        make_llm_call(make_process(tony if i % 2 else maya), created_at=ago(days=i % 5))
    assert queries_for(admin_client, COST_SUMMARY) == few


def test_cost_summary_needs_staff(client):
    response = client.get(COST_SUMMARY)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_cost_summary_needs_permission_to_view_llm_calls(client):
    client.force_login(make_operator("view_process"))
    assert client.get(COST_SUMMARY).status_code == 403


# --- Personas -------------------------------------------------------------------------------------


def test_personas_changelist_counts_processes(admin_client, tony, maya):
    make_process(tony)
    make_process(tony)
    counts = {p.name: p.process_count for p in listed(admin_client.get(changelist("persona")))}
    assert counts == {"Tony": 2, "Maya": 0}


def test_personas_changelist_query_count_does_not_grow_with_rows(admin_client):
    url = changelist("persona")
    for i in range(3):
        make_process(make_persona(name=f"P{i}"))
    admin_client.get(url)
    few = queries_for(admin_client, url)
    for i in range(3, 30):
        make_process(make_persona(name=f"P{i}", reports_to=Persona.objects.first()))
    assert queries_for(admin_client, url) == few


def persona_form(**changes) -> dict:
    """The persona page's form as a browser posts it: lists one item a line, tools checked, hours typed."""
    form = {
        "name": "Tony",
        "role": "Chief Technology Officer",
        "kind": "executive",
        "reports_to": "",
        "enabled": "on",
        "sort_order": "1",
        "system_prompt": "You are Tony, terse and exact.",
        "tone": "",
        "focus_areas": "infra\n  architecture  \n\n",
        "tools": ["list_team", "save_directive"],
        "model": "gpt-4o",
        "temperature": "0.2",
        "budget_usd": "",
        "time_zone": "Europe/Berlin",
        "schedule_news": "6, 12",
        "schedule_goals": "",
        "schedule_team_check": "off",
        "schedule_reflection": "",
        "schedule_journal": "22",
        "schedule_post": "",
        "news_feeds": "https://example.com/feed.xml\nhttps://example.org/atom",
        "directives-TOTAL_FORMS": "0",
        "directives-INITIAL_FORMS": "0",
    }
    return {**form, **changes}


def test_persona_change_page_saves_an_edit(admin_client, tony):
    response = admin_client.post(change_page(tony), persona_form())
    assert response.status_code == 302
    tony.refresh_from_db()
    assert (tony.role, tony.model, tony.focus_areas) == (
        "Chief Technology Officer",
        "gpt-4o",
        ["infra", "architecture"],
    )
    assert tony.tools == ["list_team", "save_directive"]
    assert tony.life_schedule == {"news": [6, 12], "team_check": [], "journal": [22]}
    assert tony.news_feeds == ["https://example.com/feed.xml", "https://example.org/atom"]
    assert tony.time_zone == "Europe/Berlin" and tony.life_enabled is False


def test_the_persona_page_edits_lists_and_hours_without_json(admin_client, tony):
    Persona.objects.filter(pk=tony.pk).update(
        tools=["list_team", "web_search"],
        life_schedule={"post": [8, 20], "goals": []},
        focus_areas=["ai", "infra"],
    )
    html = admin_client.get(change_page(tony)).content.decode()
    assert 'type="checkbox" name="tools" value="list_team"' in html and "checked" in html
    assert 'value="spawn_agent"' in html  # every registered tool is offered
    assert "web_search (no such tool here: kept, not offered)" in html
    assert re.search(r'name="schedule_post"[^>]*value="8, 20"', html)
    assert re.search(r'name="schedule_goals"[^>]*value="off"', html)
    assert re.search(r'name="schedule_news"[^>]*placeholder="6, 12, 18"', html)  # the life loop's default
    assert ">\nai\ninfra</textarea>" in html
    assert "0 stops the persona's model calls altogether" in html
    assert "[" not in html.split('name="focus_areas"')[1].split("</textarea>")[0]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule_news", "6, 25", "News: &quot;25&quot; is not an hour."),
        ("schedule_team_check", "noon", "Team check: &quot;noon&quot; is not an hour."),
        (
            "news_feeds",
            "https://example.com/feed.xml\nnot a url",
            "&#x27;not a url&#x27; is not an http(s) URL.",
        ),
        (
            "tools",
            ["list_team", "rm_rf"],
            "Select a valid choice. rm_rf is not one of the available choices.",
        ),
    ],
)
def test_the_persona_page_refuses_bad_values_in_words(admin_client, tony, field, value, message):
    response = admin_client.post(change_page(tony), persona_form(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    tony.refresh_from_db()
    assert tony.role == "CTO"


def test_persona_add_page_renders(admin_client):
    assert admin_client.get(reverse("admin:agents_persona_add")).status_code == 200


def test_every_core_model_is_registered():
    from django.contrib import admin

    for model in (Persona, Process, CallerSession, Message, LLMCall):
        assert admin.site.is_registered(model)


def test_the_persona_list_names_the_model_each_last_used(admin_client, tony, maya, settings):
    settings.TRON_MODEL = "gpt-4o-mini"
    settings.TRON_LLM = "openai"
    old, new = make_process(tony, started_at=ago(hours=2)), make_process(tony, started_at=ago(hours=1))
    make_llm_call(old, model="gpt-4o")
    make_llm_call(new, model="gpt-4.1-nano", created_at=ago(minutes=50))
    make_llm_call(new, model="gpt-4.1", created_at=ago(minutes=40))
    make_process(tony)  # no call yet: not the one to read
    rows = {row.split()[0]: row for row in changelist_rows(admin_client.get(changelist("persona")))}
    assert "gpt-4.1 (now set: gpt-4o-mini)" in rows["Tony"]
    assert "gpt-4o-mini (not used yet)" in rows["Maya"]


def test_an_operator_lifts_a_callers_limits_from_their_use_and_approves_a_directive(admin_client, tony):
    from agents.models import CallerAllowance, CallerUsage, Directive
    from agents.principals import Trust

    usage = CallerUsage.objects.create(allowance="+14155550100", day=NOW.date(), requests=31)
    response = admin_client.post(
        changelist("callerusage"), {"action": "lift_limits", "_selected_action": [usage.pk]}, follow=True
    )
    assert response.status_code == 200
    assert CallerAllowance.objects.get(allowance="+14155550100").unlimited
    assert "31" in admin_client.get(changelist("callerusage")).content.decode()

    waiting = Directive.objects.create(
        persona=tony, text="Be brief.", trust=Trust.TEAM, asked_by="Slack user U1"
    )
    assert not Directive.objects.in_force().exists()
    admin_client.post(
        changelist("directive"), {"action": "approve", "_selected_action": [waiting.pk]}, follow=True
    )
    waiting.refresh_from_db()
    assert waiting.approved_at is not None and waiting.approved_by == "admin"
    assert list(Directive.objects.in_force()) == [waiting]
