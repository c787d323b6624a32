"""Traces: a turn through the chat API, with the official SDK and the fake upstream, lands as OpenTelemetry
spans at a real OTLP/HTTP receiver (tests/otlp.py): their names, GenAI attributes and parentage, the
caller's traceparent continued, the delegated task and the memory writer joining the trace across the
django-q2 worker, and callers' words kept out unless opted in."""

import json

import httpx2
import pytest

from agents import tracing
from agents.models import Channel, Process, Turn
from tests.factories import make_persona
from tests.integrations.test_elevenlabs_ws import INIT, connect, reply
from tests.integrations.vapi import post_vapi, vapi_chat
from tests.otlp import OTLPReceiver

pytestmark = pytest.mark.django_db(transaction=True)

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
WORDS = "Who is on the team? My name is Ada Lovelace."


@pytest.fixture(scope="session")
def otlp():
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def traced(settings, otlp):
    """Tracing on, to the receiver (the setting's change starts the exporter; the test's end stops it)."""
    otlp.clear()
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = otlp.url
    assert tracing.on()
    yield otlp
    tracing.flush()


def received(otlp) -> OTLPReceiver:
    tracing.flush()
    return otlp


def ask(sdk, words=WORDS, headers=None, caller="trace-1"):
    reply = sdk.chat.completions.with_raw_response.create(
        model="tony",
        messages=[{"role": "user", "content": words}],
        extra_headers={"X-Request-ID": caller, **(headers or {})},
    )
    return reply


def test_a_turn_is_a_trace_of_its_model_calls_tool_runs_and_database_steps(
    sdk, live_tron, upstream, team, traced
):
    team["tony"].tools = ["list_team"]
    team["tony"].save()
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "call_7", "name": "list_team"}]},
        {"tokens": ["Tony", " and Maya."]},
    )

    reply = ask(sdk)
    spans = received(traced)

    process = Process.objects.get(public_id=reply.headers["X-Tron-Process-ID"])
    turn = spans.one("invoke_agent Tony")
    assert turn.parent_span_id == ""  # no caller's trace to continue: a trace of its own
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn.attributes["gen_ai.agent.name"] == "Tony"
    assert turn.attributes["gen_ai.conversation.id"] == process.public_id
    assert turn.attributes["tron.channel"] == "http"
    assert turn.attributes["tron.principal.trust"] == "public"
    assert (turn.attributes["gen_ai.usage.input_tokens"], turn.attributes["gen_ai.usage.output_tokens"]) == (
        84,
        2,
    )
    assert turn.resource["service.name"] == "tron"

    first, second = spans.named("chat gpt-4o-mini")
    for call in (first, second):
        assert call.parent_span_id == turn.span_id and call.trace_id == turn.trace_id
        assert call.kind == 3  # SPAN_KIND_CLIENT
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert call.attributes["gen_ai.response.model"] == "gpt-4o-mini"
        assert call.attributes["gen_ai.response.id"] == "chatcmpl-up"
        assert call.attributes["gen_ai.usage.input_tokens"] == 42
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert second.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert second.attributes["gen_ai.usage.output_tokens"] == 2
    assert second.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert "error.type" not in second.attributes

    tool = spans.one("execute_tool list_team")
    assert tool.parent_span_id == turn.span_id
    assert tool.attributes["gen_ai.tool.name"] == "list_team"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_7"
    assert first.end_ns <= tool.start_ns <= tool.end_ns <= second.start_ns  # one after the other

    claim = spans.one("claim")
    assert claim.parent_span_id == turn.span_id
    assert spans.one("turn_store.claim").parent_span_id == claim.span_id
    for step in ("turn_store.record_call", "turn_store.open_call", "turn_store.finish"):
        assert spans.one(step).parent_span_id == turn.span_id

    # The ids are kept: on the turn, and on the process (its first traced turn's), as the API shows it.
    row = Turn.objects.get(process=process)
    assert (row.trace_id, row.span_id) == (turn.trace_id, turn.span_id)
    detail = httpx2.get(f"{live_tron.url}/api/processes/{process.public_id}", timeout=10)
    assert detail.json()["trace_id"] == turn.trace_id


def test_the_callers_traceparent_is_continued(sdk, upstream, team, traced):
    upstream.queue({"tokens": ["Hi."]})

    ask(sdk, headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})

    turn = received(traced).one("invoke_agent Tony")
    assert (turn.trace_id, turn.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)


async def test_an_elevenlabs_sockets_turns_continue_the_traceparent_of_its_handshake(
    application, chat_setup, team, traced
):
    chat_setup.queue({"tokens": ["Hi."]})
    parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode()
    communicator, connected, _ = await connect(
        application, "/v1/convai/conversation?agent_id=tony", headers=[(b"traceparent", parent)]
    )
    assert connected
    await communicator.send_json_to(INIT)
    await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to({"type": "user_message", "text": "Hello?"})
    await reply(communicator)

    turn = received(traced).one("invoke_agent Tony")
    assert (turn.trace_id, turn.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    await communicator.disconnect()


def test_a_malformed_traceparent_starts_a_trace_of_its_own(sdk, upstream, team, traced):
    upstream.queue({"tokens": ["Hi."]})

    ask(sdk, headers={"traceparent": "00-not-a-trace-01"})

    turn = received(traced).one("invoke_agent Tony")
    assert turn.parent_span_id == "" and len(turn.trace_id) == 32


def test_callers_words_and_ids_stay_out_of_spans_unless_opted_in(sdk, upstream, team, traced, settings):
    upstream.queue({"tokens": ["Hello", " Ada."]})
    ask(sdk)
    everything = json.dumps([span.attributes for span in received(traced).spans])
    assert "Ada" not in everything and "trace-1" not in everything
    assert "gen_ai.input.messages" not in everything

    traced.clear()
    settings.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = True
    upstream.queue({"tokens": ["Hello", " Ada."]})
    ask(sdk)

    spans = received(traced)
    turn = spans.one("invoke_agent Tony")
    assert json.loads(turn.attributes["gen_ai.input.messages"]) == [{"role": "user", "content": WORDS}]
    assert json.loads(turn.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "content": "Hello Ada."}
    ]
    assert turn.attributes["tron.caller.id"] == "req-trace-1"
    call = spans.one("chat gpt-4o-mini")
    assert json.loads(call.attributes["gen_ai.input.messages"])[-1] == {"role": "user", "content": WORDS}


def test_a_failed_model_call_marks_its_span_and_the_turn_with_the_error(sdk, upstream, team, traced):
    upstream.queue({"tokens": ["Hel", "lo"], "error_after": 1}, {"tokens": ["Hi."]})

    with pytest.raises(Exception):  # noqa: B017 - the SDK raises on the stream's error event
        for _chunk in sdk.chat.completions.create(
            model="tony",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            extra_headers={"X-Request-ID": "trace-2"},
        ):
            pass

    spans = received(traced)
    call, turn = spans.one("chat gpt-4o-mini"), spans.one("invoke_agent Tony")
    assert call.attributes["error.type"] == "upstream_error" and call.status_code == 2
    assert turn.attributes["error.type"] == "upstream_error" and turn.status_code == 2


def test_a_delegated_task_continues_the_trace_across_the_worker(sdk, upstream, team, traced, queued_tasks):
    tony = team["tony"]
    tony.tools = ["spawn_agent"]
    tony.save()
    make_persona(name="Sarah", role="Tech Lead", system_prompt="You are Sarah.", sort_order=11)
    task = json.dumps({"agent": "Sarah", "task": "Review the API."})
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "c1", "name": "spawn_agent", "arguments": task}]},
        {"tokens": ["Sarah is on it."]},
        {"tokens": ["Reviewed: two endpoints lack pagination."]},  # Sarah, in the worker
    )

    ask(sdk)
    tracing.flush()
    assert queued_tasks() == 1  # the worker runs the child's turn now, after the request ended

    spans = received(traced)
    tony_turn, spawn = spans.one("invoke_agent Tony"), spans.one("execute_tool spawn_agent")
    sarah_turn = spans.one("invoke_agent Sarah")
    assert sarah_turn.trace_id == tony_turn.trace_id
    assert sarah_turn.parent_span_id == spawn.span_id
    assert sarah_turn.attributes["tron.channel"] == Channel.DELEGATED
    child = Process.objects.get(channel=Channel.DELEGATED)
    assert child.trace_id == tony_turn.trace_id


def test_the_memory_writer_continues_the_trace_of_the_calls_last_turn(
    sdk, live_tron, upstream, team, traced, queued_tasks
):
    upstream.queue({"tokens": ["Nice to meet you, Ada."]}, {"tokens": ["Ada. Likes tea."]})
    post_vapi(live_tron, "status-update-in-progress")
    vapi_chat(sdk, "Hi, I'm Ada. I like tea.")
    post_vapi(live_tron, "end-of-call-report")
    assert queued_tasks() == 1  # the memory writer

    turns = received(traced).named("invoke_agent Tony")
    (call_turn,) = [span for span in turns if span.attributes["tron.channel"] == Channel.VAPI]
    (writer,) = [span for span in turns if span.attributes["tron.channel"] == Channel.MEMORY]
    assert (writer.trace_id, writer.parent_span_id) == (call_turn.trace_id, call_turn.span_id)


def test_with_tracing_off_nothing_is_sent_and_no_ids_are_kept(sdk, upstream, team, otlp, settings):
    otlp.clear()
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = ""
    assert not tracing.on()
    upstream.queue({"tokens": ["Hi."]})

    reply = ask(sdk)

    tracing.flush()
    assert otlp.spans == []
    process = Process.objects.get(public_id=reply.headers["X-Tron-Process-ID"])
    assert process.trace_id == "" and Turn.objects.get(process=process).trace_id == ""


def test_the_traces_endpoint_is_used_as_it_is_and_the_base_gets_v1_traces(settings, otlp):
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = "http://collector:4318/"
    assert tracing.endpoint() == "http://collector:4318/v1/traces"
    settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = f"{otlp.url}/custom/path"
    assert tracing.endpoint() == f"{otlp.url}/custom/path"
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = ""
    assert not tracing.on()


def test_vapis_tool_calls_continue_its_trace(live_tron, chat_setup, team, traced):
    team["tony"].tools = ["list_team"]
    team["tony"].save()
    parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

    answer = post_vapi(live_tron, "tool-calls", headers={"traceparent": parent})

    assert answer.status_code == 200
    spans = received(traced)
    webhook = spans.one("vapi tool-calls")
    assert (webhook.trace_id, webhook.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    tools = spans.named("execute_tool ")
    assert tools and all(span.parent_span_id == webhook.span_id for span in tools)
    assert all(span.attributes["gen_ai.tool.call.id"] for span in tools)
