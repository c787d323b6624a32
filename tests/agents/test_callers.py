"""The core's rules for caller ids: safe to store and echo, phone numbers in E.164. Plain tables."""

import pytest

from agents.callers import MAX_ID_LENGTH, clean_id, normalize_phone


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("+1 (415) 555-1234", "US", "+14155551234"),
        ("415-555-1234", "US", "+14155551234"),
        ("(415) 5551234", "US", "+14155551234"),
        ("+14155551234", "GB", "+14155551234"),  # a + number ignores the region
        ("020 7183 8750", "GB", "+442071838750"),
        ("02071838750", "US", "02071838750"),  # not a possible US number: kept as given
        ("sip:4155551234@example.com", "US", "sip:4155551234@example.com"),
        ("  +14155551234  ", "US", "+14155551234"),
        ("911", "US", "911"),  # a service number: not E.164, kept as given
        # Other text with digits is no number: prefixed, so it names no caller id of another kind.
        ("slack-T0001-C0GENERAL-1700000200.000001", "US", "phone-slack-T0001-C0GENERAL-1700000200.000001"),
        ("anonymous-123", "US", "phone-anonymous-123"),
        ("address:10.0.0.7", "US", "phone-address:10.0.0.7"),
        ("phone-anonymous-123", "US", "phone-anonymous-123"),  # once
        # Withheld numbers: no id, or every caller who withholds theirs would share one session.
        ("anonymous", "US", ""),
        ("Restricted", "US", ""),
        ("unknown", "US", ""),
        ("", "US", ""),
        (None, "US", ""),
        ("12", "US", ""),
        ("0000000000", "US", ""),
        ("+10000000000", "US", ""),
        ("1111111111111111111", "US", ""),  # not a possible number, and one digit repeated
    ],
)
def test_normalize_phone(settings, raw, region, expected):
    settings.TRON_DEFAULT_PHONE_REGION = region
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("req-abc", "req-abc"),
        ("  user-alice \t", "user-alice"),
        ("a\nb\rc\x00d\x7fe\x85f", "abcdef"),  # control characters
        ("\u200bx\ufeff", "x"),  # format characters
        ("café-東京", "café-東京"),  # other non-ASCII letters stay
        ("", ""),
        ("x" * MAX_ID_LENGTH, "x" * MAX_ID_LENGTH),
    ],
)
def test_clean_id(raw, expected):
    assert clean_id(raw) == expected


def test_a_long_id_is_cut_to_the_column_with_a_hash_of_the_whole():
    first, second = clean_id("x" * 300 + "1"), clean_id("x" * 300 + "2")
    assert len(first) == len(second) == MAX_ID_LENGTH
    assert first != second
    assert first.startswith("x" * (MAX_ID_LENGTH - 17) + "-")
    assert clean_id("x" * 300 + "1") == first  # stable: the same caller keeps its id
