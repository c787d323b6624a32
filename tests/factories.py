"""Plain factory functions: defaults via setdefault, no factory library."""

from datetime import timedelta

from django.utils import timezone

from agents.models import CallerSession, LLMCall, Message, Persona, Process, Turn


def make_persona(**overrides) -> Persona:
    overrides.setdefault("name", "Tony")
    overrides.setdefault("role", "CTO")
    overrides.setdefault("system_prompt", f"You are {overrides['name']}.")
    return Persona.objects.create(**overrides)


def make_process(persona=None, **overrides) -> Process:
    overrides.setdefault("status", Process.Status.RUNNING)
    return Process.objects.create(persona=persona or make_persona(), **overrides)


def make_session(caller_id="+14155551234", process=None, **overrides) -> CallerSession:
    return CallerSession.objects.create(caller_id=caller_id, process=process or make_process(), **overrides)


def make_turn(session, lease_until, **overrides) -> Turn:
    """A running turn of `session` whose holder renews it until `lease_until` (in the past: lost)."""
    overrides.setdefault("state", Turn.State.RUNNING)
    return Turn.objects.create(
        caller_id=session.caller_id,
        session=session,
        process=session.process,
        lease_until=lease_until,
        **overrides,
    )


def make_message(process, role="user", content="Hello", **overrides) -> Message:
    return Message.objects.create(process=process, role=role, content=content, **overrides)


def make_llm_call(process, **overrides) -> LLMCall:
    overrides.setdefault("provider", "openai")
    overrides.setdefault("model", "gpt-4o-mini")
    overrides.setdefault("input_tokens", 100)
    overrides.setdefault("output_tokens", 20)
    overrides.setdefault("duration_ms", 250)
    return LLMCall.objects.create(process=process, **overrides)


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)
