"""Who is calling, read from what VAPI, ElevenLabs and OpenAI clients send: the header names and body
fields are this edge's knowledge; the core gets a plain agents.callers.Caller, its ids cleaned."""

import time
from dataclasses import replace

from agents.callers import ONE_OFF_PREFIX, Caller, clean_id, normalize_phone
from agents.dbthread import db_read
from agents.models import CallerSession, Channel

# A user named by ElevenLabs (its `user_id`, or the `user` of its custom-LLM requests) is the name its
# widget or SDK was given, in a web page or an app: the client's claim, relayed. It gets a namespace of
# its own, so that it can never be the `user-` of an app that holds the chat key (docs/security.md).
ELEVENLABS_USER_PREFIX = "elevenlabs-user-"

REQUEST_ID_HEADER = "X-Request-ID"  # any client
CALLER_PHONE_HEADER = "X-Vapi-Caller-Phone"  # VAPI
CALL_ID_HEADER = "X-Vapi-Call-ID"  # VAPI
CONVERSATION_ID_HEADER = "X-Conversation-ID"  # ElevenLabs
CALLER_HEADERS = (REQUEST_ID_HEADER, CALLER_PHONE_HEADER, CALL_ID_HEADER, CONVERSATION_ID_HEADER)


def identify_caller(headers, payload, channel: str | None = None) -> Caller:
    """The caller of one chat request: `headers` as Django reads them (case-insensitive), `payload` the
    parsed body (chat_schemas.ChatCompletionIn), `channel` the endpoint's, or None to tell VAPI from HTTP."""
    caller = _identify(headers, payload, channel)
    return Caller(clean_id(caller.caller_id), caller.channel, clean_id(caller.provider_call_id), caller.phone)


async def join_call(caller: Caller) -> Caller:
    """A caller known only by a VAPI call id, as the call's session knows them: the call-start webhook
    opened that session under the caller's number (integrations.vapi). Any other caller as given; the
    database is asked only for a call id without a number."""
    call_id = caller.provider_call_id
    if caller.phone or not call_id or caller.caller_id != clean_id(call_caller_id(call_id)):
        return caller
    known = await db_read(_call_caller_id)(call_id)
    if not known or known == caller.caller_id:
        return caller
    return replace(caller, caller_id=known, phone=known if known.startswith("+") else "")


def _call_caller_id(call_id: str) -> str | None:
    return (
        CallerSession.objects.open()
        .filter(provider_call_id=call_id)
        .values_list("caller_id", flat=True)
        .first()
    )


def _identify(headers, payload, channel: str | None) -> Caller:
    """First match wins: caller phone (header, then VAPI's body; a withheld or unreadable number is
    skipped), VAPI call id, `user_id` (ElevenLabs endpoints), a conversation id (ElevenLabs endpoints),
    X-Request-ID, the OpenAI `user` field, else a fresh anonymous id (no continuity)."""
    body = {"call": payload.call, "customer": payload.customer, "user": payload.user}
    elevenlabs = channel == Channel.ELEVENLABS
    call_id = _header(headers, CALL_ID_HEADER) or _dig(body, "call", "id")
    is_vapi = bool(call_id or headers.get(CALLER_PHONE_HEADER) or isinstance(body.get("call"), dict))
    channel = channel or (Channel.VAPI if is_vapi else Channel.HTTP)

    phone = _phone(
        _header(headers, CALLER_PHONE_HEADER),
        _dig(body, "call", "customer", "number"),
        _dig(body, "customer", "number"),
    )
    if phone:
        return Caller(phone, channel, call_id, phone)
    if call_id:
        return Caller(call_caller_id(call_id), channel, call_id)
    if user_id := _text(payload.user_id if elevenlabs else ""):
        return Caller(f"{ELEVENLABS_USER_PREFIX}{user_id}", channel)
    conversation_id = _header(headers, CONVERSATION_ID_HEADER) if elevenlabs else ""
    if conversation_id:
        return Caller(f"conv-{conversation_id}", channel, conversation_id)
    request_id = _header(headers, REQUEST_ID_HEADER)
    if request_id:
        return Caller(_prefixed("req-", request_id), channel)
    user = _dig(body, "user")
    if user:
        return Caller(f"{ELEVENLABS_USER_PREFIX if elevenlabs else 'user-'}{user}", channel)
    return Caller(f"{ONE_OFF_PREFIX}{time.time_ns()}", channel)


def call_caller_id(call_id: str) -> str:
    """The caller id of a call known only by its VAPI call id: the id as given, prefixed once (`call-`)."""
    return _prefixed("call-", call_id)


def _prefixed(prefix: str, value: str) -> str:
    return value if value.startswith(prefix) else f"{prefix}{value}"


def _header(headers, name: str) -> str:
    """A header's value as its sender wrote it. HTTP headers are bytes, which Django (like the ASGI
    servers) reads as Latin-1, so a UTF-8 value (`ñandú🚀`) would arrive as mojibake: it is read again
    as UTF-8. A value that is not UTF-8 (a client that sent Latin-1 itself) is kept as read."""
    value = headers.get(name, "").strip()
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _phone(*candidates: str) -> str:
    """The first candidate that is a phone number: a header saying "anonymous" leaves the body's say."""
    for candidate in candidates:
        if phone := normalize_phone(candidate):
            return phone
    return ""


def _text(value) -> str:
    """A string or a number (ids arrive as either) as trimmed text; anything else as ""."""
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _dig(body: dict, *keys) -> str:
    value = body
    for key in keys:
        if not isinstance(value, dict):
            return ""
        value = value.get(key)
    return _text(value)
