"""Replay, end to end through the admin: real conversations with Tony (the official SDK, the fake upstream),
picked in the process list, answered again by a candidate (another prompt, model and temperature) in a
django-q2 task, read side by side with a judge's grades, and applied. The stand-in model answers the
candidate differently from the original; the judge's round-trip goes through it too."""

import json
import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from agents.models import (
    CallerMemory,
    CallerSession,
    Channel,
    DailySpend,
    MemoryNote,
    Message,
    Persona,
    Process,
    Replay,
)
from agents.replay import JUDGE_PROMPT, read_grades

pytestmark = pytest.mark.django_db(transaction=True)

CALLER = "ada"
NOTES_THEN = "Ada runs the payments team."
CANDIDATE_PROMPT = "You are Tony, the CTO. Answer in one short sentence, with a date when there is one."
RUBRIC = "Does the answer give the caller a concrete date or next step?"
FACT = json.dumps({"person": "the caller", "fact": "Ada prefers mornings."})


@pytest.fixture
def conversation(sdk, upstream, team):
    """Ada's conversation with Tony: two turns; in the first Tony saved a fact with a tool. Her notes
    were NOTES_THEN when she spoke, and have changed since."""
    tony = team["tony"]
    tony.tools = ["list_team", "save_person_memory"]
    tony.budget_usd = Decimal("5.00")
    tony.save()
    CallerMemory.objects.create(caller_id=f"req-{CALLER}", notes=NOTES_THEN)
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "c1", "name": "save_person_memory", "arguments": FACT}]},
        {"tokens": ["Launch", " is", " soon."]},
        {"tokens": ["Payments", " are", " the", " risk."]},
    )
    for words in ("When do we launch?", "And the biggest risk?"):
        sdk.chat.completions.create(
            model="tony",
            messages=[{"role": "user", "content": words}],
            extra_headers={"X-Request-ID": CALLER},
        )
    CallerMemory.objects.filter(caller_id=f"req-{CALLER}").update(notes="Ada has left the company.")
    upstream.requests.clear()
    return Process.objects.get(channel=Channel.HTTP)


def candidate_form(process, **overrides) -> dict:
    return {
        "persona": process.persona_id,
        "chosen": str(process.pk),
        "last": "",
        "system_prompt": CANDIDATE_PROMPT,
        "model": "gpt-4o",
        "temperature": "0.2",
        "tools": ["list_team", "save_person_memory"],
        "rubric": RUBRIC,
        "judge_model": "gpt-4o-mini",
        **overrides,
    }


def make_replay(admin_client, process, **overrides) -> Replay:
    """The operator's way: the process list's action, then the candidate's form it leads to."""
    changelist = reverse("admin:agents_process_changelist")
    picked = admin_client.post(
        changelist, {"action": "replay_conversations", "_selected_action": [process.pk]}
    )
    assert picked.status_code == 302
    form = admin_client.get(picked["Location"]).content.decode()
    assert "You are Tony, the CTO." in form  # the candidate starts as the persona is
    assert f'name="chosen" value="{process.pk}"' in form
    created = admin_client.post(reverse("admin:agents_replay_add"), candidate_form(process, **overrides))
    assert created.status_code == 302, created.content.decode()[:3000]
    return Replay.objects.get()


def judged(original: int, candidate: int) -> dict:
    reasons = {"A": "No date given.", "B": "Names the date."}
    grades = {
        "A": {"grade": original, "reason": reasons["A"]},
        "B": {"grade": candidate, "reason": reasons["B"]},
    }
    return {"tokens": [json.dumps(grades)]}


def test_a_candidate_answers_the_recorded_turns_and_is_compared_graded_and_applied(
    admin_client, upstream, conversation, queued_tasks
):
    replay = make_replay(admin_client, conversation)
    page_url = reverse("admin:agents_replay_change", args=[replay.pk])
    waiting = admin_client.get(page_url).content.decode()
    assert "queued" in waiting and 'http-equiv="refresh"' in waiting  # it follows its progress

    upstream.queue(
        # The candidate's first turn also saves the fact, then answers; its second answers at once.
        {
            "tokens": [],
            "tool_calls": [{"id": "r1", "name": "save_person_memory", "arguments": FACT}],
            "model": "gpt-4o",
        },
        {"tokens": ["We", " launch", " on", " 12", " March."], "model": "gpt-4o"},
        {"tokens": ["The", " payment", " flow", "; review", " it", " Monday."], "model": "gpt-4o"},
        judged(3, 9),
        judged(4, 8),
    )
    assert queued_tasks() == 1  # the worker runs the replay

    replay.refresh_from_db()
    assert (replay.status, replay.turns_total, replay.turns_done, replay.graded) == ("completed", 2, 2, 2)
    first, second, _, judge_first, _ = upstream.requests
    # The candidate was asked as the candidate: its prompt, model and temperature, the original's history
    # and the prompt context the original turn had (Ada's notes as they were then, not today's).
    assert first.body["model"] == "gpt-4o" and first.body["temperature"] == 0.2
    assert first.body["messages"][0] == {"role": "system", "content": CANDIDATE_PROMPT}
    assert NOTES_THEN in first.body["messages"][1]["content"]
    assert "left the company" not in json.dumps(first.body)
    assert [t["function"]["name"] for t in first.body["tools"]] == ["list_team", "save_person_memory"]
    later = [m for m in upstream.requests[2].body["messages"] if m["role"] != "system"]
    assert later[-2:] == [
        {"role": "assistant", "content": "Launch is soon."},  # the original's answer, not the candidate's
        {"role": "user", "content": "And the biggest risk?"},
    ]
    # The tool that writes did not run: it answered with the original's recorded result.
    assert second.tool_result() == "Saved in the notes about req-ada: Ada prefers mornings."
    assert MemoryNote.objects.count() == 1  # the original's, none from the replay
    assert CallerMemory.objects.get().notes == "Ada has left the company."
    # The judge: its rubric and both answers, through the same stand-in.
    assert judge_first.body["model"] == "gpt-4o-mini"
    assert judge_first.body["messages"][0]["content"] == JUDGE_PROMPT.format(rubric=RUBRIC)
    assert "Launch is soon." in judge_first.body["messages"][-1]["content"]
    assert "We launch on 12 March." in judge_first.body["messages"][-1]["content"]
    assert "tools" not in judge_first.body
    judge = Process.objects.get(pk=replay.turns.first().judge_process_id)
    assert (judge.channel, judge.principal_caller_id) == ("replay", "req-ada")  # whose words it holds

    page = admin_client.get(page_url).content.decode()
    assert 'http-equiv="refresh"' not in page and "completed: 2 of 2 turns answered, 2 graded" in page
    turns = re.findall(r'<div class="turn" id="replay-turn-\d+">(.*?)</div>\s*</div>\s*</div>', page, re.S)
    assert len(turns) == 2
    assert "Launch is soon." in turns[0] and "We launch on 12 March." in turns[0]
    assert "Grade 3/10: No date given." in turns[0] and "Grade 9/10: Names the date." in turns[0]
    assert "Payments are the risk." in turns[1] and "The payment flow; review it Monday." in turns[1]

    # Totals for both sides: tokens, cost and time to first token.
    rows = list(replay.turns.order_by("id"))
    assert [row.original_output_tokens for row in rows] == [3, 4]
    assert [row.output_tokens for row in rows] == [5, 6]
    assert all(row.ttft_ms is not None and row.original_ttft_ms is not None for row in rows)
    assert [row.model for row in rows] == ["gpt-4o", "gpt-4o"]
    totals = re.search(r'<tr id="totals-candidate">(.*?)</tr>', page, re.S).group(1)
    assert ">11<" in totals and "6.0" not in totals  # 5 + 6 tokens out; grades are on their own column
    assert "8.5" in totals  # the candidate's mean grade

    apply_url = reverse("admin:agents_replay_apply", args=[replay.pk])
    assert f'action="{apply_url}"' in page
    applied = admin_client.post(apply_url)
    assert applied.status_code == 302
    tony = Persona.objects.get(name="Tony")
    assert (tony.system_prompt, tony.model, tony.temperature) == (CANDIDATE_PROMPT, "gpt-4o", 0.2)
    replay.refresh_from_db()
    assert replay.applied_by == "admin" and replay.applied_at is not None
    assert replay.previous["system_prompt"] == "You are Tony, the CTO." and replay.previous["model"] == ""
    entry = LogEntry.objects.get(object_id=str(tony.pk), content_type__model="persona")
    assert entry.user.username == "admin"
    assert entry.get_change_message() == (
        f"Applied the candidate of replay {replay.pk} (system_prompt, model, temperature)."
    )
    assert admin_client.post(apply_url).status_code == 302  # a second apply changes nothing
    assert LogEntry.objects.filter(object_id=str(tony.pk), content_type__model="persona").count() == 1


def test_a_replay_never_touches_the_live_conversation_and_is_a_process_of_its_own(
    admin_client, upstream, conversation, queued_tasks
):
    session = CallerSession.objects.get(caller_id=f"req-{CALLER}")
    lines = list(Message.objects.filter(process=conversation).values_list("pk", flat=True))
    spend_before = DailySpend.objects.get(persona=conversation.persona).spent_usd
    make_replay(admin_client, conversation, rubric="")
    upstream.queue({"tokens": ["One."], "model": "gpt-4o"}, {"tokens": ["Two."], "model": "gpt-4o"})

    queued_tasks()

    session.refresh_from_db()
    assert session.ended_at is None and session.process_id == conversation.pk
    assert list(Message.objects.filter(process=conversation).values_list("pk", flat=True)) == lines
    replayed = Process.objects.get(channel=Channel.REPLAY)
    assert replayed.persona_id == conversation.persona_id and replayed.status == "completed"
    assert replayed.llm_calls == 2 and replayed.cost_usd > 0
    assert replayed.allowance == "" and replayed.trust == "public"  # the original's principal, no allowance
    spent = DailySpend.objects.get(persona=conversation.persona).spent_usd
    assert spent == spend_before + replayed.cost_usd  # against the persona's budget
    said = list(Message.objects.filter(process=replayed).values_list("role", "content"))
    assert said == [
        ("user", "When do we launch?"),
        ("assistant", "One."),
        ("user", "And the biggest risk?"),
        ("assistant", "Two."),
    ]
    assert not CallerSession.objects.filter(caller_id__startswith="replay-", ended_at=None).exists()


def test_a_failed_candidate_turn_is_shown_and_the_replay_goes_on(
    admin_client, upstream, conversation, queued_tasks
):
    replay = make_replay(admin_client, conversation, rubric="")
    upstream.queue({"status": 500}, {"tokens": ["Two."], "model": "gpt-4o"})

    queued_tasks()

    replay.refresh_from_db()
    assert replay.status == "completed"
    first, second = replay.turns.order_by("id")
    assert first.error and first.answer == "" and second.answer == "Two."
    page = admin_client.get(reverse("admin:agents_replay_change", args=[replay.pk])).content.decode()
    assert "No answer: " in page and "1 turn(s) got no answer from the candidate" in page


def test_the_candidate_form_refuses_conversations_of_another_persona_and_none(
    admin_client, conversation, team
):
    other = Process.objects.create(persona=team["maya"], channel=Channel.HTTP)
    Message.objects.create(process=other, role="user", content="Hi Maya")
    form = candidate_form(conversation, chosen=f"{conversation.pk},{other.pk}")
    refused = admin_client.post(reverse("admin:agents_replay_add"), form)
    assert refused.status_code == 200 and "must be one of this persona" in refused.content.decode()
    none = admin_client.post(reverse("admin:agents_replay_add"), candidate_form(conversation, chosen=""))
    assert none.status_code == 200 and "Pick the conversations to replay" in none.content.decode()
    assert not Replay.objects.exists()


def test_the_latest_conversations_of_a_persona_can_be_replayed_from_its_page(admin_client, conversation):
    persona_page = admin_client.get(reverse("admin:agents_persona_change", args=[conversation.persona_id]))
    link = re.search(
        r'href="([^"]+)">Try a change on its latest conversations', persona_page.content.decode()
    )
    form = admin_client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert 'name="last" value="5"' in form

    created = admin_client.post(
        reverse("admin:agents_replay_add"), candidate_form(conversation, chosen="", last="3")
    )

    assert created.status_code == 302
    assert list(Replay.objects.get().conversations.all()) == [conversation]


def test_the_judges_answer_is_read_or_said_to_be_unreadable():
    assert read_grades(
        'Sure: {"A": {"grade": 2, "reason": "Vague."}, "B": {"grade": 10, "reason": "Exact."}}'
    ) == {
        "A": (2, "Vague."),
        "B": (10, "Exact."),
    }
    for bad in (
        "I liked B.",
        '{"A": {"grade": 11, "reason": "x"}, "B": {"grade": 1, "reason": "y"}}',
        '{"A": ' + "[" * 5000 + "]" * 5000 + "}",
    ):
        grades = read_grades(bad)
        assert grades["A"][0] is None and grades["B"][0] is None
        assert grades["A"][1].startswith("The judge's answer could not be read")
