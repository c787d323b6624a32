"""Who is calling, as the core knows it: a plain Caller and the generic rules for its ids (safe to store,
phone numbers in E.164). Reading one from a request's headers and fields is each edge's job."""

import hashlib
import re
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
ONE_OFF_PREFIX = "anonymous-"  # a caller who named no id: no later request of theirs can continue


def is_one_off(caller_id: str) -> bool:
    return caller_id.startswith(ONE_OFF_PREFIX)


MIN_PHONE_DIGITS = 3  # the shortest numbers in use (emergency and service numbers)
# A phone field's value that reads as no number gets this prefix: a namespace of its own, so a phone
# field (the caller's claim) can never name a caller of another kind (`slack-…`, `delegated-…`,
# `anonymous-…`: docs/security.md).
PHONE_ID_PREFIX = "phone-"
WRITTEN_NUMBER = re.compile(r"\+?[\d\s().\-/]+")  # a number as people write it, no letters
TELEPHONY_URIS = ("sip:", "sips:", "tel:")  # a SIP address: no caller id of another kind begins so


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
    without its +country, a SIP address with digits) as given; any other text with digits prefixed
    (`phone-…`, PHONE_ID_PREFIX); "" for what is no number at all.

    Carriers and telephony platforms report a withheld number as a word ("anonymous", "Restricted",
    "unknown") or as one digit repeated (0000000000): as a caller id, that would put every caller who
    withholds their number into one session, each hearing the others' words."""
    raw = (raw or "").strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) < MIN_PHONE_DIGITS:
        return ""
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else settings.TRON_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        if len(set(digits)) == 1:
            return ""
        if WRITTEN_NUMBER.fullmatch(raw) or raw.lower().startswith(TELEPHONY_URIS + (PHONE_ID_PREFIX,)):
            return raw
        return f"{PHONE_ID_PREFIX}{raw}"
    if len(set(str(number.national_number))) == 1:
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
