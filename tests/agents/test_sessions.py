"""Caller sessions: which session a turn continues, and when a new one starts. (Who may run a turn now
is the Turn rows' business: tests/agents/test_engine.py.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.callers import Caller
from agents.models import CallerSession, Process
from agents.principals import Principal, Trust
from agents.sessions import open_session
from tests.factories import make_persona, make_process, make_session

pytestmark = pytest.mark.django_db

CALLER = Caller("+14155550100")
PUBLIC = Principal(Trust.PUBLIC, CALLER.caller_id)


def ago(**delta):
    return timezone.now() - timedelta(**delta)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("none", "new"),  # a first call
        ("open", "same"),  # the conversation goes on
        ("idle", "new"),  # past TRON_SESSION_IDLE_MINUTES: a new conversation
        ("other persona", "new"),
        ("process ended", "new"),  # an operator failed it
        ("ended", "new"),
    ],
)
def test_which_session_a_turn_continues(state, outcome, settings):
    settings.TRON_SESSION_IDLE_MINUTES = 30
    tony, maya = make_persona(name="Tony"), make_persona(name="Maya")
    existing = None
    if state != "none":
        persona = maya if state == "other persona" else tony
        process = make_process(persona, finished_at=timezone.now() if state == "process ended" else None)
        existing = make_session(
            CALLER.caller_id,
            process,
            last_seen_at=ago(minutes=31) if state == "idle" else ago(minutes=1),
            ended_at=ago(minutes=1) if state == "ended" else None,
        )

    session = open_session(CALLER, tony, principal=PUBLIC, task="a task")

    assert (existing is not None and session.pk == existing.pk) is (outcome == "same")
    assert session.last_seen_at > ago(seconds=5)
    assert CallerSession.objects.open().filter(caller_id=CALLER.caller_id).get() == session  # one open
    if existing is not None and outcome == "new" and state != "ended":
        existing.refresh_from_db()
        assert existing.ended_at is not None  # the stale one was ended, its process finished
        assert Process.objects.get(pk=existing.process_id).finished_at is not None
    if outcome == "new":
        process = session.process
        assert (process.task, process.status, process.trust, process.principal_caller_id) == (
            "a task",
            "running",
            Trust.PUBLIC,
            CALLER.caller_id,
        )
