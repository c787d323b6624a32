"""Slack's Events API payloads as Tron reads them (protocols.md §3): Pydantic models of the fields it
uses, with their types and bounds. Unknown fields are ignored; an id, a ts or a file name longer than
the column it is stored in, or a field of another type, is refused (views.py logs it and answers 200,
docs/decisions.md "Slack: a signed event Tron cannot read").
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from integrations.models import SlackMessage, SlackThread

MAX_ITEMS = 100  # files of one message, authorizations of one event


def _width(model, field: str) -> int:
    return model._meta.get_field(field).max_length


# Slack's ids (T…, C…, D…, U…, B…, Ev…) are letters and digits; a ts is seconds.micros ("1700000000.000100").
SlackId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=_width(SlackMessage, "user"))
]
EventId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=_width(SlackMessage, "event_id"))
]
Ts = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+\.[0-9]+$", max_length=_width(SlackThread, "thread_ts"))
]
Label = Annotated[str, StringConstraints(max_length=64)]  # an event type, a subtype, a channel type
FileName = Annotated[str, StringConstraints(max_length=255)]
# Slack cuts a message at 40,000 characters, so a longer text is none of Slack's. A text longer than
# TRON_MAX_MESSAGE_CHARS is stored and answered with an apology (the engine refuses it).
MAX_TEXT = 40_000


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class UrlVerification(Model):
    type: Literal["url_verification"]
    challenge: Annotated[str, StringConstraints(max_length=1000)]


class Authorization(Model):
    user_id: SlackId | None = None
    is_bot: bool | None = None


class EventCallback(Model):
    """The envelope of an event; `event` is read by MessageEvent when it is a kind a persona answers."""

    type: Literal["event_callback"]
    event_id: EventId
    team_id: SlackId | None = None
    event: dict
    authorizations: Annotated[list[Authorization], Field(max_length=MAX_ITEMS)] | None = None
    authed_users: Annotated[list[SlackId], Field(max_length=MAX_ITEMS)] | None = None


class File(Model):
    name: FileName | None = None
    title: FileName | None = None


class MessageEvent(Model):
    """An `app_mention`, or a `message` (in a direct message when `channel_type` is `im`)."""

    type: Literal["app_mention", "message"]
    subtype: Label | None = None
    channel_type: Label | None = None
    user: SlackId | None = None
    channel: SlackId | None = None
    team: SlackId | None = None
    ts: Ts | None = None
    thread_ts: Ts | None = None
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT)] | None = None
    bot_id: SlackId | None = None
    bot_profile: dict | None = None
    files: Annotated[list[File], Field(max_length=MAX_ITEMS)] | None = None
