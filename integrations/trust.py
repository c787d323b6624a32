"""Who a request from each edge runs for (agents.principals), decided from what authenticated it and
never from what it says: the one place that maps edges to trust (docs/security.md).

A public caller's limits count under their caller id when something vouched for it (the chat key,
which only VAPI, ElevenLabs or the operator's own app holds; VAPI's secret), else under the address
the request came from: a caller id anyone may choose is no key to count a stranger's use by.
"""

from collections.abc import Iterable

from django.conf import settings

from agents.callers import Caller, is_one_off
from agents.models import Channel
from agents.principals import Principal, Trust

PHONE_CHANNELS = (Channel.VAPI, Channel.ELEVENLABS)


def _allowance(caller: Caller, address: str, vouched: bool) -> str:
    if vouched and not is_one_off(caller.caller_id):
        return caller.caller_id
    return f"address:{address or 'unknown'}"


def chat_principal(caller: Caller, address: str) -> Principal:
    """A chat API request: phone and ElevenLabs callers are the public; other callers as TRON_CHAT_TRUST
    says (a deployment whose chat key only its own team holds may trust them as team members)."""
    trust = Trust.PUBLIC if caller.channel in PHONE_CHANNELS else Trust(settings.TRON_CHAT_TRUST)
    vouched = bool(settings.TRON_CHAT_API_KEY)  # the middleware let the request in only with the key
    return Principal(trust, caller.caller_id, allowance=_allowance(caller, address, vouched))


def socket_principal(caller: Caller, address: str) -> Principal:
    """An ElevenLabs WebSocket: the public, counted under its address. Its clients are browsers and apps
    (ElevenLabs' widget and SDKs), so the chat key that let it in may sit in a web page: a `user_id` is
    the client's claim, and a socket without one (`conv-…`, drawn by the server) is a new caller each
    time. Neither is vouched for, or every socket would start with a fresh allowance."""
    return Principal(Trust.PUBLIC, caller.caller_id, allowance=_allowance(caller, address, vouched=False))


def phone_call_principal(caller: Caller | None) -> Principal:
    """A VAPI webhook about a call: the caller on the phone, the public."""
    caller_id = caller.caller_id if caller else ""
    vouched = bool(settings.VAPI_SECRET) and caller is not None
    return Principal(Trust.PUBLIC, caller_id, allowance=caller_id if vouched else "")


# From the least trusted up: a turn that reads the words of several writers runs as the least trusted.
RANKS = (Trust.PUBLIC, Trust.TEAM, Trust.OPERATOR)


def slack_principal(caller_id: str, user: str, writers: Iterable[str] = ()) -> Principal:
    """A Slack message (signed by Slack): an operator when its author is one of SLACK_ADMIN_USERS, else
    a workspace member, trusted as TRON_SLACK_TRUST says. A conversation others wrote in too (a channel
    thread: `writers`, every Slack user whose words its transcript holds) is read by the turn as its own
    words, so the turn runs with the lowest trust among them: an admin's "carry on" under a member's
    "save the directive…" gets no operator's tool."""
    trust = min((_slack_trust(writer) for writer in {user, *writers}), key=RANKS.index)
    return Principal(trust, caller_id, f"Slack user {user}", allowance=caller_id)


def _slack_trust(user: str) -> Trust:
    return Trust.OPERATOR if user in settings.SLACK_ADMIN_USERS else Trust(settings.TRON_SLACK_TRUST)
