"""goals, team_check, reflection, journal and post, each through the engine against the fake upstream,
with Slack and the social API played by a local server."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import Process
from lifeloop.models import ActivityRun, Goal, JournalEntry, NewsItem, Post
from tests.factories import ago, make_persona, make_process
from tests.lifeloop.conftest import json_reply, prompt_of, reply, system_of
from tests.lifeloop.servers import Reply

SLACK_OK = Reply(body={"ok": True, "channel": "C0LIFE", "ts": "1700000000.000100"})


def trigger(activity, persona="Tony"):
    out = StringIO()
    call_command("trigger_life", activity, "--persona", persona, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def slack(settings, edge):
    settings.TRON_LIFE_SLACK_CHANNEL = "#life"
    settings.SLACK_BOT_TOKEN = "xoxb-test-token"
    settings.SLACK_API_URL = f"{edge.url}/api/"
    edge.route("/api/chat.postMessage", SLACK_OK)
    return edge


def slack_messages(edge):
    return [request.form() for request in edge.to("/api/chat.postMessage")]


def journal(persona, text, importance=5, kind="journal", **fields):
    return JournalEntry.objects.create(persona=persona, kind=kind, text=text, importance=importance, **fields)


# --- goals --------------------------------------------------------------------------------------------


def test_goals_are_reviewed_from_journal_news_and_team_and_updated(crew, llm, slack):
    tony = crew["tony"]
    ship = Goal.objects.create(persona=tony, title="Ship the life loop", notes="2026-03-01: started")
    Goal.objects.create(persona=tony, title="Hire a second SRE")
    journal(tony, "Merged the scheduler; tests are green.")
    NewsItem.objects.create(
        persona=tony, key="k1", title="Cheaper inference", picked=True, take="Worth a look."
    )
    llm.reset(
        tokens=[
            '{"goals": [{"title": "ship the life loop", "status": "done", "note": "Merged and deployed."}, '
            '{"title": "Cut inference cost by 30%", "status": "active", "note": "Try speculative decoding."}, '
            '{"title": "Hire a second SRE", "status": "active", "note": "Two interviews booked."}, '
            '{"title": "Something new but finished", "status": "done"}], "importance": 7}'
        ]
    )

    result = trigger("goals")

    asked = prompt_of(llm.last)
    assert "[active] Ship the life loop — last note: 2026-03-01: started" in asked
    assert "Merged the scheduler; tests are green." in asked
    assert "Cheaper inference — Worth a look." in asked
    ship.refresh_from_db()
    assert ship.status == "done"
    assert ship.notes.splitlines()[-1].endswith(": Merged and deployed.")
    new = Goal.objects.get(title="Cut inference cost by 30%")
    assert new.status == "active" and new.notes.endswith("Try speculative decoding.")
    assert not Goal.objects.filter(title="Something new but finished").exists()  # new goals start active
    assert result == (
        "Tony: Goals: done: Ship the life loop (Merged and deployed.); new: Cut inference cost by 30%; "
        "progress on Hire a second SRE: Two interviews booked."
    )
    run = ActivityRun.objects.get()
    assert (run.status, run.error) == ("completed", "")
    assert JournalEntry.objects.filter(kind="goals").get().importance == 7
    [message] = slack_messages(slack)
    assert (message["channel"], message["username"]) == ("#life", "Tony")
    assert message["text"] == f":dart: *Tony*: {run.result}"
    assert slack.to("/api/chat.postMessage")[0].headers["Authorization"] == "Bearer xoxb-test-token"


def test_goals_without_changes_are_not_shared(crew, llm, slack):
    llm.reset(tokens=['{"goals": []}'])
    assert trigger("goals") == "Tony: Goals reviewed: no changes."
    assert slack_messages(slack) == []


# --- team_check ---------------------------------------------------------------------------------------


def test_team_check_summarises_reports_and_peers(crew, llm):
    maya, sarah = crew["maya"], crew["sarah"]
    make_process(sarah, status="completed", task="Design the API", cost_usd=Decimal("0.0100"))
    make_process(
        sarah, status="failed", task="Deploy staging", error="ssh refused", cost_usd=Decimal("0.0025")
    )
    make_process(maya, status="completed", task="Old campaign", started_at=ago(days=2))
    make_persona(name="Quiet", role="CFO", sort_order=3)
    llm.reset(
        tokens=["Sarah shipped the API design but staging failed on ssh; I'll pair with her.\nImportance: 6"]
    )

    result = trigger("team_check")

    asked = prompt_of(llm.last)
    assert (
        "- Sarah (Tech Lead, your report): 2 process(es) (1 completed, 1 failed), $0.0125; latest: "
        "'Deploy staging' (failed: ssh refused), 'Design the API'" in asked
    )
    assert "- Maya (CMO, your peer): nothing in the last day" in asked  # two days ago is outside the day
    assert "- Quiet (CFO, your peer): nothing in the last day" in asked
    assert result == "Tony: Sarah shipped the API design but staging failed on ssh; I'll pair with her."
    assert JournalEntry.objects.get(kind="team_check").importance == 6


def test_team_check_without_a_team_is_skipped(llm):
    make_persona(name="Solo", life_enabled=True)
    assert trigger("team_check", "solo") == "Solo: No reports or peers to check on."
    assert ActivityRun.objects.get().status == "skipped"


# --- reflection ---------------------------------------------------------------------------------------


def test_reflection_draws_insights_from_the_journal_since_the_last_one(crew, llm, slack):
    tony = crew["tony"]
    journal(tony, "An old thought.", created_at=ago(days=3))
    journal(tony, "Earlier insight.", kind="reflection", created_at=ago(days=2))
    journal(tony, "Staging failed twice this week.", importance=7)
    journal(tony, "The team shipped the scheduler.", importance=4, kind="team_check")
    llm.reset(
        tokens=["- Deployments are our weak spot.\n- The team ships when scope is small.\nImportance: 8"]
    )

    result = trigger("reflection")

    asked = prompt_of(llm.last)
    assert "Staging failed twice this week." in asked and "The team shipped the scheduler." in asked
    assert "An old thought." not in asked and "Earlier insight." not in asked
    insights = "- Deployments are our weak spot.\n- The team ships when scope is small."
    assert result == f"Tony: {insights}"
    latest = JournalEntry.objects.filter(kind="reflection").order_by("-created_at").first()
    assert (latest.text, latest.importance) == (insights, 8)
    assert slack_messages(slack)[0]["text"] == f":thinking_face: *Tony*: {insights}"


def test_reflection_with_nothing_new_is_skipped(crew, llm):
    assert trigger("reflection") == "Tony: Nothing new to reflect on since the last reflection."
    assert llm.requests == []


def test_enough_importance_since_the_last_reflection_triggers_one(crew, llm, settings):
    settings.TRON_REFLECTION_THRESHOLD = 12
    tony = crew["tony"]
    journal(tony, "A big day.", importance=8)
    llm.queue(reply("Wrote today's entry.\nImportance: 5"), reply("- Big days need rest.\nImportance: 6"))

    trigger("journal")  # 8 + 5 reaches 12: a reflection is queued (inline here: django-q2 runs sync in tests)

    runs = {run.activity: run for run in ActivityRun.objects.all()}
    assert set(runs) == {"journal", "reflection"}
    assert runs["reflection"].trigger == "importance"
    assert runs["reflection"].slot is not None  # one per hour of the persona's time
    assert runs["reflection"].result == "- Big days need rest."
    assert runs["reflection"].process != runs["journal"].process  # each run is its own process

    llm.queue(reply("Another entry.\nImportance: 3"))
    trigger("journal")  # 3 since the reflection: below the threshold
    assert ActivityRun.objects.filter(activity="reflection").count() == 1


# --- journal ------------------------------------------------------------------------------------------


def test_journal_writes_the_days_entry_scored_by_the_model(crew, llm):
    tony = crew["tony"]
    ActivityRun.objects.create(persona=tony, activity="news", status="completed", result="Read 3 new items.")
    ActivityRun.objects.create(persona=tony, activity="post", status="failed", error="social API down")
    ActivityRun.objects.create(
        persona=tony,
        activity="goals",
        status="completed",
        result="Yesterday's.",
        started_at=ago(days=1, hours=1),
    )
    llm.reset(tokens=["Read the news and fought the social API. Tomorrow: fix it.\n\nImportance: 3"])

    result = trigger("journal")

    asked = prompt_of(llm.last)
    assert "news: Read 3 new items." in asked and "post: failed (social API down)" in asked
    assert "Yesterday's." not in asked
    assert result == "Tony: Read the news and fought the social API. Tomorrow: fix it."
    entry = JournalEntry.objects.get()
    assert (entry.kind, entry.importance, entry.run) == (
        "journal",
        3,
        ActivityRun.objects.get(activity="journal"),
    )


def test_an_empty_answer_fails_the_journal(crew, llm):
    llm.reset(tokens=["Importance: 4"])
    with pytest.raises(CommandError):
        trigger("journal")
    assert ActivityRun.objects.get(activity="journal").error == "The model wrote no journal entry."
    assert not JournalEntry.objects.exists()


# --- post ---------------------------------------------------------------------------------------------


@pytest.fixture
def social(settings, edge):
    settings.TRON_SOCIAL_API_URL = edge.route("/api/posts", Reply(status=201, body={"id": "p1"}))
    settings.TRON_SOCIAL_API_KEY = "social-key"
    return edge


def test_post_is_composed_from_recent_material_stored_and_published(crew, llm, social, slack):
    tony = crew["tony"]
    journal(tony, "Small scopes ship.", kind="reflection")
    NewsItem.objects.create(
        persona=tony, key="k", title="Speculative decoding", link="https://e.x/sd", picked=True, take="Fast."
    )
    Goal.objects.create(persona=tony, title="Cut inference cost")
    llm.reset(tokens=['"Small scopes ship; big ones slip. #engineering"\nImportance: 4'])

    result = trigger("post")

    asked = prompt_of(llm.last)
    assert "Speculative decoding (https://e.x/sd) — Fast." in asked
    assert "Small scopes ship." in asked and "- Cut inference cost" in asked
    text = "Small scopes ship; big ones slip. #engineering"
    assert result == f"Tony: Posted: {text}"
    post = Post.objects.get()
    assert (post.text, post.status, post.attempts, post.error) == (text, "published", 1, "")
    [request] = social.to("/api/posts")
    assert request.headers["X-API-Key"] == "social-key"
    assert request.json() == {
        "content": text,
        "persona": "Tony",
        "role": "CTO",
        "post_id": post.pk,
        "created_at": post.created_at.isoformat(),
    }
    assert slack_messages(slack)[0]["text"] == f":speech_balloon: *Tony*: {text}"
    # The goals and the reflection were in the prompt's context too (lifeloop.context).
    assert "Your current goals: Cut inference cost." in system_of(llm.last)


def test_a_failed_publish_is_retried_once(crew, llm, social):
    social.route("/api/posts", Reply(status=503, body={"error": "busy"}), Reply(status=201))
    llm.reset(tokens=["Shipping beats planning."])
    assert trigger("post") == "Tony: Posted: Shipping beats planning."
    post = Post.objects.get()
    assert (post.status, post.attempts) == ("published", 2)


def test_a_publish_that_fails_twice_is_recorded_and_fails_the_run(crew, llm, social, slack):
    social.route("/api/posts", Reply(status=500, body={"error": "down"}))
    llm.reset(tokens=["Shipping beats planning."])
    with pytest.raises(CommandError):
        trigger("post")
    post = Post.objects.get()
    assert (post.status, post.attempts) == ("failed", 2)
    assert post.error == 'HTTP 500: {"error": "down"}'
    run = ActivityRun.objects.get()
    assert run.status == "failed"
    assert run.error == 'Publishing to the social API failed: HTTP 500: {"error": "down"}'
    assert run.result == "Stored, not published: Shipping beats planning."
    assert slack_messages(slack) == []


def test_without_a_social_api_the_post_is_stored(crew, llm):
    llm.reset(tokens=["x " * 200])
    result = trigger("post")
    post = Post.objects.get()
    assert post.status == "stored" and len(post.text) <= 280 and post.text.endswith("…")
    assert result == f"Tony: Stored, not published (no social API set): {post.text}"


def test_a_post_that_repeats_its_prompt_is_withheld_with_the_reason(crew, llm, social, slack):
    llm.reset(tokens=["Write one short post for your social feed. OK!"])
    with pytest.raises(CommandError, match="post failed for Tony"):
        trigger("post")
    post = Post.objects.get()
    assert (post.status, post.error, post.attempts) == ("withheld", "it repeats its prompt", 0)
    assert social.to("/api/posts") == [] and slack_messages(slack) == []
    run = ActivityRun.objects.get()
    assert (run.status, run.error) == ("failed", "The post was withheld: it repeats its prompt.")
    assert run.result == "Withheld, not published: Write one short post for your social feed. OK!"
    assert not JournalEntry.objects.exists()  # nothing the persona did is remembered as done


def test_a_post_that_repeats_an_earlier_one_or_is_empty_is_withheld(crew, llm, social):
    Post.objects.create(persona=crew["tony"], text="Small scopes ship, big ones slip, every single time.")
    llm.reset(tokens=["Remember: small scopes ship, big ones slip, every single time!"])
    with pytest.raises(CommandError):
        trigger("post")
    llm.reset(tokens=["Importance: 3"])
    with pytest.raises(CommandError):
        trigger("post")
    assert list(ActivityRun.objects.order_by("pk").values_list("error", flat=True)) == [
        "The post was withheld: it repeats an earlier post.",
        "The post was withheld: the model wrote nothing.",
    ]
    assert list(Post.objects.filter(status="withheld").values_list("error", "text")) == [
        ("the model wrote nothing", ""),
        ("it repeats an earlier post", "Remember: small scopes ship, big ones slip, every single time!"),
    ]
    assert social.to("/api/posts") == []


def test_quoting_the_news_it_was_given_is_not_a_repeat(crew, llm, social):
    NewsItem.objects.create(
        persona=crew["tony"], key="k", title="Rust lands in the Linux kernel today", picked=True, take="Big."
    )
    llm.reset(tokens=["Rust lands in the Linux kernel today: memory safety where it matters most. #rust"])
    assert trigger("post").startswith("Tony: Posted: Rust lands")


def test_with_approval_required_a_post_waits_and_an_operator_publishes_or_rejects_it(
    crew, llm, social, slack, settings, client
):
    from django.contrib.auth.models import User

    settings.TRON_POSTS_NEED_APPROVAL = True
    llm.reset(tokens=["Shipping beats planning.\nImportance: 4"])
    assert trigger("post") == "Tony: Awaiting approval: Shipping beats planning."
    llm.reset(tokens=["Planning beats shipping."])
    trigger("post")
    first, second = Post.objects.order_by("pk")
    assert (first.status, second.status) == ("awaiting_approval", "awaiting_approval")
    assert social.to("/api/posts") == [] and slack_messages(slack) == []
    assert (
        JournalEntry.objects.filter(kind="post").first().text.startswith("Wrote a post, awaiting an operator")
    )

    client.force_login(User.objects.create_superuser("ops"))
    changelist = "/admin/lifeloop/post/"
    assert "2 posts awaiting approval" in client.get("/admin/").content.decode()
    client.post(changelist, {"action": "approve", "_selected_action": [first.pk]})
    client.post(changelist, {"action": "reject", "_selected_action": [second.pk]})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.reviewed_by, first.attempts) == ("published", "ops", 1)
    assert (second.status, second.reviewed_by, second.published_at) == ("rejected", "ops", None)
    assert [r.json()["content"] for r in social.to("/api/posts")] == ["Shipping beats planning."]
    # Approving again (or a rejected post) publishes nothing more.
    client.post(changelist, {"action": "approve", "_selected_action": [first.pk, second.pk]})
    assert len(social.to("/api/posts")) == 1


def test_an_importance_the_model_did_not_give_is_recorded_as_not_given(crew, llm, client):
    from django.contrib.auth.models import User

    llm.reset(tokens=["A quiet day of reviews."])
    trigger("journal")
    assert JournalEntry.objects.get().importance is None
    client.force_login(User.objects.create_superuser("ops"))
    row = client.get("/admin/lifeloop/journalentry/").content.decode().split('id="result_list"')[1]
    assert "not given" in row


# --- Slack --------------------------------------------------------------------------------------------


def test_slack_refusing_the_message_is_recorded_and_the_run_stands(crew, llm, slack):
    slack.route("/api/chat.postMessage", Reply(body={"ok": False, "error": "not_in_channel"}))
    llm.reset(tokens=["A post."])
    assert trigger("post") == "Tony: Stored, not published (no social API set): A post."
    run = ActivityRun.objects.get()
    assert (run.status, run.error) == ("completed", "Slack: Slack refused the message: not_in_channel")


def test_slack_unreachable_is_recorded_without_the_token(crew, llm, slack, settings, caplog):
    settings.SLACK_API_URL = "http://127.0.0.1:9/api/"
    llm.reset(tokens=["A post."])
    trigger("post")
    run = ActivityRun.objects.get()
    assert run.status == "completed" and run.error.startswith("Slack: Slack could not be reached")
    assert "xoxb-test-token" not in caplog.text


def test_news_and_journal_are_not_shared(crew, llm, slack):
    llm.reset(tokens=["An entry."])
    trigger("journal")
    assert slack_messages(slack) == []


# --- processes ----------------------------------------------------------------------------------------


def test_each_run_is_its_own_completed_process_on_the_life_channel(crew, llm):
    llm.reset(tokens=["An entry."])
    trigger("journal")
    trigger("journal")
    runs = list(ActivityRun.objects.order_by("pk"))
    processes = list(Process.objects.order_by("pk"))
    assert [run.process for run in runs] == processes
    assert all((p.channel, p.status, p.persona.name) == ("life", "completed", "Tony") for p in processes)
    assert {s.caller_id for p in processes for s in p.sessions.all()} == {
        f"life-tony-journal-{run.pk}" for run in runs
    }
    assert all(s.ended_at for p in processes for s in p.sessions.all())


def test_json_reply_helper_scripts_a_json_answer(crew, llm):
    llm.queue(json_reply({"goals": [{"title": "A", "status": "active"}]}))
    trigger("goals")
    assert Goal.objects.get().title == "A"
