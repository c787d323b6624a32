"""Conversations the edges start and end themselves: a phone call picked up and hung up (VAPI's
webhooks), an ElevenLabs WebSocket opened and closed. Between those, the turns run in the engine as
any other; the session and its process are the core's (agents.sessions)."""

from agents.callers import Caller
from agents.memory import remember_later
from agents.models import CallerSession, Persona
from agents.principals import Principal
from agents.sessions import end_session, open_session


def start_conversation(
    caller: Caller, persona: Persona, principal: Principal, *, task: str, adopt_unmarked: bool
) -> CallerSession:
    """The session of a conversation that starts now, known by `caller.provider_call_id`.

    The caller's open session is kept when it is this conversation's (the same provider id), or, with
    `adopt_unmarked`, when it has no provider id yet (a chat request of the call that came before its
    call-start webhook). An open session of an earlier conversation, which never ended, is ended (and
    its caller remembered) so this conversation is a process of its own."""
    current = CallerSession.objects.open().filter(caller_id=caller.caller_id).first()
    earlier = current is not None and current.provider_call_id != caller.provider_call_id
    if earlier and (current.provider_call_id or not adopt_unmarked):
        end_conversation(current)
    session = open_session(caller, persona, principal=principal, task=task)
    if caller.provider_call_id and session.provider_call_id != caller.provider_call_id:
        CallerSession.objects.filter(pk=session.pk).update(provider_call_id=caller.provider_call_id)
        session.provider_call_id = caller.provider_call_id
    return session


def end_conversation(session: CallerSession, *, remember: bool = True) -> bool:
    """End the session and complete its process; with `remember`, queue the caller's memory update.
    False when it had ended already."""
    ended = end_session(session)
    if ended and remember:
        remember_later(session.process_id)
    return ended
