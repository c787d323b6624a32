"""What a chat turn's database work costs the web process: CPU per turn, per step.

    python bench/turn_writes.py                      # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/turn_writes.py

A turn does three steps on the runtime's database threads (agents/dbthread.py): the peek before the
model is called (the caller's session, the transcript, the prompt's context: on the way to the first
token), the begin while the model works on its first token (the session claimed, for a new caller with
its process; the first call held against the persona's budget; the words stored), and the record when
the answer is done (the LLM call, the answer, the counters, the day's spend, the release). They hold the
web process's GIL for most of their time, so what they cost is taken from every stream it serves. This
times each for new and for continuing callers in-process (no server, no model), CPU and wall per turn,
for Tony with a budget (set high, so nothing is refused). On PostgreSQL it creates and drops a test
database named after DATABASE_URL's.
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
    hold = Decimal("0.0006")  # what budgets.estimate makes of a short gpt-4o-mini prompt
    samples: dict[str, list[tuple[float, float]]] = {}

    def timed(step, func, items):
        cpu, wall = time.process_time(), time.perf_counter()
        results = [func(item) for item in items]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        samples.setdefault(step, []).append((cpu * 1000 / len(items), wall * 1000 / len(items)))
        return results

    def turn(label, callers):
        peeks = timed(
            f"peek, {label}: the session, transcript and prompt context read (peek_turn)",
            lambda caller: (caller, peek_turn(caller, persona, words)),
            callers,
        )
        begun = timed(
            f"begin, {label}: the session claimed, the call held, the words stored (begin_turn)",
            lambda item: begin_turn(item[0], persona, "", item[1], hold)[0],
            peeks,
        )
        timed(
            f"record, {label}: LLM call, the answer, the counters, the release (record_turn)",
            lambda session: record_turn(session, record),
            begun,
        )

    for round_ in range(ROUNDS):
        callers = [Caller(f"req-bench-{round_}-{i}-{time.time_ns()}") for i in range(TURNS)]
        turn("new caller", callers)
        turn("continuing", callers)
    return {
        step: (statistics.median(c for c, _ in values), statistics.median(w for _, w in values))
        for step, values in samples.items()
    }


if __name__ == "__main__":
    main()
