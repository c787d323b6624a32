"""django-q2 entry points of the agents app (referenced by dotted path in schedules and async_task)."""

from .delegation import run_child
from .memory import remember_conversation
from .sessions import end_idle_sessions


def sweep_idle_sessions() -> str:
    return f"ended {end_idle_sessions()} idle session(s)"


def remember_caller(process_id: int) -> str:
    """After a conversation ended: bring its caller's memory up to date (agents.memory)."""
    return remember_conversation(process_id)


def run_delegated(process_id: int) -> str:
    """Work a persona delegated with spawn_agent: the child's turn (agents.delegation)."""
    return run_child(process_id)
