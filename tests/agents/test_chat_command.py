"""manage.py chat: the runtime's sync entry point, against the fake upstream."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import CallerSession, LLMCall, Message
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def upstream():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def wired(settings, upstream, tony, maya):
    settings.TRON_LLM = "openai"
    settings.OPENAI_BASE_URL = upstream.base_url
    settings.OPENAI_API_KEY = "sk-test"
    settings.TRON_LLM_MAX_RETRIES = 0
    upstream.reset()
    return upstream


def chat(*args):
    out = StringIO()
    call_command("chat", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_one_message_gets_one_answer_and_is_recorded(wired):
    assert chat("Hello Tony", "--caller", "ops").strip() == "Hello there!"
    session = CallerSession.objects.get()
    assert (session.caller_id, session.channel, session.process.persona.name) == ("ops", "cli", "Tony")
    assert list(Message.objects.values_list("role", "content")) == [
        ("user", "Hello Tony"),
        ("assistant", "Hello there!"),
    ]
    assert LLMCall.objects.get().usage_source == "provider"


def test_runs_continue_the_same_conversation(wired):
    chat("My name is Ada.", "--caller", "ops")
    chat("What's my name?", "--caller", "ops")
    assert [m["content"] for m in wired.last.body["messages"][1:]] == [
        "My name is Ada.",
        "Hello there!",
        "What's my name?",
    ]


def test_lines_from_stdin_are_a_conversation(wired, monkeypatch):
    monkeypatch.setattr("sys.stdin", StringIO("one\n\ntwo\n"))
    assert chat("--persona", "maya", "--caller", "ops").count("Hello there!") == 2
    assert CallerSession.objects.get().process.llm_calls == 2


def test_a_model_failure_is_a_command_error(wired):
    wired.reset(status=500)
    with pytest.raises(CommandError, match="The model failed"):
        chat("hi", "--caller", "ops")
    assert Message.objects.get().content == "hi"  # the words are kept


def run_manage(*args):
    """manage.py as an operator runs it: its exit status and what it printed."""
    import subprocess
    import sys

    from django.conf import settings

    return subprocess.run(
        [sys.executable, "manage.py", "chat", *args],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("message", ["", "   "])
def test_an_empty_message_is_refused_with_status_1(message):
    result = run_manage(message)
    assert result.returncode == 1
    assert "The message is empty" in result.stderr


def test_an_unknown_persona_is_refused_and_nothing_is_recorded(wired):
    with pytest.raises(CommandError, match=r"No enabled persona is called 'nobody'\. Personas: Tony, Maya\."):
        chat("--persona", "nobody", "hi", "--caller", "ops")
    assert not CallerSession.objects.exists()
    assert wired.requests == []


def test_a_persona_is_found_in_any_case(wired):
    chat("--persona", "MAYA", "hi", "--caller", "ops")
    assert CallerSession.objects.get().process.persona.name == "Maya"


@pytest.mark.local_model
def test_with_the_local_model_and_no_model_process_it_runs_one_for_itself(settings, tony, tmp_path):
    from agents.llm.model_server import listening

    settings.TRON_LLM = "local"
    settings.TRON_LOCAL_MODEL_SOCKET = tmp_path / "model.sock"
    assert not listening(settings.TRON_LOCAL_MODEL_SOCKET)
    answer = chat("--persona", "tony", "What is the capital of France?")
    assert answer.strip()
    call = LLMCall.objects.get()
    assert (call.provider, call.usage_source) == ("local", "provider")
    assert not listening(settings.TRON_LOCAL_MODEL_SOCKET)  # stopped with the command
