"""Retention: callers' words are kept only as long as the settings say (0 keeps them forever).

- TRON_KEEP_TRANSCRIPTS_DAYS: transcript lines (Message) are deleted; sessions that ended and turns that
  finished before the bound are deleted (they hold caller ids); the processes that ended before it lose
  who they ran for, their task, the call's summary and the delegated result; replayed turns of replays
  made before it lose their words (said, answers, the judge's reasons).
- TRON_KEEP_LLM_CALLS_DAYS: an LLM call's request (the prompt sent) and error text are cleared; the row
  stays, with its model, tokens, cost and times: what the cost summary and the budgets add up.

Never touched: the processes' counters and costs, the LLM calls' tokens and costs, daily spend, caller
usage, caller memory (what the team knows about a caller, kept until an operator erases it). Slack
messages are integrations' (integrations.slack.tasks.prune_old_messages).

Work goes in batches of BATCH rows, each its own statement, so no run holds locks for long; the
hourly task (`manage.py setup_schedules`) picks up where the last left off.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .erasure import REPLAY_WORDS
from .models import CallerSession, Channel, LLMCall, Message, Process, ReplayTurn, Turn

BATCH = 500


def cutoff(days: int, now=None):
    """The moment before which rows go, or None when `days` is 0 (kept forever)."""
    return (now or timezone.now()) - timedelta(days=days) if days > 0 else None


def in_batches(queryset, change) -> int:
    """Apply `change(queryset of at most BATCH rows)` to the rows `queryset` matches, BATCH at a time in
    primary-key order, each batch one statement; returns how many rows were changed. One pass: each
    batch is looked for after the last one, not from the table's start again."""
    done, last = 0, None
    while True:
        rows = queryset if last is None else queryset.filter(pk__gt=last)
        ids = list(rows.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return done
        change(queryset.model.objects.filter(pk__in=ids))
        done, last = done + len(ids), ids[-1]


def _delete(rows):
    rows.delete()


PROCESS_WORDS = {
    "principal_caller_id": "",
    "principal_name": "",
    "allowance": "",
    "summary": "",
    "result": "",
    "error": "",
}


def prune_transcripts(now=None) -> dict[str, int]:
    before = cutoff(settings.TRON_KEEP_TRANSCRIPTS_DAYS, now)
    if before is None:
        return {}
    old_processes = Process.objects.filter(finished_at__lt=before)
    spoken = (
        ~Q(principal_caller_id="") | ~Q(principal_name="") | ~Q(allowance="") | ~Q(summary="") | ~Q(result="")
    )
    replayed = ~Q(said="") | ~Q(original_answer="") | ~Q(answer="") | ~Q(reason="") | ~Q(original_reason="")
    return {
        "messages": in_batches(Message.objects.filter(created_at__lt=before), _delete),
        "sessions": in_batches(CallerSession.objects.filter(ended_at__lt=before), _delete),
        "turns": in_batches(
            Turn.objects.filter(finished_at__lt=before).exclude(state__in=Turn.LIVE_STATES), _delete
        ),
        "processes": in_batches(old_processes.filter(spoken), lambda rows: rows.update(**PROCESS_WORDS)),
        # A conversation's task may name its caller (Slack: "… with Ada"); a life-loop run's names the
        # activity, nobody's words: it stays.
        "process tasks": in_batches(
            old_processes.exclude(task="").exclude(channel=Channel.LIFE), lambda rows: rows.update(task="")
        ),
        "replayed turns": in_batches(
            ReplayTurn.objects.filter(replay__created_at__lt=before).filter(replayed | ~Q(error="")),
            lambda rows: rows.update(**REPLAY_WORDS),
        ),
    }


def redact_llm_calls(now=None) -> dict[str, int]:
    before = cutoff(settings.TRON_KEEP_LLM_CALLS_DAYS, now)
    if before is None:
        return {}
    old = LLMCall.objects.filter(created_at__lt=before).filter(Q(request__isnull=False) | Q(error__gt=""))
    return {"LLM calls redacted": in_batches(old, lambda rows: rows.update(request=None, error=""))}


def apply_retention(now=None) -> dict[str, int]:
    """What the hourly task does: both rules; returns the rows changed per kind."""
    return {**prune_transcripts(now), **redact_llm_calls(now)}
