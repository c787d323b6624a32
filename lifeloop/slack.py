"""Sharing the life loop's outcomes worth sharing (posts, reflections, goal changes) in the Slack
channel TRON_LIFE_SLACK_CHANNEL, under the persona's name."""

import logging

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from agents.display import ellipsis

from .models import Activity

log = logging.getLogger(__name__)

EMOJI = {
    Activity.NEWS: ":newspaper:",
    Activity.GOALS: ":dart:",
    Activity.TEAM_CHECK: ":busts_in_silhouette:",
    Activity.REFLECTION: ":thinking_face:",
    Activity.JOURNAL: ":pencil:",
    Activity.POST: ":speech_balloon:",
}
MAX_CHARS = 3000  # Slack shows longer messages folded; the record is in the admin


def share(persona, activity: str, text: str) -> str:
    """Post `text` to the life-loop channel as `persona`; returns "" or why it could not be posted."""
    channel = settings.TRON_LIFE_SLACK_CHANNEL
    if not channel or not text:
        return ""
    if not settings.SLACK_BOT_TOKEN:
        return "TRON_LIFE_SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not"
    client = WebClient(token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL, timeout=10)
    try:
        # `username` shows the persona's name where the bot may customise it (chat:write.customize);
        # the bold name in the text says who it is where it may not.
        client.chat_postMessage(
            channel=channel,
            username=persona.name,
            text=f"{EMOJI.get(activity, '')} *{persona.name}*: {ellipsis(text, MAX_CHARS)}".strip(),
        )
    except SlackApiError as exc:
        reason = f"Slack refused the message: {exc.response.get('error', 'unknown error')}"
    except Exception as exc:  # noqa: BLE001 - urllib's and the SDK's errors alike; the run's work stands
        reason = f"Slack could not be reached ({type(exc).__name__})"
    else:
        return ""
    log.warning("Life loop of %s: %s", persona.name, reason)
    return reason
