"""A phone call through VAPI: its server messages open, feed and end the caller's session, in both the
envelope VAPI sends today and the seed's flat shape."""

import logging

import httpx2
import pytest

from agents.models import CallerMemory, CallerSession, Channel, LLMCall, Message, Process, Turn
from tests.integrations.vapi import CALL_ID, CALLER, fixture, post_vapi, vapi_chat

pytestmark = pytest.mark.django_db(transaction=True)


def transcript(process=None) -> list[tuple[str, str]]:
    rows = Message.objects.filter(**({"process": process} if process else {})).order_by("id")
    return list(rows.values_list("role", "content"))


def test_a_call_start_opens_the_callers_session_keyed_by_their_number(live_tron, team):
    response = post_vapi(live_tron, "status-update-in-progress")

    assert response.status_code == 200 and response.json() == {}
    session = CallerSession.objects.select_related("process").get()
    assert (session.caller_id, session.provider_call_id, session.channel) == (CALLER, CALL_ID, "vapi")
    assert session.is_open and session.process.status == Process.Status.RUNNING
    assert session.process.persona == team["tony"] and session.process.channel == Channel.VAPI


def test_the_seeds_flat_call_started_opens_the_session_too(live_tron, team):
    assert post_vapi(live_tron, "flat-call-started").status_code == 200
    session = CallerSession.objects.get()
    assert (session.caller_id, session.provider_call_id) == (CALLER, "call-123")


def test_a_call_start_names_the_persona_its_assistant_is(live_tron, team):
    message = fixture("status-update-in-progress")
    message["message"]["assistant"] = {"model": {"provider": "custom-llm", "model": "maya"}}
    post_vapi(live_tron, message)
    assert CallerSession.objects.get().process.persona == team["maya"]


@pytest.mark.parametrize("where", ["header", "body"])
def test_chat_requests_that_carry_only_the_call_id_join_the_calls_session(sdk, live_tron, where):
    post_vapi(live_tron, "status-update-in-progress")

    if where == "header":
        reply = sdk.chat.completions.with_raw_response.create(
            model="tony",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Vapi-Call-ID": CALL_ID},
        )
    else:
        reply = vapi_chat(sdk, "hi", number=None)

    assert reply.headers["X-Tron-Caller-ID"] == CALLER
    session = CallerSession.objects.get()
    assert reply.headers["X-Tron-Process-ID"] == session.process.public_id
    assert session.process.llm_calls == 1 and transcript() == [("user", "hi"), ("assistant", "Hello there!")]


def test_a_chat_request_before_the_call_start_keeps_its_session(sdk, live_tron):
    vapi_chat(sdk, "hi")  # VAPI's first LLM request can beat the status-update
    post_vapi(live_tron, "status-update-in-progress")
    assert CallerSession.objects.count() == Process.objects.count() == 1


def test_a_new_call_ends_an_earlier_call_of_the_caller_that_never_ended(live_tron, team):
    post_vapi(live_tron, "status-update-in-progress")
    second = fixture("status-update-in-progress")
    second["message"]["call"]["id"] = "call-xyz-2"
    post_vapi(live_tron, second)

    first, latest = CallerSession.objects.order_by("id")
    assert first.ended_at is not None and first.process.status == Process.Status.COMPLETED
    assert latest.is_open and latest.provider_call_id == "call-xyz-2"


def test_the_end_of_call_report_completes_the_process_with_its_transcript_summary_reason_and_cost(
    sdk, live_tron, upstream
):
    upstream.queue({"tokens": ["Hello", " there", "!"]}, {"tokens": ["Ada. Prefers tea."]})
    post_vapi(live_tron, "status-update-in-progress")
    post_vapi(live_tron, "conversation-update")  # the greeting VAPI spoke, and the caller's first words
    vapi_chat(sdk, "Hi Tony, it's Ada.", history=[{"role": "assistant", "content": "Hi, this is Tony."}])

    response = post_vapi(live_tron, "end-of-call-report")

    assert response.status_code == 200
    process = Process.objects.exclude(channel=Channel.MEMORY).get()
    assert process.status == Process.Status.COMPLETED and process.finished_at is not None
    assert process.summary == "Ada called about her order and said she prefers tea."
    assert process.ended_reason == "customer-ended-call"
    assert float(process.call_cost_usd) == 0.1234
    # Each line once: the greeting and the first words from the update, the answer from the chat
    # endpoint, the words after the last model request from the report.
    assert transcript(process) == [
        ("assistant", "Hi, this is Tony."),
        ("user", "Hi Tony, it's Ada."),
        ("assistant", "Hello there!"),
        ("user", "I prefer tea, by the way. Bye!"),
    ]
    assert CallerSession.objects.get(process=process).ended_at is not None
    assert CallerMemory.objects.get(caller_id=CALLER).notes == "Ada. Prefers tea."
    detail = httpx2.get(f"{live_tron.url}/api/processes/{process.public_id}", timeout=10).json()
    assert (detail["summary"], detail["ended_reason"], detail["call_cost"]) == (
        process.summary,
        "customer-ended-call",
        0.1234,
    )


def test_a_bare_ended_status_completes_the_process_and_the_report_then_brings_the_rest(
    sdk, live_tron, upstream
):
    upstream.queue({"tokens": ["Hello", " there", "!"]}, {"tokens": ["Ada."]})
    post_vapi(live_tron, "status-update-in-progress")
    vapi_chat(sdk, "Hi Tony, it's Ada.")

    post_vapi(live_tron, "status-update-ended")
    process = Process.objects.get()
    assert process.status == Process.Status.COMPLETED and process.ended_reason == "customer-ended-call"
    assert not CallerMemory.objects.exists()  # written from the report, which carries the whole call

    post_vapi(live_tron, "end-of-call-report")
    assert CallerMemory.objects.get().last_process == process
    assert Process.objects.filter(channel=Channel.MEMORY).count() == 1


def test_a_resent_report_changes_nothing(sdk, live_tron, upstream):
    upstream.queue({"tokens": ["Ada."]})
    post_vapi(live_tron, "status-update-in-progress")
    post_vapi(live_tron, "end-of-call-report")
    lines = transcript()

    assert post_vapi(live_tron, "end-of-call-report").status_code == 200

    assert transcript() == lines
    assert Process.objects.filter(channel=Channel.MEMORY).count() == 1  # remembered once


def test_the_seeds_flat_call_ended_ends_the_call_and_stores_what_was_said(live_tron, chat_setup, upstream):
    upstream.reset(tokens=["Asked about the API."])
    post_vapi(live_tron, "flat-call-started")
    post_vapi(live_tron, "flat-speech-recognized")
    post_vapi(live_tron, "flat-assistant-message")

    post_vapi(live_tron, "flat-call-ended")

    process = Process.objects.exclude(channel=Channel.MEMORY).get()
    assert transcript(process) == [
        ("user", "What's new with the API?"),
        ("assistant", "We shipped version two."),
        ("user", "Great, thanks."),
    ]
    assert (process.status, process.summary) == (Process.Status.COMPLETED, "Asked what is new with the API.")
    assert CallerMemory.objects.get(caller_id=CALLER).notes == "Asked about the API."


def test_a_report_for_a_call_tron_never_saw_start_is_still_kept(live_tron, chat_setup):
    post_vapi(live_tron, "end-of-call-report")
    process = Process.objects.exclude(channel=Channel.MEMORY).get()
    assert process.status == Process.Status.COMPLETED and len(transcript(process)) == 4


def test_a_final_transcript_line_is_stored_once_whoever_comes_first(sdk, live_tron):
    post_vapi(live_tron, "status-update-in-progress")
    post_vapi(live_tron, "transcript-final")  # before the chat request with the same words
    vapi_chat(sdk, "Hi Tony, it's Ada.")
    post_vapi(live_tron, "transcript-final")  # and again after it
    post_vapi(live_tron, "conversation-update")
    post_vapi(live_tron, "conversation-update")

    assert transcript() == [
        ("user", "Hi Tony, it's Ada."),
        ("assistant", "Hello there!"),
        ("assistant", "Hi, this is Tony."),  # the greeting only VAPI saw, once
    ]


def test_a_partial_transcript_is_not_stored(live_tron, team):
    post_vapi(live_tron, "status-update-in-progress")
    assert post_vapi(live_tron, "transcript-partial").status_code == 200
    assert not Message.objects.exists()


def test_transcript_lines_of_a_call_without_a_start_open_its_session(live_tron, team):
    post_vapi(live_tron, "transcript-final")
    session = CallerSession.objects.get()
    assert (session.caller_id, session.provider_call_id) == (CALLER, CALL_ID)
    assert transcript() == [("user", "Hi Tony, it's Ada.")]


def test_while_a_turn_runs_mid_call_lines_wait_and_the_report_keeps_only_the_callers(live_tron, chat_setup):
    from datetime import timedelta

    from django.utils import timezone

    post_vapi(live_tron, "status-update-in-progress")
    session = CallerSession.objects.get()
    running = Turn.objects.create(  # a turn of the chat endpoint, mid-answer
        caller_id=session.caller_id,
        session=session,
        process=session.process,
        state=Turn.State.RUNNING,
        lease_until=timezone.now() + timedelta(minutes=5),
    )

    post_vapi(live_tron, "conversation-update")
    assert not Message.objects.exists()  # the running turn records the answer; VAPI resends the words

    post_vapi(live_tron, "end-of-call-report")
    call = Process.objects.get(channel=Channel.VAPI)
    assert transcript(call) == [("user", "Hi Tony, it's Ada."), ("user", "I prefer tea, by the way. Bye!")]
    running.state = Turn.State.ANSWERED  # it had no holder: the test ends it
    running.save()


def test_other_message_types_get_a_quick_200_and_a_debug_line(live_tron, team, caplog):
    with caplog.at_level(logging.DEBUG, logger="integrations.vapi"):
        for name in ("speech-update",):
            assert post_vapi(live_tron, name).status_code == 200
        assert post_vapi(live_tron, {"message": {"type": "hang"}}).json() == {}
        assert post_vapi(live_tron, {"type": "some.future.event", "call": {"id": "c"}}).status_code == 200
    assert "speech-update" in caplog.text and "hang" in caplog.text
    assert not CallerSession.objects.exists()


@pytest.mark.parametrize(
    "body, param",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'"status-update"', None),
        (b"{}", "type"),
        (b'{"message": "status-update"}', "message"),
        (b'{"message": {"status": "ended"}}', "message.type"),
        (b'{"message": {"type": 7}}', "message.type"),
        (
            b'{"message": {"type": "status-update", "status": "in-progress", "call": "call-1"}}',
            "message.call",
        ),
        (b'{"message": {"type": "status-update", "status": "in-progress", "call": {}}}', "message.call"),
        (b'{"type": "call.started", "call": {"from": "anonymous"}}', "call"),
        (
            b'{"message": {"type": "conversation-update", "call": {"id": "c"}, "messages": "hi"}}',
            "message.messages",
        ),
        (
            b'{"message": {"type": "end-of-call-report", "call": {"id": "c"}, "artifact": []}}',
            "message.artifact",
        ),
        (b'{"message": {"type": "tool-calls", "call": {"id": "c"}}}', "message.toolCallList"),
        (
            b'{"message": {"type": "tool-calls", "call": {"id": "c"}, "toolCallList": [{"name": "x"}]}}',
            "message.toolCallList[0].id",
        ),
        (b"\xff\xfe", None),
    ],
)
def test_malformed_messages_are_a_400_that_names_the_field_and_change_nothing(live_tron, team, body, param):
    response = post_vapi(live_tron, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert not CallerSession.objects.exists() and not Message.objects.exists()


def test_a_line_with_nul_characters_is_stored_without_them(live_tron, team):
    message = fixture("transcript-final")
    message["message"]["transcript"] = "a\x00b"
    assert post_vapi(live_tron, message).status_code == 200
    assert transcript() == [("user", "ab")]


def test_model_calls_of_the_call_and_of_its_memory_are_both_costed(sdk, live_tron, upstream):
    upstream.queue({"tokens": ["Hello"]}, {"tokens": ["Ada."]})
    post_vapi(live_tron, "status-update-in-progress")
    vapi_chat(sdk, "Hi Tony, it's Ada.")
    post_vapi(live_tron, "end-of-call-report")

    memory = Process.objects.get(channel=Channel.MEMORY)
    assert memory.status == Process.Status.COMPLETED and memory.llm_calls == 1
    assert memory.input_tokens == 42 and LLMCall.objects.filter(process=memory).count() == 1
    assert not CallerSession.objects.filter(process=memory, ended_at__isnull=True).exists()
