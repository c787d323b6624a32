"""What erasing a caller (agents.erasure) needs from the edges: the other ids the same person has here,
and the Slack rows about them.

- A VAPI call is known by its call id until its number is (`call-<id>`), an ElevenLabs conversation by
  its id (`conv-<id>`): the sessions of the caller's ids name those, so they are erased too.
- A Slack user id (`U0123ABCD`) names a person: every thread they wrote in is erased whole (its
  transcript, its Slack messages, its thread row), including what others wrote in a channel thread they
  took part in (a thread's transcript does not say who wrote each line); the count of such shared
  threads is reported. Turns ran for them under their principal name (`Slack user U…`), which the
  directives they asked for carry too.
"""

from django.db.models import Q

from agents.callers import clean_id
from agents.models import CallerSession, Channel, Turn
from integrations.models import SlackMessage, SlackThread

from .identify import call_caller_id
from .trust import slack_principal


def erasure_subject(who) -> None:
    calls = (
        CallerSession.objects.filter(caller_id__in=who.caller_ids)
        .exclude(provider_call_id="")
        .values_list("channel", "provider_call_id")
    )
    for channel, call_id in calls:
        if channel == Channel.VAPI:
            who.caller_ids.add(clean_id(call_caller_id(call_id)))
        elif channel == Channel.ELEVENLABS:
            who.caller_ids.add(clean_id(f"conv-{call_id}"))
    users = set(SlackMessage.objects.filter(user__in=who.given).values_list("user", flat=True))
    for thread in SlackThread.objects.filter(messages__user__in=users).distinct():
        who.caller_ids.add(thread.caller_id)
    # Turns ran for a Slack user under this name, which outlives their Slack messages (retention prunes
    # those first): the threads their turns ran in, and the conversations opened for them, are theirs too.
    names = {slack_principal("", value).name for value in who.given}
    who.names |= names
    turns = Q(pk__in=[])
    for name in names:
        turns |= Q(principal__endswith=f"({name})")
    who.caller_ids |= set(Turn.objects.filter(turns).values_list("caller_id", flat=True))
    who.caller_ids |= set(
        CallerSession.objects.filter(process__principal_name__in=names).values_list("caller_id", flat=True)
    )


def _threads(caller_ids) -> Q:
    """The threads whose caller ids (SlackThread.caller_id: `slack-<team or T>-<channel>-<ts>`) are
    among `caller_ids`."""
    keys = Q(pk__in=[])
    for caller_id in caller_ids:
        prefix, _, rest = caller_id.partition("-")
        team, _, rest = rest.partition("-")
        channel, _, ts = rest.partition("-")
        if prefix == "slack" and team and channel and ts:
            keys |= Q(team_id="" if team == "T" else team, channel=channel, thread_ts=ts)
    return keys


def erase_caller(who) -> dict[str, int]:
    threads = SlackThread.objects.filter(_threads(who.caller_ids))
    users = set(SlackMessage.objects.filter(user__in=who.given).values_list("user", flat=True))
    others = SlackMessage.objects.exclude(user__in=users)
    shared = threads.filter(messages__in=others).distinct().count() if users else 0
    messages = SlackMessage.objects.filter(Q(thread__in=threads) | Q(user__in=users)).delete()[0]
    return {
        "Slack messages": messages,
        "Slack threads": threads.delete()[0],
        "of them shared with others": shared,
    }
