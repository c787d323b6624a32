"""django-q2 entry points of the agents app (referenced by dotted path in schedules)."""

from .sessions import end_idle_sessions


def sweep_idle_sessions() -> str:
    return f"ended {end_idle_sessions()} idle session(s)"
