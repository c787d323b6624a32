"""The team's memory tools through the chat API, with the fake upstream calling them as a model would:
a standing instruction saved in one conversation is in the persona's later prompts; a fact saved about
a caller is in that caller's later prompts; what is known is recalled."""

import json

import pytest

from agents.callers import Caller
from agents.directives import DIRECTIVES_MAX_CHARS, HEADING, standing_directives
from agents.memory import NoKey, person_key
from agents.models import CallerMemory, CallerSession, Directive, LLMCall, Process
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+14155550134"


@pytest.fixture
def tony(team):
    team["tony"].tools = ["save_directive", "save_person_memory", "recall_person"]
    team["tony"].save()
    return team["tony"]


def say(live_tron, words, headers):
    response = post_chat(
        live_tron, {"model": "tony", "messages": [{"role": "user", "content": words}]}, headers
    )
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def calling(upstream, name, **arguments):
    """The model's next answer calls `name`; the one after it answers in words."""
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "c1", "name": name, "arguments": json.dumps(arguments)}]},
        {"tokens": ["Done."]},
    )


def system_text(record) -> str:
    return "\n".join(m["content"] for m in record.body["messages"] if m["role"] == "system")


def tool_result(record) -> str:
    last = record.body["messages"][-1]
    assert last["role"] == "tool"
    return last["content"]


def test_a_saved_directive_is_in_the_personas_later_prompts_with_every_caller(live_tron, chat_setup, tony):
    calling(chat_setup, "save_directive", text="Always quote prices in euros.")

    assert say(live_tron, "From now on, quote prices in euros.", {"X-Request-ID": "boss"}) == "Done."
    say(live_tron, "What does the plan cost?", {"X-Request-ID": "someone-else"})

    assert tool_result(chat_setup.requests[1]).startswith("Saved. From your next answer on")
    assert f"{HEADING}\n- Always quote prices in euros." in system_text(chat_setup.requests[2])
    directive = Directive.objects.get()
    assert (directive.persona, directive.active) == (tony, True)
    assert directive.process == CallerSession.objects.get(caller_id="req-boss").process
    # Saving it costs nothing beyond the model's own calls, recorded like any.
    assert LLMCall.objects.count() == 3


def test_a_switched_off_directive_leaves_the_prompt(live_tron, chat_setup, tony):
    Directive.objects.create(persona=tony, text="Sign off with 'Cheers'.", active=False)

    say(live_tron, "Hi", {"X-Request-ID": "a"})

    assert "Cheers" not in system_text(chat_setup.last)


def test_a_fact_saved_about_the_caller_is_in_their_next_turns_prompt(live_tron, chat_setup, tony):
    calling(chat_setup, "save_person_memory", person="the caller", fact="Prefers email to phone calls.")
    phone = {"X-Vapi-Caller-Phone": "(415) 555-0134"}

    say(live_tron, "Email me rather than calling, please.", phone)
    say(live_tron, "What did I ask you?", phone)

    assert (
        tool_result(chat_setup.requests[1])
        == f"Saved in the notes about {PHONE}: Prefers email to phone calls."
    )
    assert CallerMemory.objects.get(caller_id=PHONE).notes == "- Prefers email to phone calls."
    assert "Prefers email to phone calls." in system_text(chat_setup.requests[2])


def test_a_fact_saved_by_number_reaches_that_callers_own_call(live_tron, chat_setup, tony):
    calling(chat_setup, "save_person_memory", person="+1 415-555-0199", fact="Dana, our accountant.")
    CallerMemory.objects.create(caller_id="+14155550199", notes="Calls on Mondays.")

    say(live_tron, "Dana at 415 555 0199 is our accountant.", {"X-Request-ID": "boss"})
    say(live_tron, "Hello?", {"X-Vapi-Caller-Phone": "+14155550199"})

    assert (
        CallerMemory.objects.get(caller_id="+14155550199").notes
        == "Calls on Mondays.\n- Dana, our accountant."
    )
    assert "Calls on Mondays.\n- Dana, our accountant." in system_text(chat_setup.last)


def test_recall_person_reads_the_notes_by_number_or_finds_a_name_in_them(live_tron, chat_setup, tony):
    CallerMemory.objects.create(caller_id="+14155550199", notes="Dana Reyes, our accountant.")
    calling(chat_setup, "recall_person", person="415-555-0199")
    say(live_tron, "What do we know about 415-555-0199?", {"X-Request-ID": "boss"})
    by_number = tool_result(chat_setup.requests[1])

    calling(chat_setup, "recall_person", person="dana reyes")
    say(live_tron, "And Dana Reyes?", {"X-Request-ID": "boss"})
    by_name = tool_result(chat_setup.requests[3])

    calling(chat_setup, "recall_person", person="Zed")
    say(live_tron, "And Zed?", {"X-Request-ID": "boss"})

    assert by_number == "Notes about +14155550199:\nDana Reyes, our accountant."
    assert by_name == "Notes about +14155550199:\nDana Reyes, our accountant."
    assert tool_result(chat_setup.requests[5]) == "Nothing in the team's notes mentions 'Zed'."


def test_nothing_is_kept_about_an_anonymous_caller(live_tron, chat_setup, tony):
    calling(chat_setup, "save_person_memory", person="the caller", fact="Likes jazz.")

    say(live_tron, "I like jazz.", {})

    assert tool_result(chat_setup.requests[1]).startswith(
        "Nothing was saved: This caller gave no phone number"
    )
    assert not CallerMemory.objects.exists()


def test_a_fact_is_saved_once_and_the_oldest_lines_give_way_to_stay_within_the_prompts_share(tony):
    from agents.memory import MEMORY_MAX_CHARS, save_person_memory
    from agents.tools import ToolContext

    context = ToolContext(tony, None, Caller(PHONE))
    CallerMemory.objects.create(
        caller_id=PHONE, notes="\n".join(f"- old fact {n:03} " + "x" * 80 for n in range(45))
    )

    first = save_person_memory(context, {"person": "the caller", "fact": "New fact."})
    again = save_person_memory(context, {"person": "the caller", "fact": "New  fact."})

    notes = CallerMemory.objects.get(caller_id=PHONE).notes
    assert len(notes) <= MEMORY_MAX_CHARS and notes.endswith("- New fact.")
    assert "old fact 000" not in notes and "old fact 044" in notes
    assert "older line(s) were dropped" in first
    assert again == f"Already in the notes about {PHONE}: New fact."


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("the caller", "+14155550134"),
        ("The Caller.", "+14155550134"),
        ("me", "+14155550134"),
        ("(415) 555-0134", "+14155550134"),
        ("+44 20 7946 0958", "+442079460958"),
        ("slack-T1-C1-1700000000.1", "slack-T1-C1-1700000000.1"),  # a caller id the team knows
        ("Dana", NoKey),  # a name is no key
        ("slack-T9-C9-1.2", NoKey),  # an id nobody has
        ("anonymous-123", NoKey),
    ],
)
def test_how_a_person_maps_to_a_caller_key(tony, person, expected):
    CallerMemory.objects.create(caller_id="slack-T1-C1-1700000000.1", notes="A Slack thread.")
    if expected is NoKey:
        with pytest.raises(NoKey):
            person_key(person, Caller(PHONE))
    else:
        assert person_key(person, Caller(PHONE)) == expected


def test_a_personas_directives_in_the_prompt_are_bounded_newest_kept(tony, team):
    for n in range(8):
        Directive.objects.create(persona=tony, text=f"Rule {n}: " + "y" * 900)
    Directive.objects.create(persona=team["maya"], text="Maya's own.")

    text = standing_directives(tony, Caller(PHONE))

    assert len(text) <= DIRECTIVES_MAX_CHARS + len(HEADING) + 1
    assert "Rule 7" in text and "Rule 0" not in text and "Maya's own" not in text
    assert text.index("Rule 5") < text.index("Rule 7")  # oldest first


def test_save_directive_refuses_a_duplicate_and_what_would_not_fit(tony):
    from agents.directives import save_directive
    from agents.tools import ToolContext

    context = ToolContext(tony, Process.objects.create(persona=tony), Caller(PHONE))
    assert save_directive(context, {"text": "Be brief."}).startswith("Saved.")
    assert (
        save_directive(context, {"text": " Be brief. "})
        == "You already have this standing instruction: Be brief."
    )
    for n in range(4):
        assert save_directive(context, {"text": f"{n}" * 990}).startswith("Saved.")

    refused = save_directive(context, {"text": "z" * 990})

    assert refused.startswith("Nothing was saved: your standing instructions already take")
    assert Directive.objects.count() == 5
