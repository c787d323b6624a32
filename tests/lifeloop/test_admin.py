"""Life-loop runs in the control panel: listed, filtered and searched, never added or edited."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lifeloop.models import ActivityRun, Goal, JournalEntry, NewsItem, Post
from tests.factories import make_message, make_persona, make_process

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:lifeloop_activityrun_changelist")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """admin_client creates a superuser per test; PBKDF2 at full strength costs most of a second each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_run(persona, **overrides):
    overrides.setdefault("activity", "news")
    return ActivityRun.objects.create(persona=persona, **overrides)


def listed(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_changelist_lists_runs(admin_client, tony):
    run = make_run(tony, result="Read three articles about inference costs.")
    response = admin_client.get(CHANGELIST)
    assert listed(response) == [run]
    assert "Read three articles" in response.content.decode()


def test_change_page_renders_with_its_process(admin_client, tony):
    process = make_process(tony, channel="life")
    run = make_run(tony, process=process, status="completed")
    response = admin_client.get(reverse("admin:lifeloop_activityrun_change", args=[run.pk]))
    assert response.status_code == 200
    assert reverse("admin:agents_process_change", args=[process.pk]) in response.content.decode()


def test_changelist_filters_by_status(admin_client, tony):
    failed = make_run(tony, status="failed", error="feed unreachable")
    make_run(tony, status="completed")
    assert listed(admin_client.get(CHANGELIST + "?status__exact=failed")) == [failed]


def test_changelist_filters_by_activity(admin_client, tony):
    journal = make_run(tony, activity="journal")
    make_run(tony, activity="news")
    assert listed(admin_client.get(CHANGELIST + "?activity__exact=journal")) == [journal]


def test_changelist_searches_persona_name(admin_client, tony, maya):
    mayas = make_run(maya)
    make_run(tony)
    assert listed(admin_client.get(CHANGELIST + "?q=maya")) == [mayas]


def test_changelist_searches_result(admin_client, tony):
    wanted = make_run(tony, result="Hiring plan drafted")
    make_run(tony, result="Nothing new")
    assert listed(admin_client.get(CHANGELIST + "?q=hiring")) == [wanted]


def test_runs_cannot_be_added(admin_client):
    assert admin_client.get(reverse("admin:lifeloop_activityrun_add")).status_code == 403


def test_posting_to_a_run_change_page_does_not_change_it(admin_client, tony):
    run = make_run(tony, status="running")
    url = reverse("admin:lifeloop_activityrun_change", args=[run.pk])
    response = admin_client.post(url, {"status": "completed", "result": "Forged"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert (run.status, run.result) == ("running", "")


def test_changelist_query_count_does_not_grow_with_rows(admin_client):
    personas = [make_persona(name=name) for name in ("Tony", "Maya", "Ray")]
    for i in range(3):
        make_run(personas[i % 3])
    admin_client.get(CHANGELIST)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(CHANGELIST)
    for i in range(27):
        make_run(personas[i % 3])
    with CaptureQueriesContext(connection) as many:
        admin_client.get(CHANGELIST)
    assert len(many) == len(few)


def test_a_run_links_its_process_and_transcript_from_the_list_and_the_page(admin_client, tony):
    process = make_process(tony, channel="life")
    make_message(process, content="What matters today?")
    run = make_run(tony, process=process, status="completed")
    process_url = reverse("admin:agents_process_change", args=[process.pk])

    listing = admin_client.get(CHANGELIST).content.decode()
    assert f'<a href="{process_url}">{process.public_id}</a>' in listing

    page = admin_client.get(reverse("admin:lifeloop_activityrun_change", args=[run.pk])).content.decode()
    assert f'<a href="{process_url}#transcript">transcript</a>' in page
    transcript = admin_client.get(process_url).content.decode()
    assert 'id="transcript"' in transcript and "What matters today?" in transcript


@pytest.mark.parametrize(
    ("model", "make", "search", "filter_query"),
    [
        (
            "journalentry",
            lambda p, text: JournalEntry.objects.create(persona=p, kind="journal", text=text, importance=4),
            "shipped",
            "kind__exact=journal",
        ),
        (
            "newsitem",
            lambda p, text: NewsItem.objects.create(persona=p, key=text, title=text, picked=True),
            "shipped",
            "picked__exact=1",
        ),
        (
            "goal",
            lambda p, text: Goal.objects.create(persona=p, title=text),
            "shipped",
            "status__exact=active",
        ),
        (
            "post",
            lambda p, text: Post.objects.create(persona=p, text=text),
            "shipped",
            "status__exact=stored",
        ),
    ],
)
def test_journal_news_goals_and_posts_are_listed_filtered_and_searched(
    admin_client, tony, maya, model, make, search, filter_query
):
    wanted = make(tony, "We shipped the scheduler")
    make(maya, "Campaign planned")
    url = reverse(f"admin:lifeloop_{model}_changelist")
    assert len(listed(admin_client.get(url))) == 2
    assert listed(admin_client.get(f"{url}?q={search}")) == [wanted]
    assert listed(admin_client.get(f"{url}?persona__id__exact={tony.pk}")) == [wanted]
    assert len(listed(admin_client.get(f"{url}?{filter_query}"))) == 2
    assert admin_client.get(reverse(f"admin:lifeloop_{model}_change", args=[wanted.pk])).status_code == 200


def test_journal_news_and_posts_are_read_only(admin_client):
    for model in ("journalentry", "newsitem", "post"):
        assert admin_client.get(reverse(f"admin:lifeloop_{model}_add")).status_code == 403


def test_operators_can_set_a_personas_goals(admin_client, tony):
    response = admin_client.post(
        reverse("admin:lifeloop_goal_add"),
        {"persona": tony.pk, "title": "Halve p99 latency", "status": "active"},
    )
    assert response.status_code == 302
    assert Goal.objects.get().title == "Halve p99 latency"
    duplicate = admin_client.post(
        reverse("admin:lifeloop_goal_add"),
        {"persona": tony.pk, "title": "halve P99 latency", "status": "active"},
    )
    assert "This persona already has a goal with this title." in duplicate.content.decode()
