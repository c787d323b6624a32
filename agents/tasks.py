"""django-q2 entry points of the agents app (referenced by dotted path in schedules and async_task)."""

from . import tracing
from .background import remember_conversation, run_child
from .replay import run_replay as replay
from .retention import apply_retention
from .sessions import end_idle_sessions
from .turn_store import reap_lapsed


def sweep_idle_sessions() -> str:
    """Every minute: turns lost with their server, then sessions idle past TRON_SESSION_IDLE_MINUTES."""
    lost = reap_lapsed()
    return f"ended {lost} lost turn(s) and {end_idle_sessions()} idle session(s)"


def remember_caller(process_id: int, traceparent: str = "") -> str:
    """After a conversation ended: bring its caller's memory up to date (in the trace of its last turn)."""
    with tracing.continued(traceparent):
        return remember_conversation(process_id)


def run_delegated(process_id: int, traceparent: str = "") -> str:
    """Work a persona delegated with spawn_agent: the child's turn (in the trace of the delegating tool's
    span)."""
    with tracing.continued(traceparent):
        return run_child(process_id)


def run_replay(replay_id: int) -> str:
    """A replay an operator made in the admin: the candidate's answers, then the judge's grades."""
    return replay(replay_id)


def keep_within_retention() -> str:
    """Hourly: callers' words older than TRON_KEEP_TRANSCRIPTS_DAYS and TRON_KEEP_LLM_CALLS_DAYS go
    (agents.retention); costs and counters stay."""
    done = apply_retention()
    return ", ".join(f"{count} {kind}" for kind, count in done.items()) or "nothing to prune (kept forever)"
