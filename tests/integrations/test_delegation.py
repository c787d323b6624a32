"""Delegation through the chat API, with the official SDK and the fake upstream: Tony hands a task to
Sarah with spawn_agent, Sarah works on it in a django-q2 task, and her answer (or her failure) reaches
Tony's conversation once; check_task, and the bounds a model cannot cross."""

import json

import openai
import pytest

from agents.models import Channel, Message, Process
from tests.factories import make_persona

pytestmark = pytest.mark.django_db(transaction=True)

CALLER = "delegation-1"
SARAH_PROMPT = "You are Sarah, the Tech Lead."


@pytest.fixture
def sarah(team):
    tony = team["tony"]
    tony.tools = ["list_team", "spawn_agent", "check_task"]
    tony.save()
    return make_persona(
        name="Sarah",
        role="Tech Lead",
        kind="specialist",
        reports_to=tony,
        system_prompt=SARAH_PROMPT,
        tools=["list_team"],
        sort_order=11,
    )


def spawn(agent="Sarah", task="Review the API design and list what is missing.", call_id="c1"):
    arguments = json.dumps({"agent": agent, "task": task})
    return {"tokens": [], "tool_calls": [{"id": call_id, "name": "spawn_agent", "arguments": arguments}]}


def check(task_id, call_id="c2"):
    arguments = json.dumps({"task_id": task_id})
    return {"tokens": [], "tool_calls": [{"id": call_id, "name": "check_task", "arguments": arguments}]}


def ask(sdk, words="Get Sarah to review the API.", caller=CALLER):
    reply = sdk.chat.completions.create(
        model="tony", messages=[{"role": "user", "content": words}], extra_headers={"X-Request-ID": caller}
    )
    return reply.choices[0].message.content


def system_text(record) -> str:
    return "\n".join(m["content"] for m in record.body["messages"] if m["role"] == "system")


def tool_result(record) -> str:
    return record.tool_result()


def only_child():
    return Process.objects.select_related("persona", "parent").get(channel=Channel.DELEGATED)


def test_tony_delegates_to_sarah_and_her_answer_reaches_his_next_turn(sdk, upstream, sarah, queued_tasks):
    upstream.queue(spawn(), {"tokens": ["I have asked Sarah."]})

    assert ask(sdk) == "I have asked Sarah."

    # The tool answered at once: Sarah's process waits for a worker, below Tony's conversation.
    child = only_child()
    tony_process = Process.objects.get(channel=Channel.HTTP)
    assert (child.persona.name, child.status, child.parent, child.spawn_depth) == (
        "Sarah",
        "pending",
        tony_process,
        1,
    )
    assert tool_result(upstream.requests[1]) == (
        f"Started Sarah on the task (task id {child.public_id}). The result will reach you in this "
        "conversation when they finish; check_task tells where it stands."
    )

    upstream.queue({"tokens": ["Missing: pagination and rate limits."]})
    assert queued_tasks() == 1

    sarahs = upstream.requests[2].body
    assert sarahs["messages"][0] == {"role": "system", "content": SARAH_PROMPT}
    assert "Review the API design and list what is missing." in sarahs["messages"][-1]["content"]
    assert [t["function"]["name"] for t in sarahs["tools"]] == ["list_team"]  # her own tools only
    child.refresh_from_db()
    assert (child.status, child.result, child.delivered_at) == (
        "completed",
        "Missing: pagination and rate limits.",
        None,
    )

    upstream.queue({"tokens": ["Sarah says: pagination and rate limits."]})
    assert ask(sdk, "What did Sarah find?") == "Sarah says: pagination and rate limits."

    assert "Missing: pagination and rate limits." in system_text(upstream.requests[3])
    assert f"task id {child.public_id}" in system_text(upstream.requests[3])
    child.refresh_from_db()
    assert child.delivered_at is not None

    upstream.queue({"tokens": ["Anything else?"]})
    ask(sdk, "Thanks.")
    assert "pagination" not in system_text(upstream.requests[4])  # delivered once


def test_a_result_that_arrives_while_the_turn_runs_goes_into_its_next_model_call(sdk, upstream, sarah):
    # django-q2 runs the task inline here (the tests' sync mode): Sarah finishes before Tony's next call.
    upstream.queue(spawn(), {"tokens": ["Found it: 42."]}, {"tokens": ["Sarah found 42."]})

    assert ask(sdk) == "Sarah found 42."

    tony_second = upstream.requests[2]
    assert "Found it: 42." in system_text(tony_second)
    assert tony_second.body["messages"][-1]["role"] == "tool"  # between the tool round and the answer
    child = only_child()
    assert child.status == "completed" and child.delivered_at is not None

    upstream.queue({"tokens": ["Yes."]})
    ask(sdk, "Anything else?")
    assert "Found it: 42." not in system_text(upstream.requests[3])


def test_a_failing_child_reaches_tony_as_a_failure(sdk, upstream, sarah, queued_tasks):
    upstream.queue(spawn(), {"tokens": ["Asked her."]})
    ask(sdk)

    upstream.queue({"status": 500})  # Sarah's model call fails
    queued_tasks()

    child = only_child()
    assert child.status == "failed"
    assert child.error and child.result == ""
    upstream.queue({"tokens": ["Sarah could not do it."]})
    assert ask(sdk, "Well?") == "Sarah could not do it."
    shown = system_text(upstream.requests[3])
    assert f"Sarah (task id {child.public_id}" in shown
    assert f"failed: {child.error}" in shown
    child.refresh_from_db()
    assert child.delivered_at is not None


def test_a_turn_that_fails_leaves_the_result_for_the_next(sdk, upstream, sarah, queued_tasks):
    upstream.queue(spawn(), {"tokens": ["Asked her."]})
    ask(sdk)
    upstream.queue({"tokens": ["Her answer."]})
    queued_tasks()

    upstream.queue({"status": 500})
    with pytest.raises(openai.APIStatusError):
        ask(sdk, "Well?")
    assert "Her answer." in system_text(upstream.requests[-1])
    assert only_child().delivered_at is None

    upstream.queue({"tokens": ["She answered."]})
    ask(sdk, "Again?")
    assert "Her answer." in system_text(upstream.requests[-1])
    assert only_child().delivered_at is not None


def test_a_task_stopped_before_it_ran_reaches_tony_as_a_failure(sdk, upstream, sarah, queued_tasks):
    upstream.queue(spawn(), {"tokens": ["Asked her."]})
    ask(sdk)
    only_child().finish(status=Process.Status.FAILED, error="Stopped by operator")  # the admin's action

    queued_tasks()

    assert len(upstream.requests) == 2  # Sarah's model was never called
    assert only_child().sessions.get().ended_at is not None
    upstream.queue({"tokens": ["She was stopped."]})
    ask(sdk, "Well?")
    assert "failed: Stopped by operator" in system_text(upstream.requests[-1])


def test_a_member_switched_off_before_the_task_ran_fails_it(sdk, upstream, sarah, queued_tasks):
    upstream.queue(spawn(), {"tokens": ["Asked her."]})
    ask(sdk)
    sarah.enabled = False
    sarah.save()

    queued_tasks()

    child = only_child()
    assert len(upstream.requests) == 2
    assert (child.status, child.error) == (
        "failed",
        "The task did not run: Sarah was switched off before a worker started it.",
    )


def test_check_task_tells_where_a_task_stands_and_then_its_result(sdk, upstream, sarah, queued_tasks):
    upstream.queue(spawn(), {"tokens": ["Asked her."]})
    ask(sdk)
    child = only_child()

    upstream.queue(check(child.public_id), {"tokens": ["Still waiting."]})
    ask(sdk, "Is she done?")
    assert (
        tool_result(upstream.requests[-1])
        == f"Task {child.public_id} (Sarah): waiting for a worker to start it."
    )

    upstream.queue({"tokens": ["All good."]})
    queued_tasks()
    upstream.reset(tokens=["Done."])
    upstream.queue(check(child.public_id.upper()))
    ask(sdk, "Now?")
    assert (
        tool_result(upstream.requests[-1])
        == f"Task {child.public_id} (Sarah) is done. The answer:\nAll good."
    )
    child.refresh_from_db()
    assert child.delivered_at is not None


def test_check_task_refuses_tasks_of_other_conversations(sdk, upstream, sarah):
    upstream.queue(spawn(), {"tokens": ["Her answer."]}, {"tokens": ["Asked."]})
    ask(sdk, caller="someone-else")
    theirs = only_child()

    upstream.reset(tokens=["Hm."])
    upstream.queue(check(theirs.public_id), check("00000000", call_id="c3"))
    ask(sdk)

    assert tool_result(upstream.requests[-2]) == (
        f"Error: there is no task '{theirs.public_id}' of yours (spawn_agent gives the ids)."
    )
    assert tool_result(upstream.requests[-1]).startswith("Error: there is no task '00000000' of yours")


@pytest.mark.parametrize(
    ("agent", "error"),
    [
        ("Nobody", "Error: unknown team member: 'Nobody' (list_team names the team)."),
        ("Claire", "Error: Claire is not available: switched off by an operator."),
        ("tony", "Error: you cannot delegate to yourself; do the task, or pick a team member."),
    ],
)
def test_a_delegation_that_cannot_be_made_is_a_tool_error(sdk, upstream, sarah, agent, error):
    make_persona(name="Claire", role="Frontend", kind="specialist", enabled=False)
    upstream.queue(spawn(agent), {"tokens": ["Sorry."]})

    assert ask(sdk) == "Sorry."

    assert tool_result(upstream.requests[1]) == error
    assert not Process.objects.filter(channel=Channel.DELEGATED).exists()


def test_fan_out_is_bounded_by_unfinished_children(sdk, upstream, sarah, queued_tasks, settings):
    settings.TRON_SPAWN_MAX_CHILDREN = 1
    both = spawn()
    both["tool_calls"].append(spawn(task="Another one.", call_id="c2")["tool_calls"][0])
    upstream.queue(both, {"tokens": ["One of them."]})

    ask(sdk)

    first, second = (upstream.requests[1].tool_result(call_id) for call_id in ("c1", "c2"))
    assert first.startswith("Started Sarah on the task")
    assert second.startswith("Error: 1 tasks you delegated are still unfinished, the most at once")
    assert Process.objects.filter(channel=Channel.DELEGATED).count() == 1

    upstream.reset(tokens=["Done."])
    queued_tasks()  # the first finishes, so there is room again
    upstream.queue(spawn(task="Another one."), {"tokens": ["Asked again."]})
    ask(sdk, "And the other?")
    assert tool_result(upstream.requests[-1]).startswith("Started Sarah on the task")


def test_depth_is_bounded(sdk, upstream, sarah, settings):
    settings.TRON_SPAWN_MAX_DEPTH = 1
    sarah.tools = ["spawn_agent"]
    sarah.save()
    make_persona(name="Gary", role="Senior Engineer", kind="specialist", reports_to=sarah)
    upstream.queue(
        spawn(),  # Tony → Sarah: depth 1
        spawn("Gary", "Write it."),  # Sarah → Gary: depth 2, refused
        {"tokens": ["I did it myself."]},  # Sarah's answer
        {"tokens": ["Sarah did it."]},  # Tony's answer
    )

    assert ask(sdk) == "Sarah did it."

    assert tool_result(upstream.requests[2]) == (
        "Error: this conversation is already delegated work 1 level(s) deep, the most is 1 "
        "(TRON_SPAWN_MAX_DEPTH); do the task yourself."
    )
    assert list(
        Process.objects.filter(channel=Channel.DELEGATED).values_list("persona__name", flat=True)
    ) == ["Sarah"]
    assert only_child().result == "I did it myself."


def test_delegation_switched_off(sdk, upstream, sarah, settings):
    settings.TRON_SPAWN_MAX_DEPTH = 0
    upstream.queue(spawn(), {"tokens": ["Myself, then."]})

    ask(sdk)

    assert tool_result(upstream.requests[1]).startswith("Error: delegation is switched off here")


def test_a_delegation_past_the_running_limit_is_a_tool_error(sdk, upstream, sarah, settings):
    settings.TRON_MAX_RUNNING_PROCESSES = 1  # Tony's conversation is the one
    upstream.queue(spawn(), {"tokens": ["Myself, then."]})

    assert ask(sdk) == "Myself, then."

    assert tool_result(upstream.requests[1]).startswith(
        "Error: the server runs all the processes it may (TRON_MAX_RUNNING_PROCESSES)"
    )
    assert not Process.objects.filter(channel=Channel.DELEGATED).exists()


def test_the_childs_transcript_holds_the_brief_and_its_answer(sdk, upstream, sarah):
    upstream.queue(spawn(), {"tokens": ["Reviewed."]}, {"tokens": ["OK."]})
    ask(sdk)

    child = only_child()
    lines = list(Message.objects.filter(process=child).order_by("id").values_list("role", "content"))
    assert [role for role, _ in lines] == ["user", "assistant"]  # the brief stored once
    assert lines[0][1].startswith("Tony (CTO) has delegated this task to you:")
    assert lines[1][1] == "Reviewed."
    assert child.sessions.get().ended_at is not None
