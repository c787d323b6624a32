"""The process page's timeline: each turn's wait, model calls (with their first token), tool runs and
delegated children on one time axis, from the rows the engine records."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from agents.models import Turn
from tests.factories import make_llm_call, make_message, make_persona, make_process, make_session

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 6, 22, 40, 0, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def page(client, process) -> str:
    response = client.get(reverse("admin:agents_process_change", args=[process.pk]))
    assert response.status_code == 200
    return response.content.decode()


def steps(html: str, turn: Turn) -> list[dict]:
    """The bars of one turn's timeline: kind, position and width (percent), and the hover text."""
    block = html.split(f'id="timeline-turn-{turn.pk}"', 1)[1].split('<div class="turn-timeline"', 1)[0]
    found = re.findall(
        r'<span class="step step-(\w+)( failed)?" style="left: ([\d.]+)%; width: ([\d.]+)%" title="([^"]*)"',
        block,
    )
    return [
        {"kind": k, "failed": bool(f), "left": float(left), "width": float(w), "title": t}
        for k, f, left, w, t in found
    ]


@pytest.fixture
def slow_turn(tony):
    """A turn that waited 200 ms for the caller's earlier one, then ran 2 s: a model call (first token
    after 300 ms) that called a tool, the tool (500 ms), a delegated child, then a second model call."""
    process = make_process(tony, started_at=T0)
    session = make_session("req-slow", process=process)
    turn = Turn.objects.create(
        caller_id=session.caller_id,
        session=session,
        process=process,
        state=Turn.State.ANSWERED,
        arrived_at=at(0),
        started_at=at(200),
        finished_at=at(2200),
        lease_until=at(2200),
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    make_llm_call(process, turn=turn, created_at=at(200), ttft_ms=300, duration_ms=400)
    make_message(
        process,
        turn=turn,
        role="tool",
        name="spawn_agent",
        content="Started Sarah.",
        started_at=at(600),
        created_at=at(1100),
    )
    sarah = make_persona(name="Sarah", role="Tech Lead")
    make_process(sarah, parent=process, status="completed", started_at=at(1000), finished_at=at(3000))
    make_llm_call(process, turn=turn, created_at=at(1100), ttft_ms=None, duration_ms=1000, error="timed out")
    return process, turn


def test_a_turns_steps_are_placed_on_its_time_axis(admin_client, slow_turn):
    process, turn = slow_turn

    html = page(admin_client, process)

    assert html.index('id="transcript"') < html.index('id="timeline"') < html.index('id="model-calls"')
    bars = steps(html, turn)
    # The axis runs from the turn's arrival to the last thing it started (the child, until 3 s).
    assert [(b["kind"], b["left"], b["width"]) for b in bars] == [
        ("wait", 0.0, pytest.approx(6.67, abs=0.01)),
        ("run", pytest.approx(6.67, abs=0.01), pytest.approx(66.67, abs=0.01)),
        ("model", pytest.approx(6.67, abs=0.01), pytest.approx(13.33, abs=0.01)),
        ("model", pytest.approx(36.67, abs=0.01), pytest.approx(33.33, abs=0.01)),
        ("tool", 20.0, pytest.approx(16.67, abs=0.01)),
        ("child", pytest.approx(33.33, abs=0.01), pytest.approx(66.67, abs=0.01)),
    ]
    assert [b["failed"] for b in bars] == [False, False, False, True, False, False]
    assert bars[2]["title"] == "model call 1 (gpt-4o-mini): 400 ms from 200 ms, first token after 300 ms"
    assert bars[4]["title"] == "spawn_agent: 500 ms from 600 ms"
    assert bars[5]["title"].startswith("Sarah (")
    # The first token of the first call: 200 + 300 ms of 3 s.
    assert 'class="first-token" style="left: 16.67%"' in html
    assert "3.0 s in all: waiting 200 ms, model 1.4 s, tools 500 ms, delegated 2.0 s" in html
    assert "trace <code>0af7651916cd43dd8448eb211c80319c</code>" in html


def test_a_process_without_engine_turns_has_no_timeline(admin_client, tony):
    process = make_process(tony, channel="vapi")
    make_message(process, content="Reported by the phone platform")

    assert 'id="timeline"' not in page(admin_client, process)
