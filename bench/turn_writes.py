"""What a chat turn's database writes cost the web process: CPU per turn, per step.

    python bench/turn_writes.py                      # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/turn_writes.py

Each turn makes two transactions, on the runtime's database threads (agents/dbthread.py): before the
model call, the claim of the caller's session (for a new caller: its session and process), the user's
words and the transcript (`agents/transcript.begin_turn`); when the answer is done, the LLM call, the
assistant's words, the process counters and the session's release (`record_turn`). Both hold the web
process's GIL for most of their time, so what they cost is taken from every stream the process serves.
This times both for new callers in-process (no server, no model), CPU and wall per turn, and the budget
check a budgeted persona's model call adds (`agents/budgets.hold`, one conditional UPDATE). On PostgreSQL
it creates and drops a test database named after DATABASE_URL's.
"""

import os
import statistics
import time

from throwaway_db import throwaway_database

TURNS = int(os.environ.get("BENCH_TURNS", 500))
ROUNDS = 5
os.environ.setdefault("TRON_MAX_RUNNING_PROCESSES", str(TURNS * ROUNDS * 2))  # the callers' processes all run


def main():
    with throwaway_database() as engine:
        results = measure()
    print(f"Database: {engine}; {TURNS} new callers per round, median of {ROUNDS} rounds; ms per turn")
    print("| step | CPU | wall |")
    print("|---|---|---|")
    for step, (cpu, wall) in results.items():
        print(f"| {step} | {cpu:.3f} | {wall:.3f} |")


def measure() -> dict:
    from decimal import Decimal

    from agents import budgets
    from agents.callers import Caller
    from agents.models import LLMCall, Persona
    from agents.personas import resolve_persona
    from agents.transcript import CallRecord, TurnRecord, begin_turn, peek_turn, record_turn

    Persona.objects.filter(name__iexact="tony").update(budget_usd=Decimal("1000000"))
    persona = resolve_persona("tony")
    call = CallRecord(
        "openai", "gpt-4o-mini", 42, 20, Decimal("0.0000081"), LLMCall.UsageSource.PROVIDER, "stop", 50, 450
    )
    record = TurnRecord(calls=[call], lines=[{"role": "assistant", "content": " word" * 20}])
    words = [{"role": "user", "content": "What's on your mind?"}]
    samples: dict[str, list[tuple[float, float]]] = {}

    def timed(step, func, items):
        cpu, wall = time.process_time(), time.perf_counter()
        results = [func(item) for item in items]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        samples.setdefault(step, []).append((cpu * 1000 / len(items), wall * 1000 / len(items)))
        return results

    for round_ in range(ROUNDS):
        callers = [Caller(f"req-bench-{round_}-{i}-{time.time_ns()}") for i in range(TURNS)]
        begun = timed(
            "begin: session and process claimed, the words stored (begin_turn)",
            lambda caller: begin_turn(caller, persona, "", peek_turn(caller, persona, words)),
            callers,
        )
        holds = timed(
            "budget: one model call admitted against the day's budget (budgets.hold)",
            lambda _session: budgets.hold(persona, Decimal("0.001")),
            begun,
        )
        timed(
            "record: LLM call, the answer, the counters, the spend, the release (record_turn)",
            lambda pair: record_turn(
                pair[0], TurnRecord(calls=record.calls, lines=record.lines, holds=[pair[1]])
            ),
            list(zip(begun, holds, strict=True)),
        )
        timed(
            "begin again: the same callers' sessions continued (begin_turn)",
            lambda caller: begin_turn(caller, persona, "", peek_turn(caller, persona, words)),
            callers,
        )
    return {
        step: (statistics.median(c for c, _ in values), statistics.median(w for _, w in values))
        for step, values in samples.items()
    }


if __name__ == "__main__":
    main()
