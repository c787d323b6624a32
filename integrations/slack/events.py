"""Which of Slack's events a persona answers, read from the Events API envelope (protocols.md §3).

Answered: `app_mention` (a mention in a channel; Slack never sends one for a direct message) and a
`message` in a direct message (`channel_type: im`). Ignored: anything a bot wrote, Tron's own posts
included (`bot_id`, or the bot's own user id), and messages with a subtype (edits, deletions, joins…),
except two that carry a person's new words: `file_share` (text with files attached) and
`thread_broadcast` (a thread reply also sent to the channel).
"""

from dataclasses import dataclass, field

from integrations.models import SlackMessage

ANSWERED_SUBTYPES = {"file_share", "thread_broadcast"}


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


def bot_user_id(envelope: dict) -> str:
    """The bot's own user id, as the envelope names it (`authorizations`, or older `authed_users`)."""
    for authorization in envelope.get("authorizations") or []:
        if isinstance(authorization, dict) and authorization.get("is_bot") and authorization.get("user_id"):
            return str(authorization["user_id"])
    authed = envelope.get("authed_users")
    if isinstance(authed, list) and len(authed) == 1 and isinstance(authed[0], str):
        return authed[0]
    return ""


def incoming(envelope: dict) -> Incoming | None:
    """The message an `event_callback` envelope brings for a persona to answer, or None to ignore it."""
    event = envelope.get("event")
    event_id = envelope.get("event_id")
    if not isinstance(event, dict) or not isinstance(event_id, str) or not event_id:
        return None
    kind = _kind(event)
    if kind is None:
        return None
    me = bot_user_id(envelope)
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if event.get("bot_id") or event.get("bot_profile") or (me and user == me):
        return None
    if not all(isinstance(value, str) and value for value in (user, channel, ts)):
        return None
    thread_ts = event.get("thread_ts")
    text = event.get("text")
    files = event.get("files") if isinstance(event.get("files"), list) else []
    return Incoming(
        event_id=event_id,
        team_id=str(envelope.get("team_id") or event.get("team") or ""),
        channel=channel,
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else ts,
        ts=ts,
        user=user,
        text=text if isinstance(text, str) else "",
        kind=kind,
        bot_user_id=me,
        file_names=[str(f.get("name") or f.get("title") or "a file") for f in files if isinstance(f, dict)],
    )


def _kind(event: dict) -> str | None:
    subtype = event.get("subtype")
    if subtype and subtype not in ANSWERED_SUBTYPES:
        return None
    if event.get("type") == "app_mention":
        return SlackMessage.Kind.MENTION
    if event.get("type") == "message" and event.get("channel_type") == "im":
        return SlackMessage.Kind.DIRECT
    return None
