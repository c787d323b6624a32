"""What a chat turn's database work costs the web process: CPU per turn, per step.

    python bench/turn_writes.py                      # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/turn_writes.py

A turn does two steps on the engine's database threads (agents/turn_store.py): the claim before the
model is called (its place in line, the session and for a new caller its process, the words stored,
the prompt's reads, the first call held and opened: on the way to the first token) and the finish when
the answer is done (the call's outcome, the answer, the counters, the day's spend, the turn's end).
They hold the web process's GIL for most of their time. This times each for new and for continuing
callers in-process (no server, no model), CPU and wall per turn, for Tony with a budget (set high, so
nothing is refused). On PostgreSQL it creates and drops a test database named after DATABASE_URL's.
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
    from agents.llm.base import LLMRequest
    from agents.models import LLMCall, Persona, Turn
    from agents.principals import Principal, Trust
    from agents.prompts import build_prompt
    from agents.turn_store import CallOutcome, Claim, claim, finish

    Persona.objects.filter(name__iexact="tony").update(budget_usd=Decimal("1000000"))
    words = [{"role": "user", "content": "What's on your mind?"}]
    answer = {"role": "assistant", "content": " word" * 20}
    samples: dict[str, list[tuple[float, float]]] = {}

    def prepare(persona, conversation, extra):
        return LLMRequest(build_prompt(persona, words, conversation, extra=extra), "gpt-4o-mini")

    def timed(step, func, items):
        cpu, wall = time.process_time(), time.perf_counter()
        results = [func(item) for item in items]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        samples.setdefault(step, []).append((cpu * 1000 / len(items), wall * 1000 / len(items)))
        return results

    def outcome():
        return CallOutcome(
            "gpt-4o-mini", 42, 20, LLMCall.UsageSource.PROVIDER, "stop", 50, 450, lines=[answer]
        )

    def turn(label, callers):
        begun = timed(
            f"claim, {label}: line, session, words, reads, first call held and opened",
            lambda caller: claim(
                Claim(caller, Principal(Trust.PUBLIC, caller.caller_id), "tony", words, "", "openai"),
                None,
                prepare,
            ),
            callers,
        )
        timed(
            f"finish, {label}: the call's outcome, the answer, counters, spend, the turn's end",
            lambda b: finish(
                b.turn_id, b.allowance, b.session, Turn.State.ANSWERED, last=(b.call, outcome())
            ),
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
