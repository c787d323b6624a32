import re

import pytest

from agents.models import Process
from agents.validators import LIFE_ACTIVITIES
from tests.factories import make_persona, make_process, make_session


@pytest.mark.django_db
def test_status_reports_counts_personas_and_life_loops(client, tony, maya):
    make_process(tony, status=Process.Status.RUNNING)
    make_process(maya, status=Process.Status.PENDING)
    make_process(maya, status=Process.Status.COMPLETED)
    make_session("+14155550001", process=make_process(tony))
    make_session("+14155550002", process=make_process(tony), ended_at="2024-01-01T00:00:00Z")

    body = client.get("/api/status").json()

    assert body["status"] == "ok"
    assert body["process_count"] == 4  # pending + running, not completed
    assert body["session_count"] == 1  # ended sessions don't count
    assert body["personas"] == ["Tony", "Maya"]
    assert body["active_personas"] == ["Tony"]


@pytest.mark.django_db
def test_active_personas_are_those_with_a_life_loop_that_is_scheduled(client, tony):
    from django_q.models import Schedule

    make_persona(name="Idle", life_enabled=True, life_schedule={a: [] for a in LIFE_ACTIVITIES})
    unscheduled = make_persona(name="Lost", life_enabled=True)
    make_persona(name="Off", life_enabled=False)
    Schedule.objects.filter(args__startswith=f"{unscheduled.pk},").delete()  # say, by hand in the admin

    assert client.get("/api/status").json()["active_personas"] == ["Tony"]


@pytest.mark.django_db
def test_status_uptime_reads_like_go_durations(client):
    uptime = client.get("/api/status").json()["uptime"]
    assert re.fullmatch(r"(\d+h\d+m\d+s|\d+m\d+s|\d+s)", uptime)


@pytest.mark.django_db
def test_disabled_personas_are_not_listed(client, tony):
    make_persona(name="Ghost", enabled=False, life_enabled=True)
    body = client.get("/api/status").json()
    assert body["personas"] == ["Tony"]
    assert body["active_personas"] == ["Tony"]


@pytest.mark.django_db
def test_status_query_count_does_not_grow_with_rows(client, tony, django_assert_num_queries):
    for _ in range(20):
        make_process(tony)
    with django_assert_num_queries(4):  # personas, life-loop schedules, processes, sessions
        client.get("/api/status")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (59, "59s"), (61, "1m1s"), (3600, "1h0m0s"), (9015, "2h30m15s"), (90000, "25h0m0s")],
)
def test_uptime_format(seconds, expected):
    from agents.api import format_uptime

    assert format_uptime(seconds) == expected


@pytest.mark.django_db
def test_health_is_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
