"""How the operator's console pages hold up with a busy team's rows.

    python bench/console_pages.py                       # a throwaway SQLite file, about two minutes
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/console_pages.py

Fills a fresh database (the default team; 20,000 processes with a session each, 100,000 LLM calls over
14 days, 25,000 of them in the last 24 hours, 60,000 transcript lines, 300 of them one conversation's),
then times each page in-process through Django's test client as a signed-in superuser (no network:
URL routing, middleware, queries, templates) and prints p50/p95 and the queries per page.
"""

import os
import random
import statistics
import time
from datetime import timedelta

from throwaway_db import throwaway_database

PROCESSES = int(os.environ.get("BENCH_PROCESSES", 20_000))
CALLS = int(os.environ.get("BENCH_CALLS", 100_000))
RECENT_CALLS = CALLS // 4  # in the last 24 hours: the latency figures read these
MESSAGES = 60_000
LONG_CONVERSATION = 300  # lines of the process whose page is timed
REQUESTS = 20
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "smollm2-135m-instruct", "house-model"]


def main():
    with throwaway_database() as engine:
        from django.db import connection

        long_process = fill()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        report(engine, long_process)


def fill():
    from django.utils import timezone

    from agents.models import CallerSession, LLMCall, Message, Persona, Process, Turn

    personas = list(Persona.objects.all())
    now = timezone.now()
    rng = random.Random(7)
    started = time.perf_counter()
    processes = []
    for i in range(PROCESSES):
        begin = now - timedelta(seconds=rng.randint(0, 14 * 86400))
        active = i < 200
        processes.append(
            Process(
                public_id=f"{i:08x}",
                persona=rng.choice(personas),
                status="running" if active else "completed",
                channel=rng.choice(["http", "vapi", "elevenlabs", "slack", "life"]),
                started_at=begin,
                finished_at=None if active else begin + timedelta(seconds=rng.randint(1, 3600)),
                input_tokens=rng.randint(0, 20000),
                output_tokens=rng.randint(0, 5000),
                llm_calls=5,
                cost_usd=rng.randint(0, 10**7) / 10**9,
            )
        )
    Process.objects.bulk_create(processes, batch_size=5000)
    ids = list(Process.objects.order_by("id").values_list("id", flat=True))
    CallerSession.objects.bulk_create(
        (
            CallerSession(
                caller_id=f"+1415555{i:05d}"[:12] + str(i),
                process_id=pk,
                ended_at=None if i < 200 else now,
                last_seen_at=now - timedelta(seconds=rng.randint(0, 14 * 86400)),
            )
            for i, pk in enumerate(ids)
        ),
        batch_size=5000,
    )
    # Twenty conversations in a turn now.
    Turn.objects.bulk_create(
        Turn(
            caller_id=session.caller_id,
            session=session,
            process_id=session.process_id,
            state=Turn.State.RUNNING,
            lease_until=now + timedelta(minutes=5),
        )
        for session in CallerSession.objects.order_by("id")[:20]
    )
    # Each persona keeps to one model, as personas do; times to first token spread as a model's do
    # (log-normal around 400 ms), so a day's calls fall into a few buckets per persona and hour.
    model_of = {persona.pk: MODELS[i % len(MODELS)] for i, persona in enumerate(personas)}
    persona_of = dict(Process.objects.values_list("id", "persona_id"))
    LLMCall.objects.bulk_create(
        (
            LLMCall(
                process_id=(process_id := rng.choice(ids)),
                provider="openai",
                model=model_of[persona_of[process_id]],
                input_tokens=rng.randint(50, 5000),
                output_tokens=rng.randint(5, 500),
                cost_usd=rng.randint(0, 10**6) / 10**9,
                ttft_ms=None if rng.random() < 0.02 else int(rng.lognormvariate(6, 0.5)),
                duration_ms=rng.randint(200, 9000),
                error="upstream timed out" if rng.random() < 0.02 else "",
                created_at=now - timedelta(seconds=rng.randint(0, 86400 if n < RECENT_CALLS else 14 * 86400)),
            )
            for n in range(CALLS)
        ),
        batch_size=5000,
    )
    long_process = ids[0]
    Message.objects.bulk_create(
        (
            Message(
                process_id=long_process if n < LONG_CONVERSATION else rng.choice(ids),
                role="user" if n % 2 == 0 else "assistant",
                content="What is the status of the launch? " * rng.randint(1, 8),
                created_at=now - timedelta(seconds=MESSAGES - n),
            )
            for n in range(MESSAGES)
        ),
        batch_size=5000,
    )
    print(f"filled in {time.perf_counter() - started:.0f} s: {PROCESSES:,} processes, {CALLS:,} calls")
    return long_process


def report(engine, long_process):
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    pages = [
        ("/admin/ (home, with the dashboard)", "/admin/"),
        ("/admin/dashboard/ (what it polls)", "/admin/dashboard/"),
        ("processes list", "/admin/agents/process/"),
        ("processes list, live filter", "/admin/agents/process/?live=in_turn"),
        ("processes list, words search", "/admin/agents/process/?q=launch+status"),
        ("LLM calls list", "/admin/agents/llmcall/"),
        ("sessions list", "/admin/agents/callersession/"),
        ("personas list", "/admin/agents/persona/"),
        (f"process page ({LONG_CONVERSATION} lines)", f"/admin/agents/process/{long_process}/change/"),
        ("cost summary, 30 days", "/admin/agents/llmcall/cost-summary/?days=30"),
    ]
    client = Client()
    client.force_login(User.objects.create_superuser("bench"))
    print(f"\n{engine}: p50 / p95 of {REQUESTS} requests each, in-process\n")
    print(f"{'page':44} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for label, url in pages:
        client.get(url)  # warm: templates, content types
        times = []
        for _ in range(REQUESTS):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        print(f"{label:44} {statistics.median(times):8.1f} {p95:8.1f} {len(queries):8}")


if __name__ == "__main__":
    main()
