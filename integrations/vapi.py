"""What Tron does with each of VAPI's server messages (read by integrations/vapi_events.py).

- a call starts (`status-update` in-progress, `call.started`): the caller's session and process open,
  keyed by the caller's number (else the call id), with the call id on the session, so a chat request
  that names only the call joins it (integrations.identify.join_call);
- a call ends (`status-update` ended, `end-of-call-report`, `call.ended`): the lines of the transcript
  the session lacks are stored (integrations/transcripts.py), the summary, ended reason and VAPI's cost
  go on the process, the process completes, and a report queues the caller's memory update (django-q2);
- transcript lines (`transcript` final, `conversation-update`, `speech.recognized`,
  `assistant.message`): stored when the transcript lacks them;
- `assistant-request`: the assistant of the persona owning the called number (PhoneNumber; the default
  persona otherwise), whose model is this server's custom LLM;
- `tool-calls`: the persona's tools, run through the engine's registry.

Everything is in the database, so a call's messages and its chat requests may reach different web
processes.
"""

import json
import logging

from django.db import transaction

from agents.callers import Caller
from agents.errors import NoPersona
from agents.memory import remember_later
from agents.models import CallerSession, Channel, Persona, Process
from agents.personas import resolve_persona
from agents.sessions import end_session
from agents.tools import ToolContext, call_tool

from .conversations import start_conversation
from .models import PersonaVoice, PhoneNumber
from .transcripts import add_reported_lines
from .trust import phone_call_principal
from .vapi_events import CALL_ENDED, CALL_STARTED, BadEvent, VapiEvent

log = logging.getLogger(__name__)

CALL_TASK = "Phone call (VAPI)"
NOBODY_THERE = "Sorry, nobody can take your call right now. Please try again later."


def handle(event: VapiEvent, *, base_url: str) -> dict:
    """Act on one server message; returns the JSON body of the answer. Raises BadEvent."""
    if event.type == "assistant-request":
        return assistant_request(event, base_url)
    if event.type == "tool-calls":
        return tool_calls(event)
    phase, lines = event.call_phase, event.lines()
    if phase == CALL_STARTED:
        call_started(event)
    elif phase == CALL_ENDED:
        call_ended(event, lines)
    elif lines:
        transcript(event, lines)
    else:
        log.debug("VAPI %s message: nothing to do", event.type)
    return {}


def call_started(event: VapiEvent) -> CallerSession:
    caller = _caller(event)
    with transaction.atomic():
        return start_conversation(
            caller, persona_for(event), phone_call_principal(caller), task=CALL_TASK, adopt_unmarked=True
        )


def call_ended(event: VapiEvent, lines: list[tuple[str, str]]) -> None:
    with transaction.atomic():
        session = session_of(event)
        if session is None:
            if not (lines or event.is_report):
                log.info("VAPI %s for a call Tron never saw (%s): nothing to end", event.type, event.call_id)
                return
            session = start_conversation(
                _caller(event),
                persona_for(event),
                phone_call_principal(_caller(event)),
                task=CALL_TASK,
                adopt_unmarked=True,
            )
        add_reported_lines(session, lines, call_over=True)
        changes = {"summary": event.summary, "ended_reason": event.ended_reason, "call_cost_usd": event.cost}
        changes = {key: value for key, value in changes.items() if value not in ("", None)}
        if changes:
            Process.objects.filter(pk=session.process_id).update(**changes)
        end_session(session)
        # The report carries the whole call: the memory is written from it (a bare `ended` status,
        # which comes just before it, only ends the process).
        if event.is_report:
            remember_later(session.process_id)


def transcript(event: VapiEvent, lines: list[tuple[str, str]]) -> None:
    with transaction.atomic():
        session = session_of(event, open_only=True) or call_started(event)
        add_reported_lines(session, lines, call_over=False)


def session_of(event: VapiEvent, *, open_only: bool = False) -> CallerSession | None:
    """The call's session: by its call id (the open one, else the latest), else the caller's open one."""
    sessions = CallerSession.objects.select_related("process__persona")
    if call_id := event.call_id:
        found = sessions.open().filter(provider_call_id=call_id).first()
        if found is None and not open_only:
            found = sessions.filter(provider_call_id=call_id).order_by("-created_at", "-id").first()
        if found is not None:
            return found
    caller = event.caller()
    return sessions.open().filter(caller_id=caller.caller_id).first() if caller else None


def persona_for(event: VapiEvent) -> Persona:
    """Who takes the call: the persona VAPI's assistant names as its model, else the owner of the
    called number, else the default persona. Raises NoPersona."""
    name = event.assistant_model
    if name and (named := Persona.objects.enabled().filter(name__iexact=name).first()) is not None:
        return named
    if (owner := number_owner(event.called_number)) is not None:
        return owner
    return resolve_persona(None)


def number_owner(number: str) -> Persona | None:
    if not number:
        return None
    found = PhoneNumber.objects.filter(number=number, enabled=True, persona__enabled=True).select_related(
        "persona"
    )
    return found[0].persona if found else None


def assistant_request(event: VapiEvent, base_url: str) -> dict:
    """The assistant for an inbound call: answered from two indexed reads, well inside VAPI's 7.5 s."""
    try:
        persona = number_owner(event.called_number) or resolve_persona(None)
    except NoPersona:
        log.error("VAPI asked for an assistant and no persona is configured")
        return {"error": NOBODY_THERE}
    assistant = {
        "name": persona.name,
        "model": {"provider": "custom-llm", "url": f"{base_url}/v1", "model": persona.name.lower()},
    }
    voice = PersonaVoice.objects.filter(persona=persona).first()
    if voice is not None and voice.first_message.strip():
        assistant["firstMessage"] = voice.first_message.strip()
    if voice is not None and (vapi_voice := voice.vapi_voice()):
        assistant["voice"] = vapi_voice
    return {"assistant": assistant}


def tool_calls(event: VapiEvent) -> dict:
    """Run each call through the persona's tools: {"results": [{toolCallId, name, result | error}]}."""
    calls = event.tool_calls()
    session = session_of(event)
    try:
        persona = session.process.persona if session else persona_for(event)
    except NoPersona:
        return {"results": [{"toolCallId": c["id"], "name": c["name"], "error": NOBODY_THERE} for c in calls]}
    # The caller as the call's session knows them (by number; the message may name only the call).
    caller = Caller(session.caller_id, Channel.VAPI, event.call_id) if session else event.caller()
    context = ToolContext(persona, phone_call_principal(caller), session.process if session else None, caller)
    results = []
    for call in calls:
        arguments = call["arguments"]
        if not isinstance(arguments, str | dict | type(None)):
            arguments = json.dumps(arguments)  # not an object: the tool's schema check says so
        result = call_tool(call["name"], arguments, context, call_id=call["id"])
        results.append(
            {
                "toolCallId": call["id"],
                "name": call["name"],
                ("error" if result.error else "result"): result.content,
            }
        )
    return {"results": results}


def _caller(event: VapiEvent):
    caller = event.caller()
    if caller is None:
        raise BadEvent(
            f"A {event.type} message needs the call's id ({event.where}call.id) or the caller's number "
            f"({event.where}call.customer.number).",
            f"{event.where}call",
        )
    return caller
