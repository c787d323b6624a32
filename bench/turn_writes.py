"""What a chat turn's database writes cost the web process: CPU per turn, per step.

    python bench/turn_writes.py                      # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/turn_writes.py

Each turn writes twice, on the runtime's database threads (agents/dbthread.py): once the model has
the request, the new caller's session, its process and the user's words (`open_turn`); when the answer
is done, the LLM call, the assistant's words and the process counters (the turn's record). Both hold
the web process's GIL for most of their time, so what they cost is taken from every stream the process
serves. This times both steps for new callers in-process (no server, no model), CPU and wall per turn,
plus the counter UPDATE alone and, for comparison, the same UPDATE built from F() expressions by the
ORM. On PostgreSQL it creates and drops a test database named after DATABASE_URL's.
"""

import os
import statistics
import time

from throwaway_db import throwaway_database

TURNS = int(os.environ.get("BENCH_TURNS", 500))
ROUNDS = 5


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

    from django.db.models import F

    from agents.callers import Caller
    from agents.llm import get_provider
    from agents.llm.base import LLMRequest
    from agents.models import LLMCall, Process
    from agents.personas import resolve_persona
    from agents.runtime import Turn, TurnContext, TurnEnd, TurnInput, open_turn

    persona = resolve_persona("tony")
    provider = get_provider()
    cost = Decimal("0.0000081")
    end = TurnEnd(" word" * 20, "stop", 42, 20, LLMCall.UsageSource.PROVIDER, cost, "gpt-4o-mini")
    samples: dict[str, list[tuple[float, float]]] = {}

    def timed(step, func, items):
        cpu, wall = time.process_time(), time.perf_counter()
        results = [func(item) for item in items]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        samples.setdefault(step, []).append((cpu * 1000 / len(items), wall * 1000 / len(items)))
        return results

    def orm_add_usage(process):
        Process.objects.filter(pk=process.pk).update(
            input_tokens=F("input_tokens") + 42,
            output_tokens=F("output_tokens") + 20,
            llm_calls=F("llm_calls") + 1,
            tool_calls=F("tool_calls") + 0,
            cost_usd=F("cost_usd") + cost,
        )

    for round_ in range(ROUNDS):
        inputs = [
            TurnInput(
                messages=[{"role": "user", "content": "What's on your mind?"}],
                caller=Caller(f"req-bench-{round_}-{i}-{time.time_ns()}"),
            )
            for i in range(TURNS)
        ]
        context = TurnContext(persona, None, [], [{"role": "user", "content": "What's on your mind?"}])
        sessions = timed(
            "the opening: session, process, the user's words (open_turn)",
            lambda turn_input, context=context: open_turn(turn_input, context),
            inputs,
        )
        turns = []
        for session in sessions:
            turn = Turn(
                persona=persona, request=LLMRequest([], "gpt-4o-mini"), provider=provider, write_opening=None
            )
            turn.session = session
            turns.append(turn)
        timed(
            "the record: LLM call, the answer, the counters (Turn._write)",
            lambda turn: turn._write(end, 50, None),
            turns,
        )
        processes = [session.process for session in sessions]
        timed(
            "  of which the counters (Process.add_usage)",
            lambda process: process.add_usage(input_tokens=42, output_tokens=20, llm_calls=1, cost_usd=cost),
            processes,
        )
        timed("  the same UPDATE built from F() expressions (for comparison)", orm_add_usage, processes)
    return {
        step: (statistics.median(c for c, _ in values), statistics.median(w for _, w in values))
        for step, values in samples.items()
    }


if __name__ == "__main__":
    main()
