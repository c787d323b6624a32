"""The admin's home page is the live dashboard; /admin/dashboard/ is the fragment it polls."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lifeloop.models import ActivityRun
from tests.factories import make_llm_call, make_message, make_process, make_session, make_turn

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
DASHBOARD = "/admin/dashboard/"


def section(html: str, element_id: str) -> str:
    """The text of the element with this id, up to the end of its table or block."""
    at = html.index(f'id="{element_id}"')
    tag = re.match(r"<(\w+)", html[html.rindex("<", 0, at) :]).group(1)
    start = html.index(">", at) + 1
    return " ".join(re.sub(r"<[^>]+>", " ", html[start : html.index(f"</{tag}>", start)]).split())


def table_rows(html: str, table_id: str) -> list[str]:
    """The words of each body row of a table, its charts left out."""
    body = html.split(f'id="{table_id}"')[1].split("<tbody>")[1].split("</tbody>")[0]
    body = re.sub(r"<svg.*?</svg>", "", body, flags=re.S)
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


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
    assert section(html, "figure-in-turn").split() == ["0", "in", "a", "turn", "now"]
    assert section(html, "figure-processes") == "1 active processes process_count"
    assert section(html, "figure-sessions") == "1 caller sessions open session_count"
    assert "$0.50" in section(html, "figure-spend")
    assert section(html, "figure-errors").split()[0] == "1"
    running = section(html, "conversations")
    process = busy_day["tony"]
    assert f"{process.public_id} Tony HTTP (OpenAI-compatible)" in running
    assert "req-" + "y" * 27 + "…" in running and "y" * 40 not in running  # a long caller id is cut
    assert "Waiting for the caller since 11:55:00 UTC (5m 00s) 11:55:00 1,000 $0.40" in running
    spend_today = section(html, "spend-today")
    assert "Tony 1 120 $0.40" in spend_today and "Maya 3 360 $0.10" in spend_today
    assert "gpt-4o-mini 4 480 $0.50" in section(html, "spend-today-models")
    errors = section(html, "recent-errors")
    assert "upstream timed out" in errors and "old failure" not in errors


@time_machine.travel(NOW, tick=False)
def test_a_conversation_in_a_turn_is_told_from_one_waiting_for_its_caller(admin_client, tony, maya):
    talking = make_process(tony, started_at=datetime(2024, 5, 10, 11, 0, tzinfo=UTC))
    make_turn(
        make_session("+14155550001", process=talking), lease_until=datetime(2024, 5, 10, 12, 9, tzinfo=UTC)
    )
    waiting = make_process(maya, started_at=datetime(2024, 5, 10, 11, 30, tzinfo=UTC))
    make_turn(
        make_session("+14155550002", process=waiting), lease_until=datetime(2024, 5, 10, 11, 59, tzinfo=UTC)
    )
    make_message(
        waiting, role="assistant", content="Done.", created_at=datetime(2024, 5, 10, 11, 58, tzinfo=UTC)
    )
    crashed = make_process(maya)  # its server died mid-turn: the claim lapsed
    make_turn(
        make_session("+14155550003", process=crashed), lease_until=datetime(2024, 5, 10, 11, 50, tzinfo=UTC)
    )
    make_process(tony, status="completed")

    html = admin_client.get("/admin/").content.decode()
    assert section(html, "figure-in-turn").split()[0] == "1"
    assert section(html, "figure-processes").split()[0] == "3"
    assert section(html, "figure-sessions").split()[0] == "3"
    states = re.findall(r'data-process="(\w+)" data-state="([\w-]+)"', html)
    assert states[0] == (talking.public_id, "in-turn")  # talking now comes first
    assert dict(states) == {
        talking.public_id: "in-turn",
        waiting.public_id: "waiting",
        crashed.public_id: "waiting",
    }
    assert "Waiting for the caller since 11:58:00 UTC (2m 00s)" in section(html, "conversations")


@time_machine.travel(NOW, tick=False)
def test_the_chart_has_a_bar_segment_per_day_and_persona_of_the_last_14_days(admin_client, busy_day):
    html = admin_client.get("/admin/").content.decode()
    start = html.index('<svg id="spend-chart"')
    svg = html[start : html.index("</svg>", start)]
    titles = re.findall(r"<rect [^>]*><title>([^<]+)</title>", svg)
    assert sorted(titles) == [
        "2024-05-08 Maya: $1.00",
        "2024-05-10 Maya: $0.10",
        "2024-05-10 Tony: $0.40",
    ]
    days = re.findall(r'<text class="day"[^>]*>(\d\d-\d\d)', svg)
    assert days[0] == "04-27" and days[-1] == "05-10" and len(days) == 14
    assert "Spend per day, last 14 days" in html


@time_machine.travel(NOW, tick=False)
def test_when_nothing_cost_money_the_chart_shows_tokens_and_money_says_free(admin_client, tony):
    local = make_process(tony)
    make_llm_call(
        local,
        model="smollm2-135m-instruct",
        provider="local",
        input_tokens=900,
        output_tokens=100,
        created_at=NOW,
    )
    html = admin_client.get("/admin/").content.decode()
    assert "Tokens per day, last 14 days (no call cost money)" in html
    chart = html.split('id="spend-chart"')[1].split("</svg>")[0]
    assert re.findall(r"<rect [^>]*><title>([^<]+)</title>", chart) == ["2024-05-10 Tony: 1,000 tokens"]
    assert section(html, "figure-spend").startswith("free spent today")
    assert "Tony 1 1,000 free" in section(html, "spend-today")
    assert "smollm2-135m-instruct 1 1,000 free" in section(html, "spend-today-models")
    assert "free" in section(html, "conversations") and "$0" not in section(html, "conversations")


@time_machine.travel(NOW, tick=False)
def test_spend_of_a_model_with_no_price_is_marked(admin_client, tony):
    make_llm_call(make_process(tony), model="fake-model", cost_usd=0, created_at=NOW)
    html = admin_client.get("/admin/").content.decode()
    note = "no price set for fake-model: add it under Model prices"
    assert section(html, "figure-spend") == f"no price set spent today (UTC) + {note}"
    assert note in section(html, "spend-today")
    assert f"fake-model 1 120 no price set + {note}" in section(html, "spend-today-models")
    assert (
        "No price set for fake-model: add it under Model prices: 1 call (120 tokens) are counted at $0."
        in re.sub(r"\s+", " ", html)
    )


@time_machine.travel(NOW, tick=False)
def test_time_to_first_token_and_errors_over_the_last_day_per_persona_and_model(admin_client, tony, maya):
    tonys, mayas = make_process(tony), make_process(maya)
    for ttft in [80, 90, 95, 150, 180, 190, 250, 400, 900, 4000]:  # ten calls this hour
        make_llm_call(tonys, ttft_ms=ttft, created_at=NOW - timedelta(minutes=5))
    make_llm_call(
        mayas, model="gpt-4o", ttft_ms=None, error="upstream timed out", created_at=NOW - timedelta(hours=3)
    )
    make_llm_call(mayas, model="gpt-4o", ttft_ms=700, created_at=NOW - timedelta(hours=3))
    make_llm_call(mayas, model="gpt-4o", error="too old", created_at=NOW - timedelta(hours=25))

    html = admin_client.get("/admin/").content.decode()
    # Tony: ten timed calls; the median is read in the 100-200 ms bucket, the 95th in the 3-5 s one.
    # Maya: one timed call (700 ms: the 500-750 ms bucket) and one that failed before its first token.
    assert table_rows(html, "latency-personas") == ["Maya 2 625 ms 738 ms 1", "Tony 10 167 ms 4.0 s 0"]
    assert table_rows(html, "latency-models") == ["gpt-4o 2 625 ms 738 ms 1", "gpt-4o-mini 10 167 ms 4.0 s 0"]
    maya_row = html.split('id="latency-personas"')[1].split("Maya</td>")[1].split("</tr>")[0]
    bars = re.findall(r'<svg class="spark errors".*?</svg>', maya_row, re.S)[0]
    titles = re.findall(r"<title>([^<]+)</title>", bars)
    assert len(titles) == 24 and titles[-1] == "12:00 UTC: 0 errors in 0 calls"
    assert titles[-4] == "09:00 UTC: 1 error in 2 calls"


def test_without_unpriced_models_nothing_is_said_of_prices(admin_client, tony):
    make_llm_call(make_process(tony))
    assert "no price" not in admin_client.get("/admin/").content.decode().lower()


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
    assert 'id="conversations"' in html and "<html" not in html


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
