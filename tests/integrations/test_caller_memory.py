"""Caller memory: a returning caller's persona knows what was said before; operators see, correct and
erase what is remembered."""

import pytest
from django.urls import reverse

from agents.background import remember_conversation
from agents.callers import Caller
from agents.errors import UpstreamFailed
from agents.memory import caller_memory
from agents.models import CallerMemory, CallerSession, Channel, Process
from tests.factories import make_message, make_process, make_session
from tests.integrations.vapi import CALLER, fixture, post_vapi, vapi_chat

pytestmark = pytest.mark.django_db(transaction=True)


def system_text(request) -> str:
    return "\n".join(m["content"] for m in request.body["messages"] if m["role"] == "system")


def second_call() -> dict:
    call = fixture("status-update-in-progress")
    call["message"]["call"]["id"] = "call-xyz-2"
    return call


def test_a_returning_callers_second_call_carries_the_first_calls_facts(sdk, live_tron, upstream):
    upstream.queue(
        {"tokens": ["Nice to meet you, Ada."]},
        {"tokens": ["Ada Lovelace. Prefers tea. Wants the invoice for order 42."]},  # the memory's call
        {"tokens": ["Welcome back, Ada!"]},
    )
    post_vapi(live_tron, "status-update-in-progress")
    vapi_chat(sdk, "Hi, I'm Ada Lovelace. I prefer tea. Send the invoice for order 42.")
    post_vapi(live_tron, "end-of-call-report")

    memory_request = upstream.requests[1].body["messages"][-1]["content"]
    assert "I prefer tea" in memory_request and "(none yet)" in memory_request

    post_vapi(live_tron, second_call())
    reply = vapi_chat(sdk, "Hello again!", call_id="call-xyz-2")

    assert reply.parse().choices[0].message.content == "Welcome back, Ada!"
    prompt = system_text(upstream.requests[2])
    assert "Ada Lovelace. Prefers tea. Wants the invoice for order 42." in prompt
    first, second = Process.objects.filter(channel=Channel.VAPI).order_by("id")
    assert second.pk != first.pk and reply.headers["X-Tron-Process-ID"] == second.public_id


def test_the_memory_update_reads_the_notes_so_far_and_replaces_them(sdk, live_tron, upstream):
    CallerMemory.objects.create(caller_id=CALLER, notes="Ada. Drinks coffee.")
    upstream.queue({"tokens": ["Noted."]}, {"tokens": ["Ada. Drinks tea now."]})
    post_vapi(live_tron, "status-update-in-progress")
    vapi_chat(sdk, "I switched to tea.")
    post_vapi(live_tron, "end-of-call-report")

    assert "Ada. Drinks coffee." in upstream.requests[1].body["messages"][-1]["content"]
    memory = CallerMemory.objects.get()
    assert memory.notes == "Ada. Drinks tea now."
    assert memory.last_process == Process.objects.get(channel=Channel.VAPI)


def test_a_failed_memory_call_keeps_the_notes_and_its_process_failed(chat_setup, upstream, team):
    CallerMemory.objects.create(caller_id=CALLER, notes="Ada.")
    process = make_process(team["tony"], channel=Channel.VAPI)
    make_session(CALLER, process)
    make_message(process, "user", "hello")
    upstream.reset(status=500)

    with pytest.raises(UpstreamFailed):
        remember_conversation(process.pk)

    assert CallerMemory.objects.get().notes == "Ada."
    writer = Process.objects.get(channel=Channel.MEMORY)
    assert writer.status == Process.Status.FAILED and writer.llm_calls == 1
    assert not CallerSession.objects.filter(process=writer, ended_at__isnull=True).exists()


@pytest.mark.parametrize("caller_id", ["anonymous-123", "memory-abcd1234"])
def test_anonymous_callers_and_the_memory_writer_are_not_remembered(chat_setup, team, caller_id):
    process = make_process(team["tony"])
    make_session(caller_id, process)
    make_message(process, "user", "hello")
    assert "no caller" in remember_conversation(process.pk)
    assert chat_setup.requests == [] and not CallerMemory.objects.exists()


def test_a_conversation_where_nothing_was_said_costs_no_model_call(chat_setup, team):
    process = make_process(team["tony"])
    make_session(CALLER, process)
    assert "nothing was said" in remember_conversation(process.pk)
    assert chat_setup.requests == []


def test_the_notes_go_into_the_prompt_of_that_caller_only(team):
    CallerMemory.objects.create(caller_id=CALLER, notes="Prefers tea.")
    assert "Prefers tea." in caller_memory(team["tony"], Caller(CALLER))
    assert caller_memory(team["tony"], Caller("+14155559999")) == ""


def make_superuser():
    from django.contrib.auth.models import User

    return User.objects.create_superuser("root", password="x")


def test_operators_see_edit_and_erase_a_callers_memory(client, team):
    memory = CallerMemory.objects.create(caller_id=CALLER, notes="Ada. Prefers tea.")
    client.force_login(make_superuser())

    listing = client.get(reverse("admin:agents_callermemory_changelist"))
    assert listing.status_code == 200 and CALLER in listing.content.decode()
    page = reverse("admin:agents_callermemory_change", args=[memory.pk])
    assert client.post(page, {"notes": "Ada. Prefers green tea."}).status_code == 302
    assert CallerMemory.objects.get().notes == "Ada. Prefers green tea."
    assert CallerMemory.objects.get().caller_id == CALLER  # the key is not editable

    erase = reverse("admin:agents_callermemory_delete", args=[memory.pk])
    assert client.post(erase, {"post": "yes"}).status_code == 302
    assert not CallerMemory.objects.exists()
    assert caller_memory(team["tony"], Caller(CALLER)) == ""


def test_a_conversation_too_long_for_one_message_is_remembered_from_its_newest_lines(
    chat_setup, team, settings
):
    settings.TRON_MAX_MESSAGE_CHARS = 5_000
    process = make_process(team["tony"], channel=Channel.VAPI)
    make_session(CALLER, process)
    for n in range(100):
        make_message(process, "user", f"line {n:03} " + "x" * 100)
    chat_setup.reset(tokens=["Talks a lot."])

    assert "remembered" in remember_conversation(process.pk)

    request = chat_setup.last.body["messages"][-1]["content"]
    assert len(request) <= 5_000 and "line 099" in request and "line 000" not in request
    assert "(earlier lines left out)" in request
