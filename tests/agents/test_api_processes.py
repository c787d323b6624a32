import re
from decimal import Decimal

import pytest

from agents.models import Channel
from tests.factories import ago, make_process, make_session

pytestmark = pytest.mark.django_db


def test_it_lists_every_field_the_spec_names(client, tony):
    process = make_process(
        tony,
        name="tony-main",
        task="Handle incoming voice call",
        input_tokens=15420,
        output_tokens=8230,
        llm_calls=12,
        tool_calls=8,
        cost_usd=Decimal("0.0945"),
        started_at=ago(seconds=125),
    )

    [row] = client.get("/api/processes").json()

    assert row["id"] == process.public_id
    assert re.fullmatch(r"[0-9a-f]{8}", row["id"])
    assert row["agent"] == "Tony"
    assert row["name"] == "tony-main"
    assert row["status"] == "running"
    assert row["task"] == "Handle incoming voice call"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["started_at"])
    metrics = row["metrics"]
    assert metrics["input_tokens"] == 15420
    assert metrics["output_tokens"] == 8230
    assert metrics["total_tokens"] == 23650
    assert metrics["llm_calls"] == 12
    assert metrics["tool_calls"] == 8
    assert metrics["estimated_cost"] == pytest.approx(0.0945)
    assert isinstance(metrics["estimated_cost"], float)
    assert 125_000 <= metrics["duration_ms"] < 135_000


def test_started_at_is_utc(client, tony, settings):
    settings.TIME_ZONE = "America/New_York"
    make_process(tony, started_at="2024-01-15T10:30:00+00:00")
    assert client.get("/api/processes").json()[0]["started_at"] == "2024-01-15T10:30:00Z"


def test_duration_of_a_finished_process_stops_at_its_finish(client, tony):
    make_process(tony, status="completed", started_at=ago(hours=2), finished_at=ago(hours=1))
    duration = client.get("/api/processes").json()[0]["metrics"]["duration_ms"]
    assert 3_599_000 <= duration <= 3_601_000


def test_newest_first(client, tony):
    old = make_process(tony, started_at=ago(hours=3))
    new = make_process(tony, started_at=ago(minutes=1))
    middle = make_process(tony, started_at=ago(hours=1))
    ids = [row["id"] for row in client.get("/api/processes").json()]
    assert ids == [new.public_id, middle.public_id, old.public_id]


def test_filters_by_status(client, tony):
    make_process(tony, status="running")
    done = make_process(tony, status="completed")
    rows = client.get("/api/processes?status=completed").json()
    assert [row["id"] for row in rows] == [done.public_id]


def test_filters_by_agent_ignoring_case(client, tony, maya):
    make_process(tony)
    hers = make_process(maya)
    rows = client.get("/api/processes?agent=maya").json()
    assert [row["id"] for row in rows] == [hers.public_id]


def test_unknown_agent_gives_an_empty_list(client, tony):
    make_process(tony)
    response = client.get("/api/processes?agent=nobody")
    assert response.status_code == 200
    assert response.json() == []
    assert response["X-Total-Count"] == "0"


def test_pages_with_limit_and_offset_and_reports_the_total(client, tony):
    processes = [make_process(tony, started_at=ago(minutes=i)) for i in range(5)]
    response = client.get("/api/processes?limit=2&offset=1")
    assert [row["id"] for row in response.json()] == [p.public_id for p in processes[1:3]]
    assert response["X-Total-Count"] == "5"


def test_default_page_is_bounded(client, tony, settings):
    settings.TRON_API_PAGE_SIZE = 3
    for _ in range(5):
        make_process(tony)
    response = client.get("/api/processes")
    assert len(response.json()) == 3
    assert response["X-Total-Count"] == "5"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=sleeping", "status"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("offset=-1", "offset"),
        ("limit=abc", "limit"),
    ],
)
def test_bad_filters_get_a_400_naming_the_parameter(client, tony, query, param):
    response = client.get(f"/api/processes?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


def test_no_n_plus_one_queries(client, tony, maya, django_assert_num_queries):
    for i in range(30):
        make_process(tony if i % 2 else maya, channel=Channel.SLACK)
    with django_assert_num_queries(2):  # count + one page with personas joined
        response = client.get("/api/processes?limit=30")
    assert len(response.json()) == 30


def test_completed_processes_are_listed_with_their_caller_sessions_untouched(client, tony):
    process = make_process(tony, status="completed", finished_at=ago(seconds=1))
    make_session("+14155550100", process=process, ended_at=ago(seconds=1))
    assert client.get("/api/processes").json()[0]["status"] == "completed"


def test_an_absurd_offset_is_a_400_not_a_500(client):
    response = client.get("/api/processes?offset=99999999999999999999")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "offset"
