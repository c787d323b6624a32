"""Which caller a chat request is, from VAPI's, ElevenLabs' and OpenAI clients' fields: plain tables."""

import pytest
from django.utils.datastructures import CaseInsensitiveMapping

from integrations.chat_schemas import ChatCompletionIn
from integrations.identify import identify_caller

PHONE = "+14155551234"
UK = "+442071838750"
EL = "elevenlabs"


@pytest.fixture(autouse=True)
def us_region(settings):
    settings.TRON_DEFAULT_PHONE_REGION = "US"


def identify(headers=None, body=None, channel=None):
    payload = ChatCompletionIn.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], **(body or {})}
    )
    caller = identify_caller(CaseInsensitiveMapping(headers or {}), payload, channel)
    return caller.caller_id, caller.channel, caller.provider_call_id, caller.phone


@pytest.mark.parametrize(
    "headers, body, channel, expected",
    [
        # The caller's phone first: the header, then VAPI's body, both normalised to E.164.
        ({"X-Vapi-Caller-Phone": "+1 (415) 555-1234"}, {}, None, (PHONE, "vapi", "", PHONE)),
        ({"X-Vapi-Caller-Phone": "415-555-1234"}, {}, None, (PHONE, "vapi", "", PHONE)),
        ({}, {"call": {"customer": {"number": UK}}}, None, (UK, "vapi", "", UK)),
        ({}, {"customer": {"number": UK}}, None, (UK, "http", "", UK)),  # no `call`: not known as VAPI
        (
            {"X-Vapi-Caller-Phone": PHONE},
            {"call": {"customer": {"number": UK}}},
            None,
            (PHONE, "vapi", "", PHONE),
        ),
        (
            {},
            {"call": {"customer": {"number": PHONE}}, "customer": {"number": UK}},
            None,
            (PHONE, "vapi", "", PHONE),
        ),
        # A phone wins over the call id, which is kept as the provider's.
        ({"X-Vapi-Caller-Phone": PHONE, "X-Vapi-Call-ID": "c1"}, {}, None, (PHONE, "vapi", "c1", PHONE)),
        ({}, {"call": {"id": "c2", "customer": {"number": UK}}}, None, (UK, "vapi", "c2", UK)),
        # A withheld header leaves the body's say; a withheld body leaves the next field's.
        (
            {"X-Vapi-Caller-Phone": "anonymous"},
            {"call": {"customer": {"number": UK}}},
            None,
            (UK, "vapi", "", UK),
        ),
        (
            {},
            {"call": {"customer": {"number": "Restricted"}}, "customer": {"number": UK}},
            None,
            (UK, "vapi", "", UK),
        ),
        # A number phonenumbers cannot read (a UK one in national form, read as US) is kept as given.
        ({"X-Vapi-Caller-Phone": "02071838750"}, {}, None, ("02071838750", "vapi", "", "02071838750")),
        # Then VAPI's call id: the header wins over the body; ids arrive as strings or numbers.
        ({"X-Vapi-Call-ID": "web-9"}, {}, None, ("call-web-9", "vapi", "web-9", "")),
        # A call id is used as given: prefixed once, never `call-call-…`.
        ({"X-Vapi-Call-ID": "call-xyz-1"}, {}, None, ("call-xyz-1", "vapi", "call-xyz-1", "")),
        ({}, {"call": {"id": "call-xyz-1"}}, None, ("call-xyz-1", "vapi", "call-xyz-1", "")),
        ({"X-Vapi-Call-ID": "h1"}, {"call": {"id": "b1"}}, None, ("call-h1", "vapi", "h1", "")),
        ({"X-Vapi-Call-ID": "  "}, {"call": {"id": "b1"}}, None, ("call-b1", "vapi", "b1", "")),
        ({}, {"call": {"id": 123}}, None, ("call-123", "vapi", "123", "")),
        ({}, {"call": {"id": " c3 "}}, None, ("call-c3", "vapi", "c3", "")),
        # Then ElevenLabs' user_id, on its endpoints only; a string or a number.
        ({}, {"user_id": "el-user-7"}, EL, ("elevenlabs-user-el-user-7", EL, "", "")),
        ({}, {"user_id": 5}, EL, ("elevenlabs-user-5", EL, "", "")),
        ({"X-Request-ID": "r1"}, {"user_id": "u1"}, EL, ("elevenlabs-user-u1", EL, "", "")),
        ({"X-Request-ID": "r1"}, {"user_id": "u1"}, None, ("req-r1", "http", "", "")),
        ({"X-Vapi-Call-ID": "c1"}, {"user_id": "u1"}, EL, ("call-c1", EL, "c1", "")),
        # Then ElevenLabs' conversation id, on its endpoints only.
        ({"X-Conversation-ID": "conv9"}, {}, EL, ("conv-conv9", EL, "conv9", "")),
        ({"X-Conversation-ID": "conv9"}, {"user_id": "u1"}, EL, ("elevenlabs-user-u1", EL, "", "")),
        ({"X-Conversation-ID": "conv9", "X-Request-ID": "r1"}, {}, None, ("req-r1", "http", "", "")),
        # Then X-Request-ID, prefixed once.
        ({"X-Request-ID": "abc123"}, {}, None, ("req-abc123", "http", "", "")),
        ({"X-Request-ID": "req-abc123"}, {}, None, ("req-abc123", "http", "", "")),
        ({"X-Request-ID": " abc "}, {"user": "alice"}, None, ("req-abc", "http", "", "")),
        # Then OpenAI's `user` field.
        ({}, {"user": "alice"}, None, ("user-alice", "http", "", "")),
        ({}, {"user": "alice"}, EL, ("elevenlabs-user-alice", EL, "", "")),
    ],
)
def test_the_first_field_that_names_a_caller_wins(headers, body, channel, expected):
    assert identify(headers, body, channel) == expected


@pytest.mark.parametrize(
    "withheld", ["anonymous", "Restricted", "unknown", "12", "0000000000", "+10000000000", ""]
)
def test_a_withheld_number_is_no_caller_id(withheld):
    assert identify({"X-Vapi-Caller-Phone": withheld, "X-Vapi-Call-ID": "c1"}) == (
        "call-c1",
        "vapi",
        "c1",
        "",
    )
    assert identify({}, {"call": {"id": "c1", "customer": {"number": withheld}}}) == (
        "call-c1",
        "vapi",
        "c1",
        "",
    )


@pytest.mark.parametrize(
    "headers, body, channel",
    [
        ({}, {}, None),
        ({"X-Vapi-Caller-Phone": "anonymous"}, {}, None),  # VAPI, but no id: no continuity
        ({}, {"call": {"id": True}}, None),  # neither a string nor a number
        ({}, {"call": "c1", "customer": ["+14155551234"]}, None),  # VAPI's fields in another shape
        ({}, {"user_id": True}, EL),
        ({}, {"user_id": 5.5}, EL),
        ({}, {"user_id": {"id": "u1"}}, EL),
        ({"X-Request-ID": "   "}, {"user": ""}, None),
    ],
)
def test_a_request_that_names_no_caller_is_a_fresh_anonymous_one(headers, body, channel):
    first, second = identify(headers, body, channel), identify(headers, body, channel)
    assert first[0].startswith("anonymous-") and second[0].startswith("anonymous-")
    assert first[0] != second[0]
    assert first[2:] == ("", "")


@pytest.mark.parametrize(
    "headers, channel",
    [
        ({}, None),
        ({"X-Vapi-Caller-Phone": "anonymous"}, None),
        ({"X-Vapi-Call-ID": "c1"}, None),
        ({"X-Conversation-ID": "c1"}, EL),
    ],
)
def test_the_channel_is_the_endpoints_or_vapi_when_its_fields_are_there(headers, channel):
    expected = channel or ("vapi" if headers else "http")
    assert identify(headers, {}, channel)[1] == expected


@pytest.mark.parametrize(
    "request_id, expected",
    [
        # Django reads header bytes as Latin-1, so UTF-8 "café" arrives as "cafÃ©": read again as UTF-8.
        ("caf\u00c3\u00a9", "req-café"),
        ("ñandú🚀".encode().decode("latin-1"), "req-ñandú🚀"),
        ("café", "req-café"),  # a client that sent the Latin-1 byte itself: not UTF-8, kept as read
        ("a\x85b", "req-ab"),  # a C1 control character is dropped
        ("a\x00b\x7f", "req-ab"),
        ("\u200bx", "req-x"),  # a format character (zero-width space) too
    ],
)
def test_a_non_ascii_request_id_keeps_its_characters_without_control_characters(request_id, expected):
    assert identify({"X-Request-ID": request_id}) == (expected, "http", "", "")


def test_ids_too_long_for_the_column_are_shortened_and_stay_distinct():
    first = identify({"X-Vapi-Call-ID": "x" * 400 + "1"})
    second = identify({"X-Vapi-Call-ID": "x" * 400 + "2"})
    assert len(first[0]) == len(first[2]) == len(second[0]) == 255
    assert first[0] != second[0] and first[2] != second[2]
