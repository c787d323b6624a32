"""django-q2 entry points of the agents app (referenced by dotted path in schedules and async_task)."""

from .memory import remember_conversation
from .sessions import end_idle_sessions


def sweep_idle_sessions() -> str:
    return f"ended {end_idle_sessions()} idle session(s)"


def remember_caller(process_id: int) -> str:
    """After a conversation ended: bring its caller's memory up to date (agents.memory)."""
    return remember_conversation(process_id)
