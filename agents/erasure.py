"""Erasure: everything stored about one caller, when they ask to be forgotten (`manage.py erase_caller`,
and the sessions list's admin action "Erase everything about these callers…").

Who: the caller ids given (as the admin and /api/sessions show them: `+14155551234`, `req-…`, `user-…`,
`elevenlabs-user-…`, `conv-…`, `call-…`, `slack-…`), a phone number in any form (read as E.164, the id a
phone caller has), and the other ids the apps know for the same person (`erasure_subject` hooks: a VAPI
call's `call-<id>`, a Slack user's threads).

What goes, for every process that served them or ran for them (their conversations, the memory
writer's updates of their notes, work delegated from their conversations, replays of them):
- transcript lines, sessions, turns (their caller ids, principals and errors);
- the processes' principal, allowance, task, call summary, result and error text; the LLM calls'
  request and error text; replayed turns' words (said, answers, the judge's reasons);
- their caller memory and every note added for them (and its line in another caller's notes);
- the standing directives they asked for, their caller usage and allowance rows;
- the admin's history entries naming them; the apps' own rows (`erase_caller` hooks: Slack's messages).

What stays, anonymised: the processes (persona, channel, times, status) with their tokens, calls and
costs; the LLM calls' model, tokens, cost and times; daily spend. Traces sent to an OpenTelemetry
backend are outside this database: the processes' trace ids are returned for the operator to delete
there (they hold callers' words only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT).

A caller with a turn waiting or running is refused (CallerBusy): erase once it has ended. Their turns
lost with a server that died are ended first, as their next turn would end them (turn_store.reap_lapsed:
the open model calls closed and counted, the holds given back). Everything else happens in one
transaction. The log records who asked and how many rows went, never the caller's ids.
"""

import logging
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import turn_store
from .callers import clean_id, normalize_phone
from .memory import PHONE_LIKE
from .models import (
    CallerAllowance,
    CallerMemory,
    CallerSession,
    CallerUsage,
    Directive,
    LLMCall,
    MemoryNote,
    Message,
    Process,
    ReplayTurn,
    Turn,
)

log = logging.getLogger(__name__)

ERASED = "(erased)"
PROCESS_WORDS = {
    "principal_caller_id": "",
    "principal_name": "",
    "allowance": "",
    "task": "",
    "summary": "",
    "result": "",
    "error": "",
}
REPLAY_WORDS = {
    "said": "",
    "original_answer": "",
    "answer": "",
    "original_reason": "",
    "reason": "",
    "error": "",
}


class CallerBusy(Exception):
    """The caller has a turn waiting or running: erasing now would race with it."""


@dataclass
class Subject:
    """Whom to erase: `given` as the operator named them, every caller id they are known by, and the
    names turns ran for them under (a Slack user's principal name), filled in by `subject`."""

    given: list[str]
    caller_ids: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


@dataclass
class Erased:
    counts: dict[str, int]
    trace_ids: list[str]

    def summary(self) -> str:
        done = ", ".join(f"{count} {kind}" for kind, count in self.counts.items() if count)
        return done or "nothing was stored about them"


def subject(values) -> Subject:
    who = Subject(given=[value for value in (clean_id(v) for v in values) if value])
    for value in who.given:
        who.caller_ids.add(value)
        if PHONE_LIKE.fullmatch(value) and (phone := normalize_phone(value)):
            who.caller_ids.add(phone)
    for config in apps.get_app_configs():
        if hook := getattr(config, "erasure_subject", None):
            hook(who)
    return who


def _processes(who: Subject) -> set[int]:
    """The processes that served them or ran for them, and the work those started (delegated tasks,
    replays' candidates and judges)."""
    ids, names = who.caller_ids, who.names
    found = set(CallerSession.objects.filter(caller_id__in=ids).values_list("process_id", flat=True))
    found |= set(
        Turn.objects.filter(caller_id__in=ids).exclude(process=None).values_list("process_id", flat=True)
    )
    found |= set(
        Process.objects.filter(
            Q(principal_caller_id__in=ids) | Q(allowance__in=ids) | Q(principal_name__in=names)
        ).values_list("pk", flat=True)
    )
    while True:
        more = set(Process.objects.filter(parent__in=found).values_list("pk", flat=True))
        for row in ReplayTurn.objects.filter(original__in=found).values_list(
            "process_id", "judge_process_id"
        ):
            more |= {pk for pk in row if pk is not None}
        if more <= found:
            return found
        found |= more


def _forget_notes(notes) -> int:
    """Delete these MemoryNotes, and each one's line from the notes it was added to."""
    count = 0
    for note in notes.select_related("memory"):
        memory = note.memory
        lines = [line for line in memory.notes.splitlines() if line.strip().lstrip("- ").strip() != note.text]
        CallerMemory.objects.filter(pk=memory.pk).update(notes="\n".join(lines))
        note.delete()
        count += 1
    return count


def erase(values, *, by: str) -> Erased:
    """Erase everything about the caller(s) named by `values` (see the module's docstring); `by` is who
    asked, for the log. Raises CallerBusy."""
    _end_lost_turns(subject(values))
    with transaction.atomic():
        who = subject(values)
        ids = who.caller_ids
        processes = _processes(who)
        # Their sessions locked first: a turn claiming one now (it updates its session) finishes its
        # claim before the check below sees it, or waits for the erasure and then opens a new session.
        list(CallerSession.objects.select_for_update().filter(caller_id__in=ids).values_list("pk", flat=True))
        # Any turn not ended, its lease live or not: one that lapsed since the ending above is refused
        # (erase again) rather than deleted with its model call open.
        not_ended = Turn.objects.filter(state__in=Turn.LIVE_STATES)
        if not_ended.filter(Q(caller_id__in=ids) | Q(process__in=processes)).exists():
            raise CallerBusy("A turn of this caller is waiting or running now; erase them once it has ended.")
        trace_ids = sorted(
            set(
                Process.objects.filter(pk__in=processes)
                .exclude(trace_id="")
                .values_list("trace_id", flat=True)
            )
            | set(
                Turn.objects.filter(process__in=processes)
                .exclude(trace_id="")
                .values_list("trace_id", flat=True)
            )
        )
        asked = ids | who.names
        # Their open conversations end now: with their sessions gone, the idle sweep would never end them.
        Process.objects.filter(pk__in=processes).finish_by_outcome(timezone.now())
        counts = {
            "transcript lines": Message.objects.filter(process__in=processes).delete()[0],
            "turns": Turn.objects.filter(Q(process__in=processes) | Q(caller_id__in=ids)).delete()[0],
            "sessions": CallerSession.objects.filter(Q(process__in=processes) | Q(caller_id__in=ids))
            .delete()[1]
            .get("agents.CallerSession", 0),
            "processes anonymised": Process.objects.filter(pk__in=processes).update(**PROCESS_WORDS),
            "LLM calls redacted": LLMCall.objects.filter(process__in=processes).update(
                request=None, error=""
            ),
            "replayed turns redacted": ReplayTurn.objects.filter(
                Q(original__in=processes) | Q(process__in=processes) | Q(judge_process__in=processes)
            ).update(**REPLAY_WORDS),
            "memory notes": _forget_notes(
                MemoryNote.objects.filter(Q(added_for__in=ids) | Q(process__in=processes)).exclude(
                    memory__caller_id__in=ids
                )
            ),
            "caller memories": CallerMemory.objects.filter(caller_id__in=ids)
            .delete()[1]
            .get("agents.CallerMemory", 0),
            "directives": Directive.objects.filter(Q(asked_by__in=asked) | Q(process__in=processes)).delete()[
                0
            ],
            "caller usage days": CallerUsage.objects.filter(allowance__in=ids).delete()[0],
            "caller allowances": CallerAllowance.objects.filter(allowance__in=ids).delete()[0],
            "admin history entries": _admin_history(asked),
        }
        for config in apps.get_app_configs():
            if hook := getattr(config, "erase_caller", None):
                counts.update(hook(who))
    erased = Erased(counts, trace_ids)
    log.info("Erased a caller at the request of %s: %s", by, erased.summary())
    return erased


def _end_lost_turns(who: Subject) -> None:
    """End their turns whose server died (their leases ran out), each in a transaction of its own and
    before the erasure's (turn_store's order of the rows turns share: the caller's usage row, then the
    persona's day; the erasure deletes usage rows after)."""
    lapsed = Turn.objects.lapsed().filter(Q(caller_id__in=who.caller_ids) | Q(process__in=_processes(who)))
    for caller_id in set(lapsed.values_list("caller_id", flat=True)):
        turn_store.reap_lapsed(caller_id)


def _admin_history(words: set[str]) -> int:
    """The admin's history entries whose object was named by one of `words` (a caller memory, a
    session, a caller allowance): the name is replaced, the entry (who did what when) stays."""
    named = Q(pk__in=[])
    for word in words:
        named |= Q(object_repr__contains=word)
    return LogEntry.objects.filter(named).update(object_repr=ERASED)
