"""One activity end to end on the embedded model (SmolLM2-135M-Instruct in a real model process)."""

import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from agents.llm.model_server import listening
from agents.models import LLMCall
from lifeloop.models import ActivityRun, JournalEntry
from tests.factories import make_persona

pytestmark = [pytest.mark.local_model, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_process(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRON_")}
    env.update(TRON_LOCAL_MODEL_SOCKET=str(path), TRON_LOCAL_MODEL_THREADS="1", TRON_LOCAL_MAX_TOKENS="96")
    process = subprocess.Popen([sys.executable, "manage.py", "serve_model"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while not listening(path):
        assert process.poll() is None, "the model process exited"
        assert time.monotonic() < deadline, "the model process did not start"
        time.sleep(0.1)
    yield path
    process.terminate()
    assert process.wait(timeout=15) == 0


def test_the_journal_is_written_by_the_embedded_model(settings, model_process):
    settings.TRON_LLM = "local"
    settings.TRON_LOCAL_MODEL_SOCKET = model_process
    settings.TRON_LIFE_SLACK_CHANNEL = ""
    tony = make_persona(name="Tony", role="CTO", life_enabled=True, focus_areas=["engineering"])
    ActivityRun.objects.create(
        persona=tony, activity="news", status="completed", result="Read about faster databases."
    )

    out = StringIO()
    call_command("trigger_life", "journal", "--persona", "Tony", stdout=out)

    run = ActivityRun.objects.get(activity="journal")
    assert run.status == "completed", run.error
    entry = JournalEntry.objects.get(run=run)
    assert len(entry.text.split()) >= 3 and "<|im_" not in entry.text
    assert entry.importance is None or 1 <= entry.importance <= 10  # a small model may give no score
    assert out.getvalue().strip() == f"Tony: {entry.text}"
    process = run.process
    assert (process.channel, process.status, process.llm_calls) == ("life", "completed", 1)
    call = LLMCall.objects.get(process=process)
    assert (call.provider, call.usage_source) == ("local", "provider")
    assert call.input_tokens > 0 and call.output_tokens > 0
