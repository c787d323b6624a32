"""Who is calling: a stable caller id from headers and body, so the same caller continues a session."""

import hashlib
import time
import unicodedata
from dataclasses import dataclass

import phonenumbers
from django.conf import settings

from .models import Channel


@dataclass(frozen=True)
class Caller:
    caller_id: str
    channel: str = Channel.HTTP
    provider_call_id: str = ""
    phone: str = ""  # E.164, when known


MAX_ID_LENGTH = 255  # CallerSession.caller_id
MIN_PHONE_DIGITS = 3  # the shortest numbers in use (emergency and service numbers)


def clean_id(value: str) -> str:
    """A caller id safe to store and echo in a header: control characters dropped, and a value too long
    for the column shortened with a hash of the whole, so distinct long ids stay distinct."""
    value = "".join(ch for ch in value.strip() if unicodedata.category(ch)[0] != "C")
    if len(value) > MAX_ID_LENGTH:
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        value = f"{value[: MAX_ID_LENGTH - 17]}-{digest}"
    return value


def normalize_phone(raw: str) -> str:
    """E.164 (+14155551234) for a number phonenumbers can read; a number it cannot (a foreign number
    without its +country, a SIP address with digits) as given; "" for what is no number at all.

    Carriers and VAPI report a withheld number as a word ("anonymous", "Restricted", "unknown") or as
    one digit repeated (0000000000): as a caller id, that would put every caller who withholds their
    number into one session, each hearing the others' words."""
    raw = (raw or "").strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) < MIN_PHONE_DIGITS:
        return ""
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else settings.TRON_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        return raw if len(set(digits)) > 1 else ""
    if len(set(str(number.national_number))) == 1:
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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


def identify_caller(*args, **kwargs) -> Caller:
    caller = _identify(*args, **kwargs)
    return Caller(clean_id(caller.caller_id), caller.channel, clean_id(caller.provider_call_id), caller.phone)


def _identify(
    headers, body: dict, *, channel: str | None = None, user_id: object = "", conversation_id: str = ""
) -> Caller:
    """First match wins: caller phone (header, then VAPI's body; a withheld or unreadable number is
    skipped), VAPI call id, `user_id` (ElevenLabs), a conversation id (ElevenLabs), X-Request-ID, the
    OpenAI `user` field, else a fresh anonymous id (no continuity)."""
    call_id = headers.get("X-Vapi-Call-ID", "").strip() or _dig(body, "call", "id")
    is_vapi = bool(call_id or headers.get("X-Vapi-Caller-Phone") or isinstance(body.get("call"), dict))
    channel = channel or (Channel.VAPI if is_vapi else Channel.HTTP)

    phone = _phone(
        headers.get("X-Vapi-Caller-Phone", ""),
        _dig(body, "call", "customer", "number"),
        _dig(body, "customer", "number"),
    )
    if phone:
        return Caller(phone, channel, call_id, phone)
    if call_id:
        return Caller(f"call-{call_id}", channel, call_id)
    if user_id := _text(user_id):
        return Caller(f"user-{user_id}", channel)
    if conversation_id.strip():
        return Caller(f"conv-{conversation_id.strip()}", channel, conversation_id.strip())
    request_id = headers.get("X-Request-ID", "").strip()
    if request_id:
        return Caller(request_id if request_id.startswith("req-") else f"req-{request_id}", channel)
    user = _dig(body, "user")
    if user:
        return Caller(f"user-{user}", channel)
    return Caller(f"anonymous-{time.time_ns()}", channel)
