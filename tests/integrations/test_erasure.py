"""Erasure: a caller who asked to be forgotten leaves nothing in any table (their ids, their number in
any form, their words), through every edge they used; another caller's data stays whole; costs and
counters stay, anonymised (docs/security.md, "Retention and erasure")."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models import Sum
from django.urls import reverse

from agents.models import (
    CallerAllowance,
    CallerMemory,
    CallerSession,
    CallerUsage,
    Directive,
    LLMCall,
    MemoryNote,
    Message,
    Process,
    Replay,
    ReplayTurn,
    Turn,
)
from agents.tasks import run_replay
from integrations.models import SlackMessage
from tests.factories import ago, make_turn
from tests.integrations.slack.conftest import direct
from tests.integrations.vapi import CALLER, fixture, post_vapi, vapi_chat
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

PHRASE = "purple-walrus-42"  # what Ada says, everywhere
ADA_REQUEST_ID = "ada-req-1"  # her chat app's X-Request-ID: caller id req-ada-req-1
ADA_SLACK = "U0ADA0001"
BOB_PHONE = "+14155550777"
BOB_PHRASE = "orange-otter-7"
BOB_SLACK = "U0BOB0002"
PROJECT_APPS = ("agents", "integrations", "lifeloop")
# What must be nowhere once Ada is erased: her number (any form contains these digits), her ids, her
# words, her Slack DM channel and her VAPI call.
ADA_TRACES = ("4155551234", ADA_REQUEST_ID, ADA_SLACK, "D0ADA0001", "call-xyz-1", PHRASE)


def tool_call(name, **arguments):
    return {"tokens": [], "tool_calls": [{"id": "c1", "name": name, "arguments": json.dumps(arguments)}]}


def where(needles) -> list[str]:
    """Every text field of every row of the project's apps (and the admin's history) that holds one of
    `needles`: 'model.field: value'."""
    found = []
    models_ = [m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS] + [LogEntry]
    for model in models_:
        fields = [
            f.name
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        if not fields:
            continue
        for row in model.objects.values_list(*fields):
            for name, value in zip(fields, row, strict=True):
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                found += [f"{model.__name__}.{name}: {text[:120]}" for needle in needles if needle in text]
    return found


def accounts():
    """What accounting adds up: the processes' and the model calls' counters and costs."""
    return (
        Process.objects.aggregate(
            Sum("input_tokens"), Sum("output_tokens"), Sum("llm_calls"), Sum("cost_usd")
        ),
        LLMCall.objects.aggregate(Sum("input_tokens"), Sum("output_tokens"), Sum("cost_usd")),
        LLMCall.objects.count(),
        Process.objects.count(),
    )


def test_nothing_about_an_erased_caller_remains_in_any_table(
    settings, sdk, slack, upstream, fake_slack, team, admin_client, live_tron
):
    settings.TRON_CHAT_API_KEY = "unused"  # the sdk's key: callers' ids are vouched for, usage counted
    settings.TRON_SAVE_DIRECTIVE_TRUST = "team"
    tony = team["tony"]
    tony.tools = ["save_person_memory", "save_directive"]
    tony.save()
    fake_slack.add_user(BOB_SLACK, "Bob Byte", display_name="bob")
    auth = {"Authorization": "Bearer unused"}
    upstream.queue(
        tool_call("save_person_memory", person="the caller", fact=f"Her code is {PHRASE}."),
        {"tokens": ["Noted."]},
        {"tokens": [f"Ada. Code {PHRASE}. Prefers tea."]},  # the memory writer, after the call
        {"tokens": ["Sure."]},  # her chat app
        {"tokens": ["Hello Bob."]},
        tool_call("save_directive", text=f"Greet Ada with {PHRASE}."),  # on Slack
        {"tokens": ["I will."]},
        {"tokens": ["Hi Bob."]},
    )

    # Ada's phone call: her words, a note a tool saved, the report's summary, the memory writer's notes.
    post_vapi(live_tron, "status-update-in-progress")
    vapi_chat(sdk, f"Hi, I'm Ada. My code is {PHRASE}.")
    report = fixture("end-of-call-report")
    report["message"]["analysis"]["summary"] = f"Ada gave her code {PHRASE}."
    post_vapi(live_tron, report)
    call = Process.objects.get(channel="vapi")
    # Her chat app, then Bob's.
    said = {"model": "tony", "messages": [{"role": "user", "content": f"{PHRASE} again"}]}
    assert post_chat(live_tron, said, {**auth, "X-Request-ID": ADA_REQUEST_ID}).status_code == 200
    bob_said = {"model": "tony", "messages": [{"role": "user", "content": f"I'm Bob, {BOB_PHRASE}."}]}
    assert post_chat(live_tron, bob_said, {**auth, "X-Vapi-Caller-Phone": BOB_PHONE}).status_code == 200
    # Slack: a standing directive she asks for, in her DM; Bob in his.
    slack.event(direct(f"Tony, always greet me with {PHRASE}", user=ADA_SLACK))
    slack.event(direct(f"{BOB_PHRASE} from Bob", user=BOB_SLACK, channel="D0BOB0002"))
    # An operator's word on her limits, and an edit of her notes in the admin (its history names her).
    CallerAllowance.objects.create(allowance=CALLER, unlimited=True, note="VIP")
    memory = CallerMemory.objects.get(caller_id=CALLER)
    edit = admin_client.post(
        reverse("admin:agents_callermemory_change", args=[memory.pk]), {"notes": f"{memory.notes} Edited."}
    )
    assert edit.status_code == 302
    # A replay of her call: her words again, the candidate's answer, its process runs as her.
    upstream.queue({"tokens": ["Candidate answer."]})
    replay = Replay.objects.create(persona=tony, system_prompt="You are Tony, kinder.")
    replay.conversations.set([call])
    assert run_replay(replay.pk).endswith("completed")

    # Every place holds her now (the test would prove nothing otherwise).
    assert {
        "session",
        "memory",
        "note",
        "directive",
        "usage",
        "allowance",
        "slack",
        "replay",
        "history",
    } <= {
        kind
        for kind, exists in {
            "session": CallerSession.objects.filter(caller_id=CALLER).exists(),
            "memory": CallerMemory.objects.filter(caller_id=CALLER, notes__contains=PHRASE).exists(),
            "note": MemoryNote.objects.filter(added_for=CALLER).exists(),
            "directive": Directive.objects.filter(text__contains=PHRASE).exists(),
            "usage": CallerUsage.objects.filter(allowance=f"req-{ADA_REQUEST_ID}").exists(),
            "allowance": CallerAllowance.objects.filter(allowance=CALLER).exists(),
            "slack": SlackMessage.objects.filter(user=ADA_SLACK).exists(),
            "replay": ReplayTurn.objects.filter(said__contains=PHRASE).exists(),
            "history": LogEntry.objects.filter(object_repr=CALLER).exists(),
        }.items()
        if exists
    }
    assert len(where(ADA_TRACES)) > 10
    bob_before = sorted(where((BOB_PHRASE, "4155550777", BOB_SLACK)))
    before = accounts()

    out = StringIO()
    call_command("erase_caller", "(415) 555-1234", f"req-{ADA_REQUEST_ID}", ADA_SLACK, stdout=out)

    assert where(ADA_TRACES) == []
    assert sorted(where((BOB_PHRASE, "4155550777", BOB_SLACK))) == bob_before
    assert accounts() == before
    assert "Erased:" in out.getvalue() and "transcript lines" in out.getvalue()
    assert PHRASE not in out.getvalue() and "4155551234" not in out.getvalue()
    # Her call stays as an anonymous row, its costs whole.
    call.refresh_from_db()
    assert call.cost_usd > Decimal(0) and call.principal_caller_id == "" and call.summary == ""


@pytest.mark.parametrize(
    ("channel", "named", "other_id"),
    [("vapi", "+1 (415) 555-1234", "call-abc"), ("elevenlabs", "elevenlabs-user-42", "conv-conv_abc")],
)
def test_the_ids_a_call_had_before_its_caller_was_known_are_erased_too(team, channel, named, other_id):
    """A VAPI call is `call-<id>` until its number is known, an ElevenLabs conversation `conv-<id>`
    until its user is: their sessions name the call, so erasing the caller finds those too."""
    from tests.factories import make_message, make_process, make_session

    caller = CALLER if channel == "vapi" else named
    call_id = "abc" if channel == "vapi" else "conv_abc"
    make_session(caller, make_process(team["tony"]), channel=channel, provider_call_id=call_id)
    earlier = make_session(other_id, make_process(team["tony"]), channel=channel, provider_call_id=call_id)
    make_message(earlier.process, "user", PHRASE)
    bob = make_session(BOB_PHONE, make_process(team["tony"]), channel="vapi", provider_call_id="other")

    call_command("erase_caller", named, stdout=StringIO())

    assert list(CallerSession.objects.values_list("pk", flat=True)) == [bob.pk]
    assert not Message.objects.exists()


def test_a_slack_user_is_erased_after_retention_pruned_their_slack_messages(team):
    """Slack messages are kept shorter than transcripts and notes: once pruned, the turns that ran for the
    user and the conversations opened for them still lead to their threads, their words and their notes."""
    from tests.factories import make_message, make_process, make_session

    dm = make_session("slack-T1-D0ZED-1.0", make_process(team["tony"], principal_name="Slack user U0ZED"))
    make_message(dm.process, "user", "my locker code is zebra-99")
    CallerMemory.objects.create(caller_id=dm.caller_id, notes="- Zed, locker code zebra-99")
    thread = make_session("slack-T1-C0TEAM-2.0", make_process(team["tony"]))
    make_turn(
        thread, lease_until=ago(seconds=600), state=Turn.State.ANSWERED, principal="member (Slack user U0ZED)"
    )
    make_message(thread.process, "user", "zebra-99 again, in the team channel")
    bob = make_session(BOB_PHONE, make_process(team["tony"]))

    call_command("erase_caller", "U0ZED", stdout=StringIO())

    assert where(["zebra-99", "D0ZED", "U0ZED"]) == []
    assert list(CallerSession.objects.values_list("pk", flat=True)) == [bob.pk]


def test_a_caller_in_a_turn_is_refused_and_nothing_is_erased(team):
    from tests.factories import make_process, make_session

    session = make_session(CALLER, make_process(team["tony"]))
    make_turn(session, lease_until=ago(seconds=-60))
    with pytest.raises(CommandError, match="waiting or running"):
        call_command("erase_caller", CALLER, stdout=StringIO())
    assert CallerSession.objects.filter(caller_id=CALLER).exists() and Turn.objects.exists()


def test_a_turn_lost_with_its_server_is_ended_before_its_caller_is_erased(team):
    """Its open model call is closed and counted and its hold given back, as the caller's next turn would:
    the erasure deletes the turn, and nothing would close the call after that."""
    from datetime import UTC

    from agents.models import DailySpend
    from tests.factories import make_llm_call, make_process, make_session

    session = make_session(CALLER, make_process(team["tony"]))
    turn = make_turn(
        session, lease_until=ago(seconds=60), started_at=ago(seconds=90), held_usd=Decimal("0.01")
    )
    call = make_llm_call(session.process, turn=turn, output_tokens=0, duration_ms=0)  # open
    today = turn.started_at.astimezone(UTC).date()
    DailySpend.objects.create(persona=team["tony"], day=today, reserved_usd=Decimal("0.01"))

    call_command("erase_caller", CALLER, stdout=StringIO())

    call.refresh_from_db()
    assert (call.finish_reason, call.finished_at is not None) == ("lost", True)
    assert Process.objects.get(pk=session.process_id).llm_calls == 1
    assert DailySpend.objects.get().reserved_usd == 0
    assert not Turn.objects.exists()


def test_naming_nobody_is_refused():
    with pytest.raises(CommandError, match="Name the caller"):
        call_command("erase_caller", " ", stdout=StringIO())


def test_the_admin_action_asks_first_and_only_superusers_have_it(team, admin_client, client):
    from tests.factories import make_message, make_process, make_session

    ada = make_session(CALLER, make_process(team["tony"], principal_caller_id=CALLER))
    make_message(ada.process, "user", PHRASE)
    bob = make_session(BOB_PHONE, make_process(team["tony"]))
    url = reverse("admin:agents_callersession_changelist")
    chosen = {"action": "erase_callers", "_selected_action": [ada.pk]}

    confirm = admin_client.post(url, chosen)
    assert confirm.status_code == 200 and "Yes, erase them" in confirm.text and CALLER in confirm.text
    assert CallerSession.objects.filter(pk=ada.pk).exists()  # nothing happens before the confirmation

    done = admin_client.post(url, {**chosen, "post": "yes"}, follow=True)
    assert "Erased 1 caller(s)" in done.text
    assert not CallerSession.objects.filter(caller_id=CALLER).exists()
    assert not Message.objects.filter(content=PHRASE).exists()
    assert CallerSession.objects.filter(pk=bob.pk).exists()

    # A staff member who may change sessions, but is no superuser, is not offered it.
    staff = User.objects.create_user("op", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_callersession", "change_callersession"])
    )
    client.force_login(staff)
    listing = client.get(url)
    assert listing.status_code == 200 and "erase_callers" not in listing.text
    client.post(url, {"action": "erase_callers", "_selected_action": [bob.pk], "post": "yes"})
    assert CallerSession.objects.filter(pk=bob.pk).exists()
