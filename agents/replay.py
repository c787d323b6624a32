"""Replays: a persona change tried on the conversations the persona really had, before it ships.

An operator describes a candidate in the admin (a copy of the persona with a changed prompt, model,
temperature or tools) and picks conversations; `run_replay` (the django-q2 task agents.tasks.run_replay)
answers each caller's turn again as the candidate would have, through the engine, and records the
original and the new answer side by side (ReplayTurn); a judge model then grades both by the
operator's rubric, when there is one. `apply` saves the candidate onto the persona.

What a replay may touch (docs/decisions.md):
- each turn is a turn of its own caller (`replay-<replay>-<process>`, channel `replay`), so the engine
  opens a process of its own for each replayed conversation: the live conversation, its session and its
  transcript are only read (agents.recordings);
- the candidate is asked with the history the original turn had (the original's answers, not its own:
  each answer is compared on the same ground) and the prompt context the original turn was sent (its
  caller's notes, standing instructions, goals, as they were), not today's;
- it runs as the original conversation's principal, so the same tools are offered, but with no
  allowance (nothing counts against the caller), and every tool that writes (notes, directives,
  delegation) answers with the result the original turn got from it instead of running
  (agents.tools: ToolContext.recorded); tools that only read run;
- its model calls are held against the persona's daily budget and recorded like any other process's.
"""

import json
import logging
import re

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .callers import Caller
from .errors import TurnError
from .models import CallerSession, Channel, LLMCall, Persona, Process, Replay, ReplayTurn, Turn
from .principals import Principal, Trust
from .recordings import replay_record, turn_metrics
from .runtime import Replaying, TurnEnd, TurnInput, complete_turn_sync
from .sessions import end_session

log = logging.getLogger(__name__)

JUDGE_PROMPT = """You grade answers a persona of a company's AI team gave, by the rubric below. You \
are shown what the caller said and two answers to it, A and B. Grade each from 1 (fails the rubric) to \
10 (meets it fully), each with a reason of one or two sentences.

Rubric:
{rubric}

Answer with JSON only, exactly in this shape:
{{"A": {{"grade": 7, "reason": "..."}}, "B": {{"grade": 4, "reason": "..."}}}}"""

JUDGE_REQUEST = """The caller said:
<<<caller
{said}
caller>>>

Answer A:
<<<A
{original}
A>>>

Answer B:
<<<B
{candidate}
B>>>"""


def queue_replay(replay_id: int) -> None:
    """Queue the replay for the worker, once the transaction that created it commits."""
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task("agents.tasks.run_replay", replay_id, task_name=f"replay {replay_id}")
    )


def run_replay(replay_id: int) -> str:
    """Answer every caller's turn of the replay's conversations as its candidate would, then grade them
    when it has a rubric. Runs once (a replay already started is left alone); returns what it did."""
    now = timezone.now()
    if not Replay.objects.filter(pk=replay_id, status=Replay.Status.QUEUED).update(
        status=Replay.Status.RUNNING, started_at=now
    ):
        return f"replay {replay_id}: not waiting to run"
    replay = Replay.objects.select_related("persona").get(pk=replay_id)
    try:
        records = [
            (process, replay_record(process))
            for process in replay.conversations.select_related("persona").order_by("started_at", "id")
        ]
        Replay.objects.filter(pk=replay_id).update(turns_total=sum(len(r["turns"]) for _p, r in records))
        for process, record in records:
            _replay_conversation(replay, process, record)
        if replay.rubric.strip():
            for replay_turn in replay.turns.exclude(answer="").select_related("original").order_by("id"):
                _grade(replay, replay_turn)
    except Exception as exc:
        log.exception("Replay %s failed", replay_id)
        Replay.objects.filter(pk=replay_id).update(
            status=Replay.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}", finished_at=timezone.now()
        )
        return f"replay {replay_id}: failed"
    Replay.objects.filter(pk=replay_id).update(status=Replay.Status.COMPLETED, finished_at=timezone.now())
    return f"replay {replay_id}: completed"


def _principal(process: Process) -> Principal:
    """The original conversation's principal without its allowance: the same tools, no caller's limits."""
    return Principal(Trust(process.trust), process.principal_caller_id, process.principal_name)


def _replay_conversation(replay: Replay, process: Process, record: dict) -> None:
    caller = Caller(f"replay-{replay.pk}-{process.public_id}", Channel.REPLAY)
    candidate = replay.candidate()
    try:
        for turn in record["turns"]:
            start, end = turn["lines"]
            history = record["messages"][:start]
            said = record["messages"][start : start + turn["said"]]
            replaying = Replaying(
                persona=candidate,
                context=tuple(turn["context"]),
                tool_results=tuple((name, content) for name, content in turn["tool_results"]),
            )
            row = ReplayTurn(
                replay=replay,
                original=process,
                position=turn["turn"],
                said="\n\n".join(line["content"] for line in said),
                original_answer=turn["answer"],
                original_model=turn["model"],
                original_input_tokens=turn["input_tokens"],
                original_output_tokens=turn["output_tokens"],
                original_cost_usd=turn["cost_usd"],
                original_ttft_ms=turn["ttft_ms"],
            )
            try:
                end_ = complete_turn_sync(
                    TurnInput(
                        messages=history + said,
                        caller=caller,
                        principal=_principal(process),
                        persona_name=candidate.name,
                        max_tokens=turn["max_tokens"],
                        task=f"Replay {replay.pk} of {process.public_id}",
                        replaying=replaying,
                    )
                )
                _answered(row, end_)
            except TurnError as exc:
                row.error = exc.message
                row.process_id = _process_of(caller)
            row.save()
            Replay.objects.filter(pk=replay.pk).update(turns_done=F("turns_done") + 1)
    finally:
        _end(caller)


def _answered(row: ReplayTurn, end: TurnEnd) -> None:
    """The candidate's answer and its turn's figures, from its recorded model calls (as the original's)."""
    row.process = Process.objects.filter(pk=end.process_id).first()  # None: deleted while the turn ran
    turn = Turn.objects.filter(process_id=end.process_id).order_by("-id").first()
    metrics = turn_metrics(list(LLMCall.objects.filter(turn=turn))) if turn else None
    row.answer = end.text
    row.model = end.model
    row.input_tokens, row.output_tokens, row.cost_usd = end.input_tokens, end.output_tokens, end.cost_usd
    row.ttft_ms = metrics.ttft_ms if metrics else None


def _process_of(caller: Caller) -> int | None:
    session = CallerSession.objects.filter(caller_id=caller.caller_id).order_by("-id").first()
    return session.process_id if session else None


def _end(caller: Caller) -> None:
    """The replayed conversation's process completes (or fails, after a failed last turn)."""
    for session in CallerSession.objects.filter(caller_id=caller.caller_id).open():
        end_session(session)


def judge(replay: Replay) -> Persona:
    """The judge: the persona's copy with the judge's instructions, its model, no tools, temperature 0."""
    persona = replay.candidate()
    persona.system_prompt = JUDGE_PROMPT.format(rubric=replay.rubric.strip())
    persona.model = replay.judge_model or replay.model
    persona.temperature, persona.tools = 0, []
    return persona


def _grade(replay: Replay, row: ReplayTurn) -> None:
    """One judge call for one turn: both answers graded by the rubric (the original as A, the candidate
    as B), in a process of its own (channel `replay`)."""
    caller = Caller(f"replay-{replay.pk}-judge-{row.pk}", Channel.REPLAY)
    request = JUDGE_REQUEST.format(said=row.said, original=row.original_answer, candidate=row.answer)
    try:
        end = complete_turn_sync(
            TurnInput(
                messages=[{"role": "user", "content": request}],
                caller=caller,
                # An operator's evaluation, of a caller's words: their id says whose words its process holds.
                principal=Principal(Trust.OPERATOR, _caller_of(row), f"replay {replay.pk}"),
                persona_name=replay.persona.name,
                task=f"Replay {replay.pk}: grade turn {row.position}",
                persona_tools=False,
                replaying=Replaying(persona=judge(replay)),
            )
        )
        row.judge_process_id, row.judge_cost_usd = end.process_id, end.cost_usd
        grades = read_grades(end.text)
    except TurnError as exc:
        row.judge_process_id = _process_of(caller)
        grades = {"A": (None, f"The judge gave no grade: {exc.message}"), "B": (None, "")}
    finally:
        _end(caller)
    (row.original_grade, row.original_reason), (row.grade, row.reason) = grades["A"], grades["B"]
    row.save()
    Replay.objects.filter(pk=replay.pk).update(graded=F("graded") + 1)


def _caller_of(row: ReplayTurn) -> str:
    return row.original.principal_caller_id if row.original is not None else ""


GRADE_RANGE = range(1, 11)


def read_grades(text: str) -> dict[str, tuple[int | None, str]]:
    """The judge's answer as {"A": (grade, reason), "B": (grade, reason)}; an answer that is not the JSON
    asked for gives no grades, and says so with what the judge wrote."""
    found = re.search(r"\{.*\}", text or "", re.DOTALL)
    try:
        data = json.loads(found.group(0)) if found else None
        grades = {}
        for key in ("A", "B"):
            grade, reason = data[key]["grade"], str(data[key]["reason"]).strip()
            if not isinstance(grade, int) or isinstance(grade, bool) or grade not in GRADE_RANGE:
                raise ValueError(grade)
            grades[key] = (grade, reason)
        return grades
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested too deep
        shown = " ".join((text or "").split())[:300]
        return {"A": (None, f"The judge's answer could not be read: {shown!r}"), "B": (None, "")}


def apply(replay: Replay, by: str) -> list[str]:
    """Save the candidate onto the persona (audited on the replay: who, when, what it had before);
    returns the names of the settings that changed."""
    with transaction.atomic():
        persona = Persona.objects.select_for_update().get(pk=replay.persona_id)
        previous = {name: getattr(persona, name) for name in Replay.CANDIDATE_FIELDS}
        changed = [name for name in Replay.CANDIDATE_FIELDS if getattr(replay, name) != previous[name]]
        replay.candidate(persona).full_clean()
        persona.save()
        replay.applied_at, replay.applied_by, replay.previous = timezone.now(), by, previous
        replay.save(update_fields=["applied_at", "applied_by", "previous"])
    log.info("%s applied the candidate of replay %s to %s: %s", by, replay.pk, persona.name, changed)
    return changed
