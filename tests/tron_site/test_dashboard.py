"""The admin's home page is the live dashboard; /admin/dashboard/ is the fragment it polls."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lifeloop.models import ActivityRun
from tests.factories import make_llm_call, make_process, make_session

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
DASHBOARD = "/admin/dashboard/"


def section(html: str, element_id: str) -> str:
    """The text of the element with this id, up to the end of its table or block."""
    at = html.index(f'id="{element_id}"')
    tag = re.match(r"<(\w+)", html[html.rindex("<", 0, at) :]).group(1)
    start = html.index(">", at) + 1
    return " ".join(re.sub(r"<[^>]+>", " ", html[start : html.index(f"</{tag}>", start)]).split())


@pytest.fixture
def busy_day(tony, maya):
    """Now: Tony running for a caller, Maya's call finished; spend on three days; one error an hour ago
    and one two hours ago."""
    with time_machine.travel(NOW, tick=False):
        tonys = make_process(
            tony,
            started_at=datetime(2024, 5, 10, 11, 55, tzinfo=UTC),
            input_tokens=900,
            output_tokens=100,
            cost_usd=Decimal("0.4"),
        )
        make_session("req-" + "y" * 240, process=tonys)
        mayas = make_process(maya, status="completed")
        make_llm_call(tonys, cost_usd=Decimal("0.40"), created_at=datetime(2024, 5, 10, 11, 56, tzinfo=UTC))
        make_llm_call(mayas, cost_usd=Decimal("0.10"), created_at=datetime(2024, 5, 10, 9, 0, tzinfo=UTC))
        make_llm_call(mayas, cost_usd=Decimal("1.00"), created_at=datetime(2024, 5, 8, 9, 0, tzinfo=UTC))
        make_llm_call(
            mayas, cost_usd=Decimal("7.00"), created_at=datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
        )  # too old
        make_llm_call(mayas, error="upstream timed out", created_at=datetime(2024, 5, 10, 11, 30, tzinfo=UTC))
        make_llm_call(mayas, error="old failure", created_at=datetime(2024, 5, 10, 9, 30, tzinfo=UTC))
    return {"tony": tonys, "maya": mayas}


@time_machine.travel(NOW, tick=False)
def test_the_home_page_shows_what_runs_now_and_what_it_costs(admin_client, busy_day):
    html = admin_client.get("/admin/").content.decode()
    assert section(html, "figure-running").split() == ["1", "running", "now"]
    assert section(html, "figure-sessions").split() == ["1", "sessions", "open"]
    assert "$0.500000" in section(html, "figure-spend")
    assert section(html, "figure-errors").split()[0] == "1"
    running = section(html, "running-processes")
    process = busy_day["tony"]
    assert f"{process.public_id} Tony HTTP (OpenAI-compatible)" in running
    assert "req-" + "y" * 27 + "…" in running and "y" * 40 not in running  # a long caller id is cut
    assert "5m 00s 1,000 $0.400000" in running
    spend_today = section(html, "spend-today")
    assert "Tony 1 120 $0.400000" in spend_today and "Maya 3 360 $0.100000" in spend_today
    errors = section(html, "recent-errors")
    assert "upstream timed out" in errors and "old failure" not in errors


@time_machine.travel(NOW, tick=False)
def test_the_chart_has_a_bar_segment_per_day_and_persona_of_the_last_14_days(admin_client, busy_day):
    html = admin_client.get("/admin/").content.decode()
    start = html.index('<svg id="spend-chart"')
    svg = html[start : html.index("</svg>", start)]
    titles = re.findall(r"<rect [^>]*><title>([^<]+)</title>", svg)
    assert sorted(titles) == [
        "2024-05-08 Maya: $1.000000",
        "2024-05-10 Maya: $0.100000",
        "2024-05-10 Tony: $0.400000",
    ]
    days = re.findall(r'<text class="day"[^>]*>(\d\d-\d\d)', svg)
    assert days[0] == "04-27" and days[-1] == "05-10" and len(days) == 14


@time_machine.travel(NOW, tick=False)
def test_spend_of_a_model_with_no_price_is_marked(admin_client, tony):
    make_llm_call(make_process(tony), model="fake-model", cost_usd=0, created_at=NOW)
    html = admin_client.get("/admin/").content.decode()
    assert "no price for fake-model: set TRON_PRICES" in section(html, "figure-spend")
    assert "no price for fake-model: set TRON_PRICES" in section(html, "spend-today")
    assert "No price for fake-model: set TRON_PRICES: 1 call (120 tokens) are counted at $0." in re.sub(
        r"\s+", " ", html
    )


def test_without_unpriced_models_nothing_is_said_of_prices(admin_client, tony):
    make_llm_call(make_process(tony))
    assert "no price for" not in admin_client.get("/admin/").content.decode().lower()


def test_life_loop_activities_show_once_there_are_some(admin_client, tony):
    assert 'id="life-loop"' not in admin_client.get("/admin/").content.decode()
    ActivityRun.objects.create(
        persona=tony, activity="news", status="completed", result="Read about Rust 2.0"
    )
    assert "Tony News completed Read about Rust 2.0" in section(
        admin_client.get("/admin/").content.decode(), "life-loop"
    )


def test_the_fragment_is_what_the_page_polls(admin_client, busy_day):
    page = admin_client.get("/admin/").content.decode()
    assert 'data-url="/admin/dashboard/"' in page and 'data-refresh="5"' in page
    fragment = admin_client.get(DASHBOARD)
    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert 'id="running-processes"' in html and "<html" not in html


def test_the_refresh_interval_is_configurable(admin_client, settings):
    settings.TRON_DASHBOARD_REFRESH_SECONDS = 2
    assert 'data-refresh="2"' in admin_client.get("/admin/").content.decode()


def test_the_fragment_needs_a_signed_in_operator(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_who_may_not_see_processes_and_calls_get_the_plain_home_page(client):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_process"))
    client.force_login(user)
    assert 'id="tron-dashboard"' not in client.get("/admin/").content.decode()
    assert client.get(DASHBOARD).status_code == 403


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", ["/admin/", DASHBOARD])
def test_the_dashboard_reads_in_a_fixed_number_of_queries(admin_client, tony, maya, url):
    def add_rows(n):
        for i in range(n):
            process = make_process(tony if i % 2 else maya)
            make_session(f"caller-{url}-{n}-{i}", process=process)
            make_llm_call(process, model="fake-model" if i % 3 else "gpt-4o", error="boom" if i % 4 else "")
            ActivityRun.objects.create(persona=tony, activity="news")

    add_rows(2)
    admin_client.get(url)
    few = queries(admin_client, url)
    add_rows(40)
    assert queries(admin_client, url) == few
