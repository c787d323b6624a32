from io import StringIO

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from agents.models import CallerSession
from agents.tasks import sweep_idle_sessions
from tests.factories import ago, make_process, make_session

pytestmark = pytest.mark.django_db


def test_setup_schedules_creates_the_idle_sweep_once():
    call_command("setup_schedules", stdout=StringIO())
    call_command("setup_schedules", stdout=StringIO())
    schedule = Schedule.objects.get(name="agents: end idle sessions")
    assert schedule.func == "agents.tasks.sweep_idle_sessions"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_setup_schedules_removes_hand_made_duplicates():
    Schedule.objects.create(name="agents: end idle sessions", func="x.y", schedule_type=Schedule.HOURLY)
    Schedule.objects.create(name="agents: end idle sessions", func="x.y", schedule_type=Schedule.HOURLY)
    call_command("setup_schedules", stdout=StringIO())
    assert Schedule.objects.get(name="agents: end idle sessions").func == "agents.tasks.sweep_idle_sessions"


def test_dry_run_writes_nothing():
    out = StringIO()
    call_command("setup_schedules", "--dry-run", stdout=out)
    assert "create: agents: end idle sessions" in out.getvalue()
    assert not Schedule.objects.exists()


def test_the_sweep_task_ends_idle_sessions(tony, settings):
    settings.TRON_SESSION_IDLE_MINUTES = 30
    make_session("idle", process=make_process(tony), last_seen_at=ago(minutes=31))
    make_session("fresh", process=make_process(tony), last_seen_at=ago(minutes=29))
    assert sweep_idle_sessions() == "ended 0 lost turn(s) and 1 idle session(s)"
    idle = CallerSession.objects.get(caller_id="idle")
    assert idle.ended_at is not None
    assert idle.process.status == "completed"
    assert CallerSession.objects.get(caller_id="fresh").ended_at is None
