import pytest
from django.db import IntegrityError, transaction

from agents.models import CallerSession
from tests.factories import ago, make_process, make_session

pytestmark = pytest.mark.django_db


def test_it_lists_open_sessions_with_their_process(client, tony):
    process = make_process(tony)
    make_session("+14155551234", process=process)

    [row] = client.get("/api/sessions").json()

    assert row["caller_id"] == "+14155551234"
    assert row["process_id"] == process.public_id
    assert row["agent"] == "Tony"
    assert row["status"] == "running"


def test_ended_sessions_are_hidden_unless_asked_for(client, tony):
    make_session("+14155550001", process=make_process(tony), ended_at=ago(minutes=5))
    make_session("+14155550002", process=make_process(tony))
    assert [r["caller_id"] for r in client.get("/api/sessions").json()] == ["+14155550002"]
    rows = client.get("/api/sessions?include_ended=true").json()
    assert {r["caller_id"] for r in rows} == {"+14155550001", "+14155550002"}


def test_most_recently_active_first(client, tony):
    make_session("a", process=make_process(tony), last_seen_at=ago(minutes=10))
    make_session("b", process=make_process(tony), last_seen_at=ago(minutes=1))
    assert [r["caller_id"] for r in client.get("/api/sessions").json()] == ["b", "a"]


def test_filters_by_status_and_agent(client, tony, maya):
    make_session("tony-caller", process=make_process(tony, status="running"))
    make_session("maya-caller", process=make_process(maya, status="pending"))
    assert [r["caller_id"] for r in client.get("/api/sessions?agent=MAYA").json()] == ["maya-caller"]
    assert [r["caller_id"] for r in client.get("/api/sessions?status=running").json()] == ["tony-caller"]


def test_pages_and_counts(client, tony):
    for i in range(4):
        make_session(f"caller-{i}", process=make_process(tony), last_seen_at=ago(minutes=i))
    response = client.get("/api/sessions?limit=1&offset=2")
    assert [r["caller_id"] for r in response.json()] == ["caller-2"]
    assert response["X-Total-Count"] == "4"


def test_bad_status_is_a_400(client):
    response = client.get("/api/sessions?status=nope")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "status"


def test_no_n_plus_one_queries(client, tony, django_assert_num_queries):
    for i in range(25):
        make_session(f"caller-{i}", process=make_process(tony))
    with django_assert_num_queries(2):
        assert len(client.get("/api/sessions").json()) == 25


def test_one_open_session_per_caller_is_enforced_by_the_database(tony):
    make_session("+14155551234", process=make_process(tony))
    with pytest.raises(IntegrityError), transaction.atomic():
        CallerSession.objects.create(caller_id="+14155551234", process=make_process(tony))


def test_a_caller_may_have_many_ended_sessions_and_one_open(tony):
    make_session("+14155551234", process=make_process(tony), ended_at=ago(days=2))
    make_session("+14155551234", process=make_process(tony), ended_at=ago(days=1))
    make_session("+14155551234", process=make_process(tony))
    assert CallerSession.objects.filter(caller_id="+14155551234").count() == 3
