"""Operator commands in Slack: `status`, `sessions`, `clear sessions`, `costs today`.

A message that is exactly one of them (any case, a trailing `.`, `!` or `?` allowed), in a direct
message or a mention, runs it for the Slack users listed in SLACK_ADMIN_USERS; anyone else gets a polite
refusal. The figures come from the same queries as the control API (agents/api.py, agents/spend.py)
and the same schema (agents/schemas.py), so Slack and /api/* never disagree.
"""

import re
from collections.abc import Callable

from django.conf import settings

from agents import spend
from agents.api import sessions_by_activity, system_status
from agents.models import CallerSession, Channel
from agents.schemas import SessionOut
from agents.sessions import end_session

SESSIONS_SHOWN = 15


def command_in(text: str) -> str | None:
    """The command `text` is, or None."""
    words = re.sub(r"\s+", " ", text.strip().rstrip(".!?").strip().lower())
    return words if words in COMMANDS else None


def run(command: str, user_id: str) -> str:
    """The command's reply (Slack mrkdwn), or the refusal when `user_id` is no operator."""
    if user_id not in settings.SLACK_ADMIN_USERS:
        return (
            f"Sorry, `{command}` is an operator command, and only Tron's operators can run it. "
            "Anything else, just ask!"
        )
    return COMMANDS[command]()


def status() -> str:
    figures = system_status()
    return "\n".join(
        [
            f"*Tron*: {figures['status']}, up {figures['uptime']}",
            f"• Active processes: {figures['process_count']}",
            f"• Open sessions: {figures['session_count']}",
            f"• Personas: {', '.join(figures['personas']) or 'none (run `manage.py load_team`)'}",
            f"• With a life loop: {', '.join(figures['active_personas']) or 'none'}",
        ]
    )


def sessions() -> str:
    open_sessions = sessions_by_activity()
    total = open_sessions.count()
    if not total:
        return "No open sessions."
    lines = [f"*Open sessions: {total}*"]
    for session in open_sessions[:SESSIONS_SHOWN]:
        row = SessionOut.from_orm(session)
        lines.append(
            f"• `{row.caller_id}` → {row.agent}, process `{row.process_id}` ({row.status}, {row.channel}), "
            f"last seen {row.last_seen_at}"
        )
    if total > SESSIONS_SHOWN:
        lines.append(f"…and {total - SESSIONS_SHOWN} more: `/api/sessions` lists them all.")
    return "\n".join(lines)


def clear_sessions() -> str:
    """End every open Slack session (their processes complete): each thread's next message starts a
    fresh conversation. Calls and chat sessions on other channels are left alone."""
    ended = sum(
        end_session(session) for session in CallerSession.objects.open().filter(channel=Channel.SLACK)
    )
    return f"Ended {ended} Slack session(s): the next message in each thread starts a fresh conversation."


def costs_today() -> str:
    rows = spend.daily_usage(spend.recent_calls(1))
    total = spend.grand_total(rows)
    lines = [
        f"*Spend today ({spend.utc_today().isoformat()}, UTC)*: {total['cost']}, {total['calls']} LLM calls, "
        f"{total['tokens']:,} tokens"
    ]
    per_persona = spend.totals(rows, lambda row: row["persona_name"])
    for entry in sorted(per_persona, key=lambda entry: (-entry["cost_usd"], entry["key"])):
        lines.append(
            f"• {entry['key']}: {entry['cost']} ({entry['calls']} calls, {entry['tokens']:,} tokens)"
        )
    lines.extend(f"_{model['note']}_" for model in spend.unpriced_models(rows))
    return "\n".join(lines)


COMMANDS: dict[str, Callable[[], str]] = {
    "status": status,
    "sessions": sessions,
    "clear sessions": clear_sessions,
    "costs today": costs_today,
}
