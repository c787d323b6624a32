"""/internal/life/trigger and manage.py trigger_life, with the responses tron-api.md gives."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from lifeloop.models import ActivityRun, Post
from tests.factories import make_persona

URL = "/internal/life/trigger"


def test_without_an_activity_it_lists_activities_personas_and_examples(client, crew):
    make_persona(name="Off", life_enabled=False)
    response = client.get(URL)
    assert response.status_code == 400
    assert response.json() == {
        "error": "Missing 'activity' query parameter",
        "activities": ["news", "goals", "team_check", "reflection", "journal", "post"],
        "personas": ["Tony", "Maya"],
        "examples": [
            "/internal/life/trigger?activity=post&persona=Tony",
            "/internal/life/trigger?activity=post (triggers all personas)",
        ],
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "activity=nap",
            "Unknown activity 'nap'; expected one of news, goals, team_check, reflection, journal, post.",
        ),
        ("activity=post&persona=Zed", "No enabled persona is called 'Zed'. Personas: Tony, Maya, Sarah."),
    ],
)
def test_an_unknown_activity_or_persona_is_a_400_with_a_message(client, crew, llm, query, message):
    response = client.post(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert not ActivityRun.objects.exists() and llm.requests == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_one_persona(client, crew, llm, method):
    llm.reset(tokens=["Thinking about microservices architecture today..."])
    response = getattr(client, method)(f"{URL}?activity=post&persona=tony")
    assert response.status_code == 200
    assert response.json() == {
        "persona": "Tony",
        "activity": "post",
        "result": "Stored, not published (no social API set): Thinking about microservices architecture today...",
    }
    run = ActivityRun.objects.get()
    assert (run.trigger, run.slot, run.status) == ("manual", None, "completed")
    assert Post.objects.get().run == run


def test_all_personas_run_concurrently(client, crew, llm):
    llm.reset(tokens=["A day's entry."], header_delay=1.0)
    started = time.monotonic()
    response = client.get(f"{URL}?activity=journal")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {
        "activity": "journal",
        "results": {"Tony": "A day's entry.", "Maya": "A day's entry."},
    }
    assert elapsed < 1.9  # two runs of a second each, side by side
    assert sorted(ActivityRun.objects.values_list("persona__name", flat=True)) == ["Maya", "Tony"]


def test_one_personas_failure_does_not_stop_the_others(client, crew, llm):
    llm.reset(tokens=["Fine."])
    llm.queue({"status": 500})  # the first request to reach the model fails, whoever's it is
    results = client.get(f"{URL}?activity=journal").json()["results"]
    assert sorted(results.values()) == [
        "Failed: The model failed: The model's server answered 500.",
        "Fine.",
    ]
    assert sorted(ActivityRun.objects.values_list("status", flat=True)) == ["completed", "failed"]


def test_the_trigger_needs_the_api_token_when_one_is_set(client, crew, llm, settings):
    settings.TRON_API_TOKEN = "secret"
    assert client.get(f"{URL}?activity=journal").status_code == 401
    llm.reset(tokens=["Entry."])
    response = client.get(f"{URL}?activity=journal&persona=Maya", headers={"Authorization": "Bearer secret"})
    assert response.json()["result"] == "Entry."


def test_the_command_runs_every_life_persona(crew, llm):
    llm.reset(tokens=["An entry."])
    out = StringIO()
    call_command("trigger_life", "journal", stdout=out)
    assert sorted(out.getvalue().splitlines()) == ["Maya: An entry.", "Tony: An entry."]


def test_the_command_refuses_unknown_names(crew):
    with pytest.raises(CommandError, match="invalid choice: 'nap'"):
        call_command("trigger_life", "nap")
    with pytest.raises(CommandError, match="No enabled persona is called 'Zed'"):
        call_command("trigger_life", "post", "--persona", "Zed")


def test_the_command_says_when_no_persona_has_a_life_loop(llm):
    make_persona(name="Tony")
    with pytest.raises(CommandError, match="No persona has its life loop on"):
        call_command("trigger_life", "post")
