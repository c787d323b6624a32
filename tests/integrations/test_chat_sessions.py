"""Callers map to sessions: the same caller continues, concurrency never splits a session."""

import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from django.db.models import Sum
from django.utils import timezone

from agents.models import CallerSession, Process
from agents.sessions import end_idle_sessions
from tests.factories import ago
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)


def say(sdk, text="hello", headers=None, **extra):
    return sdk.chat.completions.with_raw_response.create(
        model="tony", messages=[{"role": "user", "content": text}], extra_headers=headers or {}, **extra
    )


@pytest.mark.parametrize("number", ["+1 (415) 555-1234", "415-555-1234", "+14155551234", "(415) 5551234"])
def test_a_vapi_caller_phone_is_normalised_to_e164(sdk, number):
    response = say(sdk, headers={"X-Vapi-Caller-Phone": number})
    assert response.headers["X-Tron-Caller-ID"] == "+14155551234"
    session = CallerSession.objects.get()
    assert (session.caller_id, session.channel) == ("+14155551234", "vapi")
    assert session.process.channel == "vapi"


def test_the_same_caller_continues_the_same_session_and_process(sdk):
    for number in ["+14155551234", "415 555 1234"]:
        say(sdk, headers={"X-Vapi-Caller-Phone": number})
    session = CallerSession.objects.get()
    assert Process.objects.count() == 1
    assert session.process.llm_calls == 2
    assert session.process.messages.count() == 4


@pytest.mark.parametrize(
    "withheld", ["anonymous", "Restricted", "unknown", "12", "0000000000", "+10000000000"]
)
def test_a_withheld_number_never_joins_two_calls(sdk, upstream, withheld):
    say(sdk, "my PIN is 1234", headers={"X-Vapi-Caller-Phone": withheld, "X-Vapi-Call-ID": "call-a"})
    second = say(sdk, "hello", headers={"X-Vapi-Caller-Phone": withheld, "X-Vapi-Call-ID": "call-b"})
    third = say(sdk, "hello", headers={"X-Vapi-Caller-Phone": withheld})

    assert second.headers["X-Tron-Caller-ID"] == "call-b"  # the call id as given, not call-call-b
    assert third.headers["X-Tron-Caller-ID"].startswith("anonymous-")
    assert CallerSession.objects.count() == Process.objects.count() == 3
    assert "PIN" not in json.dumps(upstream.requests[1].body) + json.dumps(upstream.requests[2].body)


def test_a_withheld_header_leaves_the_number_in_the_body(sdk):
    say(
        sdk,
        headers={"X-Vapi-Caller-Phone": "anonymous"},
        extra_body={"call": {"customer": {"number": "+442071838750"}}},
    )
    assert CallerSession.objects.get().caller_id == "+442071838750"


def test_a_number_that_cannot_be_normalised_still_keeps_its_caller(sdk, settings):
    settings.TRON_DEFAULT_PHONE_REGION = "US"
    for _ in range(2):  # a UK number in national form: not a US number, but a number all the same
        assert (
            say(sdk, headers={"X-Vapi-Caller-Phone": "02071838750"}).headers["X-Tron-Caller-ID"]
            == "02071838750"
        )
    assert CallerSession.objects.get().process.llm_calls == 2


def test_vapi_body_fields_identify_the_caller(sdk):
    say(sdk, extra_body={"call": {"id": "call-123", "customer": {"number": "+442071838750"}}})
    session = CallerSession.objects.get()
    assert (session.caller_id, session.provider_call_id, session.channel) == (
        "+442071838750",
        "call-123",
        "vapi",
    )


def test_a_vapi_call_id_without_a_phone_keeps_the_call_together(sdk):
    say(sdk, headers={"X-Vapi-Call-ID": "web-call-9"})
    say(sdk, headers={"X-Vapi-Call-ID": "web-call-9"})
    session = CallerSession.objects.get()
    assert session.caller_id == "call-web-call-9"
    assert session.process.llm_calls == 2


def test_a_request_id_becomes_a_req_caller(sdk):
    assert say(sdk, headers={"X-Request-ID": "abc123"}).headers["X-Tron-Caller-ID"] == "req-abc123"
    assert say(sdk, headers={"X-Request-ID": "req-abc123"}).headers["X-Tron-Caller-ID"] == "req-abc123"
    assert CallerSession.objects.count() == 1


def test_the_openai_user_field_identifies_a_caller(sdk):
    say(sdk, user="alice")
    say(sdk, user="alice")
    assert CallerSession.objects.get().caller_id == "user-alice"


def test_unidentified_callers_are_anonymous_and_separate(sdk):
    first = say(sdk).headers["X-Tron-Caller-ID"]
    second = say(sdk).headers["X-Tron-Caller-ID"]
    assert first.startswith("anonymous-") and second.startswith("anonymous-") and first != second
    assert CallerSession.objects.count() == 2


def test_sessions_and_processes_show_in_the_control_api(sdk, client):
    say(sdk, headers={"X-Vapi-Caller-Phone": "+14155551234"})
    [session] = client.get("/api/sessions").json()
    [process] = client.get("/api/processes").json()
    assert session["caller_id"] == "+14155551234"
    assert session["process_id"] == process["id"]
    assert process["metrics"]["llm_calls"] == 1
    assert process["metrics"]["total_tokens"] == 45


def test_concurrent_requests_from_one_caller_share_one_session(sdk, upstream):
    upstream.reset(first_token_delay=0.2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda i: say(sdk, f"m{i}", headers={"X-Request-ID": "same"}), range(8)))
    assert {r.headers["X-Tron-Process-ID"] for r in responses} == {Process.objects.get().public_id}
    assert CallerSession.objects.count() == 1
    process = Process.objects.get()
    # The counters are the sums of the process's calls: no concurrent turn lost another's numbers.
    totals = process.llm_call_rows.aggregate(
        input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"), cost_usd=Sum("cost_usd")
    )
    assert (process.llm_calls, process.input_tokens, process.output_tokens) == (
        8,
        totals["input_tokens"],
        totals["output_tokens"],
    )
    assert totals["input_tokens"] == 8 * 42
    assert process.cost_usd == totals["cost_usd"] > 0


def test_an_idle_session_ends_and_the_next_call_starts_afresh(sdk, settings):
    settings.TRON_SESSION_IDLE_MINUTES = 30
    say(sdk, headers={"X-Request-ID": "sleepy"})
    CallerSession.objects.update(last_seen_at=ago(minutes=31))

    say(sdk, headers={"X-Request-ID": "sleepy"})

    old, new = CallerSession.objects.order_by("id")
    assert old.ended_at is not None
    old.process.refresh_from_db()
    assert old.process.status == "completed" and old.process.finished_at is not None
    assert new.ended_at is None and new.process_id != old.process_id


def test_the_idle_sweep_ends_sessions_and_completes_their_processes(sdk, settings):
    settings.TRON_SESSION_IDLE_MINUTES = 30
    say(sdk, headers={"X-Request-ID": "gone"})
    say(sdk, headers={"X-Request-ID": "here"})
    CallerSession.objects.filter(caller_id="req-gone").update(last_seen_at=ago(minutes=45))

    assert end_idle_sessions() == 1

    gone = CallerSession.objects.get(caller_id="req-gone")
    assert gone.ended_at is not None and gone.process.status == "completed"
    assert CallerSession.objects.get(caller_id="req-here").ended_at is None


def test_switching_persona_ends_the_old_session(sdk):
    say(sdk, headers={"X-Request-ID": "switcher"})
    sdk.chat.completions.create(
        model="maya", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Request-ID": "switcher"}
    )
    old, new = CallerSession.objects.order_by("id")
    assert old.ended_at is not None and old.process.persona.name == "Tony"
    assert new.ended_at is None and new.process.persona.name == "Maya"
    assert old.ended_at <= timezone.now()


def test_a_non_ascii_request_id_keeps_its_caller_and_is_echoed_percent_encoded(chat_setup, live_tron):
    # Sent as UTF-8 bytes (Django reads them as Latin-1, and the edge reads them again as UTF-8): stored
    # as written, and echoed as its percent-encoded UTF-8 (response headers must be ASCII).
    headers = {"X-Request-ID": "ñandú🚀".encode()}
    responses = [
        post_chat(live_tron, {"messages": [{"role": "user", "content": "hi"}]}, headers) for _ in "ab"
    ]
    assert [r.status_code for r in responses] == [200, 200]
    session = CallerSession.objects.get()
    assert session.caller_id == "req-ñandú🚀"
    assert (
        responses[0].headers["X-Tron-Caller-ID"]
        == quote(session.caller_id)
        == "req-%C3%B1and%C3%BA%F0%9F%9A%80"
    )
    assert session.process.llm_calls == 2
