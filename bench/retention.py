"""What the hourly retention task costs (agents.retention): the run that prunes a backlog, and the
runs after it that find nothing to do (a scan per table: there is no index on the times it reads).

    python bench/retention.py                       # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/retention.py

Fills a fresh database with BENCH_CONVERSATIONS conversations (default 20,000: a session, a turn,
10 transcript lines and 2 LLM calls each), the older half past the bound, then times
apply_retention() with TRON_KEEP_TRANSCRIPTS_DAYS=30 and TRON_KEEP_LLM_CALLS_DAYS=30: the first run
(it prunes half), then three runs with nothing left to prune. Also the longest single batch, which is
how long any row lock is held.
"""

import os
import statistics
import time
from datetime import timedelta

from throwaway_db import throwaway_database

CONVERSATIONS = int(os.environ.get("BENCH_CONVERSATIONS", 20_000))
LINES = 10
CALLS = 2


def fill():
    from django.utils import timezone

    from agents.models import CallerSession, LLMCall, Message, Persona, Process, Turn

    persona = Persona.objects.first()
    now = timezone.now()
    for start in range(0, CONVERSATIONS, 1000):
        chunk = range(start, min(start + 1000, CONVERSATIONS))
        when = {i: now - timedelta(days=60 if i < CONVERSATIONS // 2 else 1) for i in chunk}
        processes = Process.objects.bulk_create(
            Process(
                persona=persona,
                status="completed",
                started_at=when[i],
                finished_at=when[i],
                principal_caller_id=f"+1415555{i:04d}",
                summary="A call.",
            )
            for i in chunk
        )
        sessions = CallerSession.objects.bulk_create(
            CallerSession(
                caller_id=p.principal_caller_id, process=p, last_seen_at=p.finished_at, ended_at=p.finished_at
            )
            for p in processes
        )
        turns = Turn.objects.bulk_create(
            Turn(
                caller_id=s.caller_id,
                session=s,
                process=s.process,
                state="answered",
                finished_at=s.ended_at,
                lease_until=s.ended_at,
            )
            for s in sessions
        )
        Message.objects.bulk_create(
            Message(
                process=t.process,
                session=t.session,
                turn=t,
                role="user",
                content="words " * 20,
                created_at=t.finished_at,
            )
            for t in turns
            for _ in range(LINES)
        )
        LLMCall.objects.bulk_create(
            LLMCall(
                process=t.process,
                turn=t,
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=100,
                output_tokens=20,
                request={"messages": [{"role": "user", "content": "words " * 20}]},
                created_at=t.finished_at,
            )
            for t in turns
            for _ in range(CALLS)
        )


def main():
    with throwaway_database() as engine:
        from django.conf import settings
        from django.db import connection

        from agents import retention

        started = time.perf_counter()
        fill()
        filled = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        settings.TRON_KEEP_TRANSCRIPTS_DAYS = 30
        settings.TRON_KEEP_LLM_CALLS_DAYS = 30

        batches = []
        change = retention.in_batches

        def timed(queryset, apply):
            def one(rows):
                begin = time.perf_counter()
                apply(rows)
                batches.append(time.perf_counter() - begin)

            return change(queryset, one)

        retention.in_batches = timed
        begin = time.perf_counter()
        done = retention.apply_retention()
        first = time.perf_counter() - begin
        idle = []
        for _ in range(3):
            begin = time.perf_counter()
            assert not any(retention.apply_retention().values())
            idle.append(time.perf_counter() - begin)
        print(
            f"{engine}: {CONVERSATIONS} conversations ({CONVERSATIONS * LINES} lines, "
            f"{CONVERSATIONS * CALLS} LLM calls), filled in {filled:.0f} s"
        )
        print(f"first run: {first:.2f} s, changed {done}")
        print(
            f"longest batch of {retention.BATCH}: {max(batches) * 1000:.0f} ms "
            f"(median {statistics.median(batches) * 1000:.0f} ms, {len(batches)} batches)"
        )
        print(f"runs with nothing to prune: median {statistics.median(idle) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
