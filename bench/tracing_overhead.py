"""What tracing costs a turn: CPU and wall per turn with tracing off, on, and on with message content.

    python bench/tracing_overhead.py                  # 200 turns a round, 6 rounds of each mode, SQLite
    BENCH_TURNS=100 BENCH_ROUNDS=4 python bench/tracing_overhead.py

Each turn is a whole turn through the engine (`agents.runtime.complete_turn`, in this process, as a web
process runs it): claim, one streamed model call with a tool round before it (list_team), the record,
a new caller each time. The fake OpenAI upstream (tests/upstream.py) and an OTLP/HTTP receiver
(tests/otlp.py) run in processes of their own, so this process's CPU is Tron's alone: the engine, the
spans, and the exporter's thread (each "on" round ends with a flush, so all of its export is counted).
Modes alternate round by round; the table gives the median of the rounds. Nothing is written into the
repository (a throwaway SQLite file in a temp dir).
"""

import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import time

from throwaway_db import ROOT, throwaway_database

TURNS = int(os.environ.get("BENCH_TURNS", 200))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 6))
MODES = ("off", "on", "on, with content")
os.environ.setdefault("TRON_MAX_RUNNING_PROCESSES", str(TURNS * ROUNDS * len(MODES) * 2))
os.environ.setdefault("TRON_CALLER_REQUESTS_PER_MINUTE", "0")
os.environ.setdefault("TRON_CALLER_DAILY_SPEND_USD", "none")


def _serve(kind: str, conn) -> None:
    """A child process: the fake upstream or the OTLP receiver, until its parent closes the pipe."""
    sys.path.insert(0, str(ROOT))
    if kind == "upstream":
        import itertools
        import threading

        from tests.upstream import FakeUpstream, Script

        server = FakeUpstream().start()
        # Every turn: a call that asks for list_team, then one that answers in 20 tokens.
        scripts = itertools.cycle(
            [Script(tokens=[], tool_calls=[{"id": "c1", "name": "list_team"}]), Script(tokens=[" word"] * 20)]
        )
        lock = threading.Lock()

        def next_script():
            with lock:
                return next(scripts)

        server.next_script = next_script
        conn.send(server.base_url)
    else:
        from tests.otlp import OTLPReceiver

        server = OTLPReceiver().start()
        conn.send(server.url)
    with contextlib.suppress(EOFError):
        conn.recv()
    if kind == "receiver":
        conn.send(len(server.spans))


def child(kind: str):
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(kind, theirs), daemon=True)
    process.start()
    return process, mine, mine.recv()


def main():
    upstream, upstream_conn, upstream_url = child("upstream")
    receiver, receiver_conn, receiver_url = child("receiver")
    os.environ.update(TRON_LLM="openai", OPENAI_BASE_URL=upstream_url, OPENAI_API_KEY="sk-bench")
    try:
        with throwaway_database() as engine:
            results = measure(receiver_url)
        receiver_conn.send("spans?")
        spans = receiver_conn.recv()
    finally:
        for process, conn in ((upstream, upstream_conn), (receiver, receiver_conn)):
            conn.close()
            process.join(timeout=5)
            process.kill()
    load = os.getloadavg()
    print(f"Database: {engine}; {TURNS} turns a round, {ROUNDS} rounds a mode; median ms per turn")
    print(f"Spans received: {spans}; load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| tracing | CPU per turn | wall per turn |")
    print("|---|---|---|")
    for mode in results:
        cpu = statistics.median(c for c, _w in results[mode])
        wall = statistics.median(w for _c, w in results[mode])
        print(f"| {mode} | {cpu:.2f} | {wall:.2f} |")


def measure(receiver_url: str) -> dict:
    from django.conf import settings

    from agents.callers import Caller
    from agents.llm import get_provider
    from agents.models import Persona
    from agents.principals import Principal, Trust
    from agents.runtime import TurnInput, complete_turn

    try:
        from agents import tracing
    except ImportError:  # code from before tracing (an older checkout, as the baseline): "off" only
        tracing = None
    modes = MODES if tracing is not None else ("off",)
    Persona.objects.filter(name__iexact="tony").update(tools=["list_team"])
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    counter = iter(range(10**9))

    async def turns(n: int):
        for _ in range(n):
            caller = Caller(f"bench-{next(counter)}")
            await complete_turn(
                TurnInput(
                    messages=[{"role": "user", "content": "Who is on the team?"}],
                    caller=caller,
                    principal=Principal(Trust.TEAM, caller.caller_id),
                    persona_name="tony",
                )
            )

    def switch(mode: str) -> None:
        if tracing is None:
            return
        settings.OTEL_EXPORTER_OTLP_ENDPOINT = receiver_url if mode != "off" else ""
        settings.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = mode == "on, with content"
        tracing.configure()

    def flush() -> None:
        if tracing is not None:
            tracing.flush()

    async def run():
        await turns(20)  # warm-up: connections, caches, the first spans
        for _round in range(ROUNDS):
            for mode in modes:
                switch(mode)
                cpu, wall = time.process_time(), time.perf_counter()
                await turns(TURNS)
                flush()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                results[mode].append((cpu * 1000 / TURNS, wall * 1000 / TURNS))
        switch("off")
        await get_provider().aclose()

    asyncio.run(run())
    return results


if __name__ == "__main__":
    if (
        os.path.realpath(sys.executable) != os.path.realpath(ROOT / ".venv" / "bin" / "python")
        and (ROOT / ".venv" / "bin" / "python").exists()
    ):
        os.execv(str(ROOT / ".venv" / "bin" / "python"), [str(ROOT / ".venv" / "bin" / "python"), *sys.argv])
    main()
