"""The timeline from a real turn: the engine records when each tool ran, and the process page puts it
between the model calls that asked for it and took its result."""

import pytest
from django.urls import reverse

from agents.models import LLMCall, Message, Process

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_real_turns_tool_run_is_timed_and_shown_between_its_model_calls(sdk, upstream, team, admin_client):
    team["tony"].tools = ["list_team"]
    team["tony"].save()
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "call_1", "name": "list_team"}]},
        {"tokens": ["Tony and Maya."], "first_token_delay": 0.05},
    )

    sdk.chat.completions.create(
        model="tony",
        messages=[{"role": "user", "content": "Who is here?"}],
        extra_headers={"X-Request-ID": "tl"},
    )

    process = Process.objects.get(channel="http")
    tool = Message.objects.get(process=process, role="tool")
    first, second = LLMCall.objects.filter(process=process).order_by("id")
    assert first.created_at <= tool.started_at <= tool.created_at <= second.created_at
    html = admin_client.get(reverse("admin:agents_process_change", args=[process.pk])).content.decode()
    assert 'class="step step-tool"' in html and 'title="list_team: ' in html
    assert html.count('class="step step-model') == 2 and 'class="first-token"' in html
