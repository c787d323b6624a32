"""Hostile VAPI messages (issue 29): each is refused at the door with VAPI's 4xx in the envelope, stores
nothing, and leaves every read working."""

import json

import httpx2
import pytest

from agents.models import CallerSession, Message, Process
from tests.integrations.vapi import fixture, post_vapi

pytestmark = pytest.mark.django_db(transaction=True)


def report(**fields) -> dict:
    message = fixture("end-of-call-report")
    message["message"].update(fields)
    return message


def assert_nothing_stored():
    assert (
        not CallerSession.objects.exists() and not Message.objects.exists() and not Process.objects.exists()
    )


def assert_reads_work(server):
    for path in (
        "/api/processes",
        "/api/sessions?include_ended=true",
        "/api/spawn-tree?all=true",
        "/api/status",
    ):
        assert httpx2.get(f"{server.url}{path}", timeout=10).status_code == 200, path
    for process in Process.objects.all():  # the ORM reads every column back (a cost past its column fails)
        assert httpx2.get(f"{server.url}/api/processes/{process.public_id}", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "cost",
    [10_000_000, 1_000_000.01, -0.5, "0.12", True],
    ids=["past-the-column", "past-the-bound", "negative", "a-string", "a-boolean"],
)
def test_a_cost_that_does_not_fit_the_column_is_a_400_and_nothing_is_stored(live_tron, team, cost):
    response = post_vapi(live_tron, report(cost=cost))

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "message.cost"
    assert_nothing_stored()
    assert_reads_work(live_tron)


@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN", b"1e400", b"-1e400"])
def test_a_cost_that_is_not_a_finite_number_is_a_400(live_tron, team, literal):
    body = json.dumps(report(cost=0.5)).encode().replace(b'"cost": 0.5', b'"cost": ' + literal)
    assert b"0.5" not in body.split(b'"cost"')[1][:8]

    response = post_vapi(live_tron, body)

    assert response.status_code == 400
    assert_nothing_stored()


def test_the_largest_cost_is_stored_and_read_back(live_tron, chat_setup):
    assert post_vapi(live_tron, report(cost=1_000_000)).status_code == 200
    assert float(Process.objects.get(channel="vapi").call_cost_usd) == 1_000_000
    assert_reads_work(live_tron)


@pytest.mark.parametrize("depth", [201, 1000, 100_000])
def test_deep_nesting_is_a_400(live_tron, team, depth):
    body = b'{"message": {"type": "status-update", "artifact": ' + b"[" * depth + b"]" * depth + b"}}"
    response = post_vapi(live_tron, body)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert_nothing_stored()


SURROGATE = "\\ud800"  # as JSON writes it: a lone UTF-16 surrogate, which no database can store


@pytest.mark.parametrize(
    "where",
    [
        '"artifact": {"transcript": "User: hi %s"}',
        '"analysis": {"summary": "%s"}',
        '"endedReason": "%s"',
        '"assistant": {"model": {"model": "tony%s"}}',
        '"call": {"id": "c", "customer": {"number": "+1415555%s"}}',
    ],
    ids=["transcript", "summary", "ended-reason", "model-name", "customer-number"],
)
def test_a_lone_surrogate_anywhere_is_a_400(live_tron, team, where):
    body = '{"message": {"type": "end-of-call-report", "call": {"id": "c"}, %s}}' % (where % SURROGATE)
    response = post_vapi(live_tron, body.replace('"call": {"id": "c"}, "call"', '"call"').encode())

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("The body is not valid JSON")
    assert_nothing_stored()


def test_a_line_longer_than_the_limit_is_a_413_and_nothing_is_stored(live_tron, team, settings):
    settings.TRON_MAX_MESSAGE_CHARS = 1000
    message = report()
    message["message"]["artifact"]["messagesOpenAIFormatted"][2]["content"] = "x" * 1001

    response = post_vapi(live_tron, message)

    assert response.status_code == 413 and response.json()["error"]["code"] == "message_too_long"
    assert_nothing_stored()


def test_a_long_call_keeps_its_newest_lines_within_the_limit(live_tron, chat_setup, settings):
    settings.TRON_MAX_MESSAGE_CHARS = 1000
    lines = [{"role": "user" if i % 2 else "assistant", "content": f"{i:03d} " + "y" * 96} for i in range(30)]
    message = fixture("conversation-update")
    message["message"]["messagesOpenAIFormatted"] = lines

    assert post_vapi(live_tron, message).status_code == 200

    stored = list(Message.objects.order_by("id").values_list("content", flat=True))
    assert len(stored) == 10 and stored[0].startswith("020 ") and stored[-1].startswith("029 ")
    assert sum(map(len, stored)) <= 1000


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"endedReason": "x" * 121}, "message.endedReason"),
        ({"analysis": {"summary": "s" * 10_001}}, "message.analysis.summary"),
        ({"call": {"id": "c" * 256}}, "message.call.id"),
        ({"status": ["ended"]}, "message.status"),
        ({"artifact": {"messages": [{}] * 10_001}}, "message.artifact.messages"),
    ],
    ids=["ended-reason", "summary", "call-id", "status-a-list", "too-many-lines"],
)
def test_a_field_past_its_bound_is_a_400_naming_it(live_tron, team, fields, param):
    response = post_vapi(live_tron, report(**fields))
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert_nothing_stored()


def test_nul_characters_never_reach_the_database(live_tron, chat_setup):
    message = report(endedReason="cust\x00omer-ended", summary="a\x00b")
    message["message"]["analysis"]["summary"] = "sum\x00mary"

    assert post_vapi(live_tron, message).status_code == 200

    process = Process.objects.get(channel="vapi")
    assert (process.summary, process.ended_reason) == ("summary", "customer-ended")
    assert_reads_work(live_tron)


def test_tool_arguments_nested_past_the_parsers_depth_are_a_tool_error(live_tron, team):
    # Arguments as JSON text are parsed by the tool runner, after the edge's own parser saw one string.
    tony = team["tony"]
    tony.tools = ["list_team"]
    tony.save()
    post_vapi(live_tron, "status-update-in-progress")
    message = fixture("tool-calls-docs-example")
    nested = "[" * 5000 + "]" * 5000
    message["message"]["toolCallList"] = [{"id": "tc-1", "name": "list_team", "arguments": nested}]

    response = post_vapi(live_tron, message)

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["error"].startswith("Error: the arguments are not valid JSON")
