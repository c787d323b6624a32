"""Exports: conversations as JSONL in OpenAI's chat fine-tuning format and in the replay's input format,
from the admin's process list and from `manage.py export_conversations`; only what is stored is read."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from agents.models import Channel, Message, Process
from agents.recordings import FORMAT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conversations(sdk, upstream, team):
    """Ada's conversation with Tony (a tool call, then an answer; then a second turn), and Bob's with Maya."""
    team["tony"].tools = ["list_team"]
    team["tony"].save()
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "c1", "name": "list_team"}]},
        {"tokens": ["Tony", " and Maya."]},
        {"tokens": ["Soon."]},
        {"tokens": ["Hello", " Bob."]},
    )
    for model, caller, words in (
        ("tony", "ada", "Who is on the team?"),
        ("tony", "ada", "When do we launch?"),
        ("maya", "bob", "Hi Maya"),
    ):
        sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": words}], extra_headers={"X-Request-ID": caller}
        )
    return {p.persona.name: p for p in Process.objects.select_related("persona")}


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def download(admin_client, action: str, processes) -> list[dict]:
    response = admin_client.post(
        reverse("admin:agents_process_changelist"),
        {"action": action, "_selected_action": [p.pk for p in processes]},
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/jsonl"
    assert response["Content-Disposition"].startswith('attachment; filename="conversations-')
    return lines(b"".join(response.streaming_content).decode())


def test_the_fine_tuning_export_is_openais_chat_format_with_the_prompt_as_sent(admin_client, conversations):
    tony = conversations["Tony"]
    (record,) = download(admin_client, "export_fine_tuning", [tony])

    assert record["messages"][0] == {"role": "system", "content": "You are Tony, the CTO."}
    assert [m["role"] for m in record["messages"][1:]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    call = record["messages"][2]["tool_calls"][0]
    assert call["function"]["name"] == "list_team" and record["messages"][3]["tool_call_id"] == call["id"]
    assert record["messages"][-1] == {"role": "assistant", "content": "Soon."}
    assert [tool["function"]["name"] for tool in record["tools"]] == ["list_team"]


def test_the_replay_export_is_what_a_replay_reads(admin_client, conversations):
    tony = conversations["Tony"]
    (record,) = download(admin_client, "export_replay_input", [tony])

    assert (record["format"], record["process"], record["persona"], record["channel"]) == (
        FORMAT,
        tony.public_id,
        "Tony",
        "http",
    )
    assert record["principal"] == {"trust": "public", "caller_id": "req-ada", "name": ""}
    first, second = record["turns"]
    assert record["messages"][first["lines"][0]] == {"role": "user", "content": "Who is on the team?"}
    assert (first["answer"], first["output_tokens"], first["input_tokens"]) == ("Tony and Maya.", 2, 84)
    assert first["tool_results"][0][0] == "list_team" and first["ttft_ms"] is not None
    assert second["said"] == 1 and second["answer"] == "Soon." and second["lines"][0] == first["lines"][1]


def test_the_command_exports_a_personas_conversations_to_a_file(conversations, tmp_path):
    out = tmp_path / "tony.jsonl"
    call_command("export_conversations", "--persona", "TONY", "-o", str(out), verbosity=0)

    (record,) = lines(out.read_text())
    assert record["messages"][1] == {"role": "user", "content": "Who is on the team?"}

    stdout = io.StringIO()
    call_command("export_conversations", "--format", "replay", stdout=stdout, verbosity=0)
    assert sorted(r["persona"] for r in lines(stdout.getvalue())) == ["Maya", "Tony"]
    stdout = io.StringIO()
    call_command(
        "export_conversations", "--process", conversations["Maya"].public_id, stdout=stdout, verbosity=0
    )
    assert [r["messages"][-1]["content"] for r in lines(stdout.getvalue())] == ["Hello Bob."]


def test_replays_memory_updates_and_what_is_no_longer_stored_are_not_exported(conversations, team):
    replayed = Process.objects.create(persona=team["tony"], channel=Channel.REPLAY)
    Message.objects.create(process=replayed, role="user", content="a replay's words")
    Message.objects.filter(process=conversations["Maya"]).delete()  # as a retention rule would remove it

    stdout = io.StringIO()
    call_command("export_conversations", "--format", "replay", stdout=stdout, verbosity=0)

    assert [r["process"] for r in lines(stdout.getvalue())] == [conversations["Tony"].public_id]


def test_the_command_refuses_what_it_cannot_read(conversations):
    with pytest.raises(CommandError, match="No persona is called"):
        call_command("export_conversations", "--persona", "nobody")
    with pytest.raises(CommandError, match="--since must be a date"):
        call_command("export_conversations", "--since", "yesterday")
