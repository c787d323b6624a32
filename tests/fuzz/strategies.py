"""Hypothesis strategies for hostile payloads: the shapes each edge expects, with any field replaced by
junk of any type, depth, size or number (huge, negative, infinite, NaN), text with lone surrogates, NUL
and four-byte characters, and bodies that are not JSON at all. Encoded as JSON the way a client might:
escaped to ASCII (a lone surrogate as "\\ud800"), or raw UTF-8 (a surrogate as bytes no UTF-8 allows)."""

import json

from hypothesis import strategies as st

surrogates = st.characters(categories=["Cs"])
texts = st.one_of(
    st.text(max_size=20),
    st.text(st.one_of(st.characters(), surrogates, st.sampled_from("\x00𝔘é\n")), max_size=20),
    st.sampled_from(
        ["", " ", "ended", "in-progress", "final", "user", "assistant", "\x00", "\ud800", "tony"]
    ),
    st.integers(0, 300_000).map(lambda n: "x" * n),  # past every column and message limit
)
numbers = st.one_of(
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),  # NaN and the infinities included
    st.sampled_from(
        [0, -1, 0.1234, 999_999.99, 1_000_000, 1_000_000.01, 10_000_000, 1e400, 2**63, -(2**63) - 1]
    ),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
junk = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)


def maybe(strategy):
    """The expected shape, or junk in its place."""
    return st.one_of(strategy, junk)


ids = maybe(st.one_of(st.text(max_size=300), st.integers()))
phones = maybe(st.sampled_from(["+14155551234", "+4930123456", "anonymous", "0000000000", "+1" + "9" * 300]))


def obj(**fields):
    """An object with any of `fields` (each in its shape or junk), or junk instead."""
    return maybe(st.fixed_dictionaries({}, optional={name: maybe(value) for name, value in fields.items()}))


def encode(value, *, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")  # a raw surrogate: bytes no UTF-8 decoder accepts


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def bodies(payloads):
    """`payloads` encoded either way, or bytes that are not what the edge reads: deep nesting, NaN,
    truncated JSON, random bytes."""
    return st.one_of(
        st.builds(encode, payloads, ascii_only=st.booleans()),
        st.integers(150, 5000).map(nested),
        st.builds(
            lambda p, d: encode(p, ascii_only=True)[:-1] + b', "x": ' + nested(d) + b"}",
            payloads,
            st.integers(150, 3000),
        ),
        st.binary(max_size=200),
        st.sampled_from([b"", b"NaN", b'{"cost": Infinity}', b"null", b"[]", b'"x"']),
    )


# -- VAPI ----------------------------------------------------------------------------------------------

VAPI_TYPES = [
    "status-update",
    "end-of-call-report",
    "conversation-update",
    "transcript",
    'transcript[transcriptType="final"]',
    "speech.recognized",
    "assistant.message",
    "call.started",
    "call.ended",
    "tool-calls",
    "assistant-request",
    "hang",
    "speech-update",
]
call = obj(
    id=ids, customer=obj(number=phones), **{"from": phones}, to=phones, cost=numbers, endedReason=texts
)
line = obj(role=st.sampled_from(["user", "assistant", "bot", "system", "tool"]), content=texts, message=texts)
tool_call = obj(
    id=ids, function=obj(name=st.sampled_from(["list_team", "nope"]), arguments=junk), parameters=junk
)
vapi_message = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(VAPI_TYPES)), "call": call},
    optional={
        "status": st.sampled_from(["in-progress", "ended", "ringing"]),
        "cost": numbers,
        "endedReason": texts,
        "summary": texts,
        "analysis": obj(summary=texts),
        "artifact": obj(
            messages=st.lists(line, max_size=4),
            messagesOpenAIFormatted=st.lists(line, max_size=4),
            transcript=texts,
        ),
        "messages": maybe(st.lists(line, max_size=4)),
        "messagesOpenAIFormatted": maybe(st.lists(line, max_size=4)),
        "transcript": texts,
        "transcriptType": st.sampled_from(["final", "partial"]),
        "role": st.sampled_from(["user", "assistant"]),
        "text": texts,
        "message": texts,
        "customer": obj(number=phones),
        "phoneNumber": obj(number=phones),
        "assistant": obj(model=obj(model=texts)),
        "toolCallList": maybe(st.lists(tool_call, max_size=3)),
        "toolWithToolCallList": maybe(st.lists(obj(toolCall=tool_call), max_size=3)),
    },
)
vapi_payloads = st.one_of(vapi_message.map(lambda message: {"message": message}), vapi_message, junk)

# -- Slack ---------------------------------------------------------------------------------------------

slack_ids = maybe(st.text("UCDTWB0123456789", min_size=1, max_size=40))
slack_ts = maybe(st.sampled_from(["1700000000.000100", "1.2", "1" * 40 + ".1", "x.y", ""]))
slack_event = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["app_mention", "message", "reaction_added"]))},
    optional={
        "user": slack_ids,
        "channel": slack_ids,
        "team": slack_ids,
        "ts": slack_ts,
        "thread_ts": slack_ts,
        "text": texts,
        "subtype": maybe(st.sampled_from(["file_share", "thread_broadcast", "message_changed"])),
        "channel_type": maybe(st.sampled_from(["im", "channel"])),
        "bot_id": slack_ids,
        "files": maybe(st.lists(obj(name=texts, title=texts), max_size=3)),
    },
)
slack_payloads = st.one_of(
    st.fixed_dictionaries(
        {"type": maybe(st.just("event_callback")), "event_id": maybe(st.text("Ev0123456789", max_size=70))},
        optional={
            "event": maybe(slack_event),
            "team_id": slack_ids,
            "authorizations": maybe(st.lists(obj(user_id=slack_ids, is_bot=st.booleans()), max_size=2)),
            "authed_users": maybe(st.lists(slack_ids, max_size=2)),
        },
    ),
    st.fixed_dictionaries({"type": st.just("url_verification"), "challenge": texts}),
    junk,
)
header_values = st.one_of(
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=400
    ),  # what HTTP carries (Latin-1)
    st.integers(0, 10**400).map(str),
    st.just("v0=" + "0" * 64),
)

# -- ElevenLabs ----------------------------------------------------------------------------------------

FRAME_TYPES = [
    "conversation_initiation_client_data",
    "user_message",
    "multimodal_message",
    "contextual_update",
    "pong",
    "user_activity",
    "feedback",
    "teleport",
]
frames = st.one_of(
    st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(FRAME_TYPES))},
        optional={"text": maybe(obj(text=texts)), "context_id": ids, "event_id": numbers, "user_id": ids},
    ),
    st.fixed_dictionaries({"user_audio_chunk": junk}),
    junk,
)
