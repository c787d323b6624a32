"""One Slack message answered: an operator command, or a turn of the persona the thread routes to; then
the reply, in the message's thread.

Each thread is a conversation of its own (its caller id, `SlackThread.caller_id`), so the engine keeps
its session and transcript: only the new words go in. Who wrote them, and where, goes in as the turn's
context (a system message, not stored), so a persona in a busy channel thread knows who is asking. The
turn reads everyone's words in the thread, so it runs with the lowest trust among their writers.
"""

import logging

from django.utils import timezone
from slack_sdk import WebClient

from agents import errors
from agents.callers import Caller
from agents.models import CallerSession, Channel, Process
from agents.runtime import TurnInput, complete_turn_sync
from integrations.models import SlackMessage, SlackThread

from ..trust import slack_principal
from . import addressee, commands
from .client import PostFailed, own_user_id, post_reply, user_name
from .mrkdwn import to_mrkdwn
from .text import plain_text

log = logging.getLogger(__name__)

APOLOGY = (
    "Sorry, I couldn't answer that just now: something went wrong on my side. Please try again in a moment."
)
TOO_LONG = "Sorry, that message is too long for me to take in one go. Could you split it up?"
OVER_BUDGET = (
    "Sorry, I've used up today's budget, so I can't answer until tomorrow (UTC). An operator can raise it."
)
BUSY = "Sorry, the server is at its limit of running conversations right now. Please try again in a minute."
# What the persona says in the thread when its turn fails, for each error of the core (agents.errors);
# anything else gets APOLOGY. The failure itself is recorded on the process and the message's row.
REPLIES = {errors.MessageTooLong: TOO_LONG, errors.OverBudget: OVER_BUDGET, errors.Overloaded: BUSY}
EMPTY_MENTION = "Yes? Ask me anything, here in the thread."
NO_WORDS = "Sorry, I came up empty on that one. Could you put it another way?"


def answer(message: SlackMessage, client: WebClient) -> None:
    """Answer `message` in its thread and record the outcome on its row."""
    thread = message.thread
    bot = message.bot_user_id or own_user_id(client)
    text = plain_text(message.text, bot, lambda user_id: user_name(client, user_id))
    if (command := commands.command_in(text)) is not None:
        deliver(message, client, commands.run(command, message.user))
    elif not text and not message.file_names:
        deliver(message, client, EMPTY_MENTION)
    else:
        persona = addressee.persona_for(text, thread.channel, thread.persona_name)
        if persona != thread.persona_name:
            SlackThread.objects.filter(pk=thread.pk).update(persona_name=persona)
            thread.persona_name = persona
        deliver(message, client, persona_reply(message, text, persona, client))


def persona_reply(message: SlackMessage, text: str, persona: str, client: WebClient) -> str:
    """The persona's answer as Slack mrkdwn, or a short apology when the turn failed (the engine records
    the failure on the process; the user's words are in its transcript either way)."""
    thread = message.thread
    speaker = user_name(client, message.user) or message.user
    place = "a direct message" if message.kind == SlackMessage.Kind.DIRECT else "a thread in a Slack channel"
    words = text
    if message.file_names:
        words = f"{text}\n\n[attached: {', '.join(message.file_names)}; the files themselves are not shown to you]"
    turn = TurnInput(
        principal=slack_principal(thread.caller_id, message.user, writers(thread)),
        messages=[
            {"role": "system", "content": f"You are on Slack, in {place}. This message is from {speaker}."},
            {"role": "user", "content": words.strip()},
        ],
        caller=Caller(thread.caller_id, Channel.SLACK),
        persona_name=persona or None,
        task=f"Slack: {place} with {speaker}"[:500],
    )
    try:
        end = complete_turn_sync(turn)
    except errors.TurnError as exc:
        log.warning("The persona could not answer Slack message %s: %s", message.event_id, exc.message)
        message.error = exc.message
        message.process = _latest_process(thread)
        return next((REPLIES[kind] for kind in type(exc).__mro__ if kind in REPLIES), APOLOGY)
    # None when an operator deleted the process while the turn ran (the answer is posted all the same).
    message.process = Process.objects.filter(pk=end.process_id).select_related("persona").first()
    message.persona_name = message.process.persona.name if message.process else ""
    return to_mrkdwn(end.text) or NO_WORDS


def writers(thread: SlackThread) -> list[str]:
    """Every Slack user whose words the thread's transcript holds: the authors of its messages answered,
    failed or being answered (those still waiting are not in it yet; messages are answered one at a time
    per thread, integrations/slack/tasks.py)."""
    messages = SlackMessage.objects.filter(thread=thread).exclude(status=SlackMessage.Status.PENDING)
    return list(messages.order_by().values_list("user", flat=True).distinct())


def _latest_process(thread: SlackThread) -> Process | None:
    session = (
        CallerSession.objects.filter(caller_id=thread.caller_id)
        .select_related("process")
        .order_by("-last_seen_at", "-id")
        .first()
    )
    return session.process if session else None


def deliver(message: SlackMessage, client: WebClient, reply: str) -> None:
    """Post `reply` in the message's thread and record it on the row: answered, or failed with Slack's
    error (logged; the reply stays on the row for an operator to see)."""
    thread = message.thread
    try:
        post_reply(client, thread.channel, thread.thread_ts, reply)
    except PostFailed as exc:
        log.error(
            "Slack refused the reply to %s in %s (%s) after %d part(s); the reply is kept on its SlackMessage row",
            message.event_id,
            thread.channel,
            exc.error,
            exc.posted,
        )
        message.status = SlackMessage.Status.FAILED
        message.error = "; ".join(filter(None, [message.error, f"Slack: {exc.error}"]))
    else:
        message.status = SlackMessage.Status.ANSWERED
    message.reply = reply
    message.answered_at = timezone.now()
    message.save(update_fields=["status", "error", "reply", "answered_at", "persona_name", "process"])
