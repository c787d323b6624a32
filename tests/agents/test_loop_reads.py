"""The session lookup made on the event loop (SQLite) answers exactly as the ORM's does."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from agents import loop_reads
from agents.callers import Caller
from agents.models import Process
from agents.sessions import continuing_session, idle_cutoff
from tests.factories import ago, make_persona, make_process, make_session

# The lookup reads on a connection of its own, which sees committed rows only.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the loop read serves SQLite only"),
]

CALLER = "+14155551234"


@pytest.fixture
def tony(transactional_db):
    return make_persona(name="Tony")


def both(persona):
    """(the loop read's answer, the ORM's answer) for CALLER and `persona`."""
    return (
        loop_reads.continuing_session(CALLER, persona, idle_cutoff()),
        continuing_session(Caller(caller_id=CALLER), persona),
    )


def test_a_caller_without_a_session_has_none(tony):
    assert both(tony) == (None, None)


def test_an_open_fresh_session_of_the_persona_is_continued(tony):
    session = make_session(CALLER, make_process(tony))
    found, expected = both(tony)
    assert expected == session
    assert (found.pk, found.process.pk, found.process.public_id) == (
        session.pk,
        session.process.pk,
        session.process.public_id,
    )
    assert found.caller_id == CALLER


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"last_seen_at": ago(minutes=31)}, id="idle past the cutoff"),
        pytest.param({"ended_at": ago(minutes=1)}, id="ended"),
    ],
)
def test_a_session_that_is_idle_or_ended_is_not_continued(tony, change):
    make_session(CALLER, make_process(tony), **change)
    assert both(tony) == (None, None)


def test_a_session_whose_process_an_operator_failed_is_not_continued(tony):
    session = make_session(CALLER, make_process(tony))
    session.process.finish(Process.Status.FAILED, "stopped by an operator")
    assert both(tony) == (None, None)


def test_a_session_with_another_persona_is_not_continued(tony):
    make_session(CALLER, make_process(make_persona(name="Maya")))
    assert both(tony) == (None, None)


def test_the_cutoff_is_compared_as_the_orm_compares_it(tony):
    now = timezone.now()
    make_session(CALLER, make_process(tony), last_seen_at=now)
    assert loop_reads.continuing_session(CALLER, tony, now) is not None
    assert loop_reads.continuing_session(CALLER, tony, now + timedelta(microseconds=1)) is None


def test_an_unreadable_database_sends_the_turn_to_the_orm(tony, monkeypatch, tmp_path):
    monkeypatch.setitem(connection.settings_dict, "NAME", str(tmp_path / "missing" / "db.sqlite3"))
    assert loop_reads.continuing_session(CALLER, tony, idle_cutoff()) is loop_reads.UNKNOWN
