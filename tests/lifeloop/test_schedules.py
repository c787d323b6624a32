"""The schedules: created from each persona's settings in its time zone, updated when it is edited, and
run once per slot under frozen time, with two workers and after downtime (django-q2's own scheduler and
worker code, in this process)."""

import multiprocessing
import queue
import threading
from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connections
from django.urls import reverse
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage
from django_q.worker import worker

from lifeloop.models import ActivityRun
from lifeloop.schedules import TASK
from tests.factories import make_persona

ONLY_NEWS = {"goals": [], "team_check": [], "reflection": [], "journal": [], "post": []}


def at(*args):
    return datetime(*args, tzinfo=UTC)


def life_schedules(persona=None):
    rows = Schedule.objects.filter(func=TASK).order_by("name")
    if persona is not None:
        rows = rows.filter(args__startswith=f"{persona.pk},")
    return {s.name: (s.cron, s.next_run) for s in rows}


def setup_schedules():
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    return out.getvalue()


@pytest.fixture
def queued(monkeypatch):
    """django-q2 with its database broker, as in production: the scheduler enqueues, workers run."""
    monkeypatch.setattr(Conf, "SYNC", False)
    broker = get_broker()
    broker.purge_queue()
    return broker


def take_tasks(broker) -> list[dict]:
    return [SignedPackage.loads(payload) for _ack, payload in broker.dequeue() or []]


def work(task: dict) -> dict:
    """One django-q2 worker (its own `worker` loop) running one task, in this thread."""
    tasks, results = queue.Queue(), queue.Queue()
    tasks.put(dict(task))
    tasks.put("STOP")
    try:
        worker(tasks, results, multiprocessing.Value("f", -1))
    finally:
        connections.close_all()
    return results.get_nowait()


@pytest.mark.django_db
def test_setup_schedules_creates_each_personas_schedules_in_its_time_zone():
    with time_machine.travel(at(2026, 3, 3, 4, 0)):
        tony = make_persona(name="Tony", life_enabled=True)
        maya = make_persona(
            name="Maya", life_enabled=True, time_zone="America/New_York", life_schedule=ONLY_NEWS
        )
        make_persona(name="Off", life_enabled=False)
        make_persona(name="Gone", life_enabled=True, enabled=False)
        Schedule.objects.filter(func=TASK).delete()  # as on a database from before the life loop

        out = setup_schedules()

        assert "create: life: Tony news (0 6,12,18 * * * UTC)" in out
        assert "create: life: Maya news (0 11,17,23 * * * UTC)" in out  # 6, 12, 18 in New York (UTC-5)
        assert life_schedules(tony) == {
            "life: Tony goals": ("0 9 * * *", at(2026, 3, 3, 9)),
            "life: Tony journal": ("0 18,22 * * *", at(2026, 3, 3, 18)),
            "life: Tony news": ("0 6,12,18 * * *", at(2026, 3, 3, 6)),
            "life: Tony post": ("0 8,12,17,20 * * *", at(2026, 3, 3, 8)),
            "life: Tony reflection": ("0 15,21 * * *", at(2026, 3, 3, 15)),
            "life: Tony team_check": ("0 10,14,17 * * *", at(2026, 3, 3, 10)),
        }
        assert life_schedules(maya) == {"life: Maya news": ("0 11,17,23 * * *", at(2026, 3, 3, 11))}
        assert len(life_schedules()) == 7

        again = setup_schedules()
        assert "life:" not in again  # nothing changed
        assert len(life_schedules()) == 7


@pytest.mark.django_db
def test_setup_schedules_dry_run_writes_nothing():
    make_persona(name="Tony", life_enabled=True)
    Schedule.objects.filter(func=TASK).delete()
    out = StringIO()
    call_command("setup_schedules", "--dry-run", stdout=out)
    assert "would create: life: Tony news" in out.getvalue()
    assert not Schedule.objects.filter(func=TASK).exists()


@pytest.mark.django_db
def test_schedules_of_deleted_personas_and_duplicates_are_removed():
    tony = make_persona(name="Tony", life_enabled=True, life_schedule=ONLY_NEWS)
    Schedule.objects.create(
        func=TASK, args="999, 'news'", name="life: Ghost news", schedule_type="C", cron="0 6 * * *"
    )
    Schedule.objects.create(
        func=TASK, args=f"{tony.pk}, 'news'", name="copy", schedule_type="C", cron="0 1 * * *"
    )
    out = setup_schedules()
    assert "delete: life: Ghost news" in out
    assert list(life_schedules()) == ["life: Tony news"]


@pytest.mark.django_db
def test_editing_a_persona_in_the_admin_updates_its_schedules(admin_client, client):
    with time_machine.travel(at(2026, 3, 3, 4, 0)):
        tony = make_persona(name="Tony", role="CTO", life_enabled=True, life_schedule=ONLY_NEWS, sort_order=1)
        form = {
            "name": "Tony",
            "role": "CTO",
            "kind": "executive",
            "reports_to": "",
            "enabled": "on",
            "life_enabled": "on",
            "sort_order": "1",
            "system_prompt": "You are Tony.",
            "tone": "",
            "focus_areas": "",
            "model": "",
            "temperature": "",
            "budget_usd": "",
            "schedule_news": "7",
            "schedule_post": "9, 21",
            "time_zone": "Europe/Berlin",
            "news_feeds": "",
            "directives-TOTAL_FORMS": "0",
            "directives-INITIAL_FORMS": "0",
        }
        url = reverse("admin:agents_persona_change", args=[tony.pk])
        assert admin_client.post(url, form).status_code == 302
        # Defaults for the activities the schedule leaves out; hours of Berlin (UTC+1 in March).
        assert life_schedules(tony)["life: Tony news"] == ("0 6 * * *", at(2026, 3, 3, 6))
        assert life_schedules(tony)["life: Tony post"] == ("0 8,20 * * *", at(2026, 3, 3, 8))
        assert len(life_schedules(tony)) == 6
        assert client.get("/api/status").json()["active_personas"] == ["Tony"]

        form.pop("life_enabled")  # unticked
        assert admin_client.post(url, form).status_code == 302
        assert life_schedules(tony) == {}
        assert client.get("/api/status").json()["active_personas"] == []


@pytest.mark.django_db
def test_the_changelists_life_loop_switch_updates_the_schedules(admin_client):
    tony = make_persona(name="Tony", life_enabled=True)
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(tony.pk),
        "form-0-enabled": "on",
        "_save": "Save",
    }
    response = admin_client.post(reverse("admin:agents_persona_changelist"), form)
    assert response.status_code == 302
    tony.refresh_from_db()
    assert tony.life_enabled is False
    assert life_schedules(tony) == {}


@pytest.mark.django_db
def test_deleting_a_persona_deletes_its_schedules():
    tony = make_persona(name="Tony", life_enabled=True)
    assert life_schedules(tony)
    tony.delete()
    assert life_schedules() == {}


def test_a_slot_runs_once_with_two_workers(llm, queued):
    llm.reset(tokens=["Today I read."], header_delay=0.5)  # slow enough for the two runs to overlap
    with time_machine.travel(at(2026, 3, 3, 17, 0), tick=True) as clock:
        tony = make_persona(
            name="Tony", life_enabled=True, life_schedule={**ONLY_NEWS, "news": [], "journal": [18]}
        )
        assert life_schedules(tony) == {"life: Tony journal": ("0 18 * * *", at(2026, 3, 3, 18))}

        clock.move_to(at(2026, 3, 3, 18, 0, 5))
        scheduler(queued)
        scheduler(queued)  # a second cluster's scheduler: nothing is due any more
        [task] = take_tasks(queued)

        # The broker hands the same task to two workers (a redelivery after a lost acknowledgement).
        results = []
        threads = [threading.Thread(target=lambda: results.append(work(task))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    run = ActivityRun.objects.get()
    assert (run.activity, run.trigger, run.slot, run.status) == (
        "journal",
        "schedule",
        at(2026, 3, 3, 18),
        "completed",
    )
    assert len(llm.requests) == 1
    outcomes = sorted(result["result"] for result in results)
    assert all(result["success"] for result in results)
    assert outcomes == [
        "Tony journal 2026-03-03 18:00 UTC: Skipped: this slot ran already.",
        "Tony journal 2026-03-03 18:00 UTC: Today I read.",
    ]
    assert Schedule.objects.get(func=TASK).next_run == at(2026, 3, 4, 18)


def test_after_downtime_a_missed_slot_runs_once_and_there_is_no_catch_up(llm, queued):
    llm.reset(tokens=["Back again."])
    with time_machine.travel(at(2026, 3, 1, 5, 0), tick=True) as clock:
        tony = make_persona(
            name="Tony", life_enabled=True, life_schedule={**ONLY_NEWS, "journal": [6, 12, 18], "news": []}
        )
        assert life_schedules(tony)["life: Tony journal"][1] == at(2026, 3, 1, 6)

        clock.move_to(at(2026, 3, 3, 13, 30))  # down for two and a half days: seven slots missed
        scheduler(queued)
        tasks = take_tasks(queued)
        assert len(tasks) == 1
        assert work(tasks[0])["result"] == "Tony journal 2026-03-03 12:00 UTC: Back again."

        scheduler(queued)
        assert take_tasks(queued) == []
        assert Schedule.objects.get(func=TASK).next_run == at(2026, 3, 3, 18)

    run = ActivityRun.objects.get()
    assert (run.slot, run.status) == (at(2026, 3, 3, 12), "completed")


def test_the_first_slot_after_the_clocks_change_runs_at_its_local_hour(llm, queued):
    """New York moves to summer time at 2:00 on 8 March 2026: 18:00 there is 23:00 UTC before, 22:00 after."""
    llm.reset(tokens=["Evening entry."])
    with time_machine.travel(at(2026, 3, 7, 22, 0), tick=True) as clock:
        maya = make_persona(
            name="Maya",
            life_enabled=True,
            time_zone="America/New_York",
            life_schedule={**ONLY_NEWS, "news": [], "journal": [18]},
        )
        assert life_schedules(maya) == {"life: Maya journal": ("0 23 * * *", at(2026, 3, 7, 23))}

        clock.move_to(at(2026, 3, 7, 23, 0, 5))
        scheduler(queued)
        [task] = take_tasks(queued)
        # From its cron alone django-q2 has set the next run to 23:00 UTC again; the run corrects it.
        assert Schedule.objects.get(func=TASK).next_run == at(2026, 3, 8, 23)
        work(task)
        assert life_schedules(maya) == {"life: Maya journal": ("0 22 * * *", at(2026, 3, 8, 22))}

        clock.move_to(at(2026, 3, 8, 22, 0, 5))
        scheduler(queued)
        [task] = take_tasks(queued)
        work(task)

    slots = list(ActivityRun.objects.order_by("slot").values_list("slot", flat=True))
    assert slots == [at(2026, 3, 7, 23), at(2026, 3, 8, 22)]  # 18:00 EST, then 18:00 EDT


def test_a_task_for_a_persona_switched_off_meanwhile_does_nothing(llm):
    from lifeloop.tasks import run_scheduled

    tony = make_persona(name="Tony", life_enabled=True)
    tony.life_enabled = False
    tony.save()
    assert run_scheduled(tony.pk, "news") == "Tony has no news schedule now."
    assert run_scheduled(12345, "news") == "No such persona."
    assert not ActivityRun.objects.exists() and llm.requests == []


@pytest.mark.django_db
def test_a_schedule_already_due_is_left_for_the_scheduler():
    with time_machine.travel(at(2026, 3, 3, 5, 0), tick=True) as clock:
        tony = make_persona(name="Tony", life_enabled=True, life_schedule=ONLY_NEWS)
        clock.move_to(at(2026, 3, 3, 6, 0, 10))  # due at 6:00; the scheduler has not looked yet
        setup_schedules()
        tony.save()
        assert life_schedules(tony)["life: Tony news"][1] == at(2026, 3, 3, 6)


def test_a_run_left_running_by_a_dead_worker_is_marked_failed_by_the_next(llm):
    from lifeloop.runner import run_activity

    tony = make_persona(name="Tony", life_enabled=True)
    with time_machine.travel(at(2026, 3, 3, 6, 0)):
        stalled = ActivityRun.objects.create(persona=tony, activity="journal", status="running")
    llm.reset(tokens=["Entry."])
    with time_machine.travel(at(2026, 3, 3, 7, 0), tick=True):
        assert run_activity(tony, "journal").status == "completed"
    stalled.refresh_from_db()
    assert (stalled.status, stalled.error) == (
        "failed",
        "Stopped before it finished (the worker timed out or restarted).",
    )
