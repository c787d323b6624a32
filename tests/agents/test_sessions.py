"""Caller sessions: which session a turn claims, when it must wait, and when a new one starts."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from agents.callers import Caller
from agents.models import CallerSession, Process
from agents.sessions import CLAIM_SECONDS, claim_session, open_session, read_open_session, release_session
from tests.factories import make_persona, make_process, make_session

pytestmark = pytest.mark.django_db

CALLER = Caller("+14155550100")


def ago(**delta):
    return timezone.now() - timedelta(**delta)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("none", "new"),  # a first call
        ("open", "same"),  # the conversation goes on
        ("claimed", "wait"),  # the caller's previous turn still runs
        ("claim lapsed", "same"),  # its server died mid-turn
        ("idle", "new"),  # past TRON_SESSION_IDLE_MINUTES: a new conversation
        ("other persona", "new"),
        ("process ended", "new"),  # an operator failed it
        ("ended", "new"),
    ],
)
def test_which_session_a_turn_claims(state, outcome, settings):
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
            turn_claimed_until={
                "claimed": timezone.now() + timedelta(minutes=5),
                "claim lapsed": ago(seconds=1),
            }.get(state),
        )

    session, created = claim_session(CALLER, tony, task="a task")

    if outcome == "wait":
        assert (session, created) == (None, False)
        return
    assert created is (outcome == "new")
    assert (existing is not None and session.pk == existing.pk) is (outcome == "same")
    assert session.turn_claimed_until > timezone.now() + timedelta(seconds=CLAIM_SECONDS - 5)
    assert CallerSession.objects.open().filter(caller_id=CALLER.caller_id).get() == session  # one open
    if existing is not None and outcome == "new" and state != "ended":
        existing.refresh_from_db()
        assert existing.ended_at is not None  # the stale one was ended, its process finished
        assert Process.objects.get(pk=existing.process_id).finished_at is not None
    if created:
        assert (session.process.task, session.process.status) == ("a task", "running")


def test_a_released_session_is_claimed_again():
    tony = make_persona()
    session, _ = claim_session(CALLER, tony)
    assert claim_session(CALLER, tony) == (None, False)

    release_session(session)

    again, created = claim_session(CALLER, tony)
    assert (again.pk, created) == (session.pk, False)


def test_opening_a_session_does_not_claim_it():
    tony = make_persona()
    session = open_session(CALLER, tony, task="call")

    assert session.turn_claimed_until is None
    claimed, created = claim_session(CALLER, tony)
    assert (claimed.pk, created) == (session.pk, False)
    assert open_session(CALLER, tony).pk == session.pk  # also while a turn holds it


@pytest.mark.parametrize(
    ("before", "between", "outcome"),
    [
        ("none", "nothing", "new"),
        ("none", "another turn opened one", "refused"),
        ("open", "nothing", "same"),
        ("open", "another turn came and went", "refused"),
        ("other persona", "nothing", "new"),  # the stale session is ended, as without a reading
        ("other persona", "another turn opened one", "refused"),
    ],
)
def test_a_claim_of_what_was_read_is_refused_when_the_conversation_moved_on(before, between, outcome):
    """The engine reads the session before calling the model and claims it at the model's first token:
    a turn of the same caller that came between makes the claim fail (the turn then reads again)."""
    tony, maya = make_persona(name="Tony"), make_persona(name="Maya")
    if before != "none":
        make_session(CALLER.caller_id, make_process(maya if before == "other persona" else tony))
    seen = read_open_session(CALLER, tony)
    if between == "another turn opened one":
        claim_session(CALLER, maya if before == "none" else tony)
    elif between == "another turn came and went":
        session, _ = claim_session(CALLER, tony)
        release_session(session)

    with transaction.atomic():  # as begin_turn claims: a refused insert rolls back the whole block
        session, created = claim_session(CALLER, tony, seen=seen)

    if outcome == "refused":
        assert (session, created) == (None, False)
    else:
        assert created is (outcome == "new")
        if outcome == "same":
            assert session.pk == seen.session.pk
    assert CallerSession.objects.open().filter(caller_id=CALLER.caller_id).count() == 1
