"""Which of Slack's events a persona answers, read from the Events API envelope (protocols.md §3)
against its schema (schemas.py).

Answered: `app_mention` (a mention in a channel; Slack never sends one for a direct message) and a
`message` in a direct message (`channel_type: im`). Ignored: anything a bot wrote, Tron's own posts
included (`bot_id`, or the bot's own user id), and messages with a subtype (edits, deletions, joins…),
except two that carry a person's new words: `file_share` (text with files attached) and
`thread_broadcast` (a thread reply also sent to the channel).
"""

from dataclasses import dataclass, field

from pydantic import ValidationError

from integrations.json_input import field_path
from integrations.models import SlackMessage

from .schemas import EventCallback, MessageEvent

ANSWERED_SUBTYPES = {"file_share", "thread_broadcast"}
MESSAGE_TYPES = ("app_mention", "message")


class Unreadable(Exception):
    """A signed event that does not fit its schema: why, for the log."""


@dataclass(frozen=True)
class Incoming:
    """A message to answer: where it is, who wrote it and what they wrote."""

    event_id: str
    team_id: str
    channel: str
    thread_ts: str  # the thread it belongs to (its own ts when it starts one)
    ts: str
    user: str
    text: str
    kind: str
    bot_user_id: str = ""
    file_names: list[str] = field(default_factory=list)


def bot_user_id(callback: EventCallback) -> str:
    """The bot's own user id, as the envelope names it (`authorizations`, or older `authed_users`)."""
    for authorization in callback.authorizations or []:
        if authorization.is_bot and authorization.user_id:
            return authorization.user_id
    authed = callback.authed_users or []
    return authed[0] if len(authed) == 1 else ""


def incoming(envelope: dict) -> Incoming | None:
    """The message an `event_callback` envelope brings for a persona to answer, or None to ignore it.
    Raises Unreadable when the envelope, or a message event in it, does not fit its schema."""
    callback = _validated(EventCallback, envelope, "")
    if callback.event.get("type") not in MESSAGE_TYPES:
        return None  # another kind of event: nothing to answer, whatever its fields
    event = _validated(MessageEvent, callback.event, "event.")
    kind = _kind(event)
    if kind is None:
        return None
    me = bot_user_id(callback)
    if event.bot_id or event.bot_profile or (me and event.user == me):
        return None
    if not (event.user and event.channel and event.ts):
        return None
    text = event.text or ""
    return Incoming(
        event_id=callback.event_id,
        team_id=callback.team_id or event.team or "",
        channel=event.channel,
        thread_ts=event.thread_ts or event.ts,
        ts=event.ts,
        user=event.user,
        text=text.replace("\x00", ""),
        kind=kind,
        bot_user_id=me,
        file_names=[(f.name or f.title or "a file").replace("\x00", "") for f in event.files or []],
    )


def _validated(schema, data: dict, where: str):
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Unreadable(f"{where}{field_path(first['loc'])}: {first['msg']}") from None


def _kind(event: MessageEvent) -> str | None:
    if event.subtype and event.subtype not in ANSWERED_SUBTYPES:
        return None
    if event.type == "app_mention":
        return SlackMessage.Kind.MENTION
    if event.type == "message" and event.channel_type == "im":
        return SlackMessage.Kind.DIRECT
    return None
