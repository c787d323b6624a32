"""Validators for Persona's JSON fields: the one place these rules live.

The admin's form runs them through the model's validation, and `load_team` runs them by calling
`Persona.full_clean()`, so both refuse the same values with the same messages.
"""

import functools
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

# The life-loop activities. `agents` may not import `lifeloop`, so this mirrors `lifeloop.models.Activity`
# (a test keeps the two equal); a misspelt key would otherwise be a schedule that silently never runs.
LIFE_ACTIVITIES = ("news", "goals", "team_check", "reflection", "journal", "post")
HOURS = range(24)  # hours of the persona's time zone


def validate_string_list(value):
    """A list of non-empty strings without surrounding spaces (focus areas, tool names)."""
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item and item == item.strip() for item in value
    ):
        raise ValidationError(
            'Must be a list of non-empty strings without surrounding spaces, e.g. ["a", "b"].',
            code="string_list",
        )


def validate_life_schedule(value):
    """An object of activity -> list of hours (0-23, in the persona's time zone), e.g. {"news": [6, 12, 18]}.
    An activity left out keeps its default hours; an empty list switches it off."""
    if not isinstance(value, dict):
        raise ValidationError(
            'Must be an object of activity: [hours], e.g. {"news": [6, 12, 18]}.', code="schedule"
        )
    for activity, hours in value.items():
        if activity not in LIFE_ACTIVITIES:
            raise ValidationError(
                "Unknown activity %(activity)r; expected one of %(expected)s.",
                code="schedule_activity",
                params={"activity": activity, "expected": ", ".join(LIFE_ACTIVITIES)},
            )
        if not isinstance(hours, list) or not all(
            isinstance(hour, int) and not isinstance(hour, bool) and hour in HOURS for hour in hours
        ):
            raise ValidationError(
                "%(activity)r must be a list of hours from 0 to 23.",
                code="schedule_hours",
                params={"activity": activity},
            )


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value):
    """An IANA time zone name, e.g. "Europe/Berlin" or "UTC" (the tz database's names, spelt exactly)."""
    if value not in _time_zones():
        raise ValidationError(
            "%(value)r is not a time zone name; use an IANA name such as UTC, Europe/Berlin or America/New_York.",
            code="time_zone",
            params={"value": value},
        )


_url = URLValidator(schemes=["http", "https"])


def validate_url_list(value):
    """A list of http(s) URLs (news feeds)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(
            'Must be a list of feed URLs, e.g. ["https://example.com/feed.xml"].', code="url_list"
        )
    for item in value:
        try:
            _url(item)
        except ValidationError:
            raise ValidationError(
                "%(value)r is not an http(s) URL.", code="url_list_item", params={"value": item}
            ) from None
