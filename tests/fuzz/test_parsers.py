"""The edges' parsers, given anything: they raise only their own refusal, and what they let through is
text a database stores, within its columns."""

from hypothesis import given
from hypothesis import strategies as st

from agents.models import CallerSession, Process
from integrations.elevenlabs_frames import BadFrame, read_frame
from integrations.models import SlackMessage, SlackThread
from integrations.slack.events import Unreadable, incoming
from integrations.vapi_events import BadEvent, parse_event

from .strategies import bodies, encode, frames, junk, slack_payloads, vapi_payloads


def storable(text: str, column_width: int | None = None) -> bool:
    text.encode("utf-8")
    return "\x00" not in text and (column_width is None or len(text) <= column_width)


def width(model, field):
    return model._meta.get_field(field).max_length


@given(bodies(vapi_payloads))
def test_a_vapi_message_is_read_or_refused_with_a_bad_event(body):
    try:
        event = parse_event(body)
        lines = event.lines()
        calls = event.tool_calls() if event.type == "tool-calls" else []
    except BadEvent as exc:
        assert exc.status in (400, 413) and exc.message
        return
    assert storable(event.call_id, width(CallerSession, "provider_call_id"))
    assert storable(event.summary) and storable(event.ended_reason, width(Process, "ended_reason"))
    assert all(storable(text) for _role, text in lines)
    assert event.cost is None or 0 <= event.cost <= 1_000_000
    caller = event.caller()
    assert caller is None or storable(caller.caller_id, width(CallerSession, "caller_id"))
    assert all(isinstance(call["id"], str) for call in calls)


@given(st.one_of(slack_payloads, junk))
def test_a_slack_envelope_is_read_or_refused_as_unreadable(envelope):
    if not isinstance(envelope, dict):
        return  # the view refuses a body that is not an object before this
    try:
        message = incoming(envelope)
    except Unreadable:
        return
    if message is None:
        return
    for value, column in (
        (message.event_id, width(SlackMessage, "event_id")),
        (message.user, width(SlackMessage, "user")),
        (message.ts, width(SlackMessage, "ts")),
        (message.channel, width(SlackThread, "channel")),
        (message.thread_ts, width(SlackThread, "thread_ts")),
        (message.team_id, width(SlackThread, "team_id")),
        (message.bot_user_id, width(SlackMessage, "bot_user_id")),
        (message.text, None),
    ):
        assert storable(value, column)
    assert all(storable(name) for name in message.file_names)


@given(st.one_of(st.builds(encode, frames, ascii_only=st.booleans()), st.binary(max_size=100)))
def test_a_socket_frame_is_read_or_refused_with_a_bad_frame(data):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # a text frame is UTF-8: the WebSocket server closes one that is not (RFC 6455)
    try:
        read_frame(text)
    except BadFrame as exc:
        assert exc.message
