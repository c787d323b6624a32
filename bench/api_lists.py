"""How the control API's list endpoints scale: latency with 100,000 process rows.

    python bench/api_lists.py                       # a throwaway SQLite file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/api_lists.py

Fills a fresh database (100k processes, 20k sessions, the default team), then times each endpoint
in-process through Django's test client (no network, so this is the server's own work: URL routing,
middleware, queries, serialisation), and prints p50/p95 per endpoint and the query plan of the
main list query. On PostgreSQL it creates and drops the database named in DATABASE_URL.
"""

import os
import random
import statistics
import time
from datetime import timedelta

from throwaway_db import throwaway_database

PROCESSES = int(os.environ.get("BENCH_PROCESSES", 100_000))
SESSIONS = 20_000
REQUESTS = 200

ENDPOINTS = [
    "/api/status",
    "/api/processes",
    "/api/processes?status=completed",
    "/api/processes?agent=maya",
    "/api/processes?status=running&agent=tony&limit=100",
    "/api/processes?offset=5000",
    "/api/sessions",
    "/api/sessions?include_ended=true&agent=jordan",
]


def main():
    with throwaway_database() as engine:
        from django.db import connection

        fill()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        report(engine)
        explain(connection, engine)


def fill():
    from django.utils import timezone

    from agents.models import CallerSession, Persona, Process

    personas = list(Persona.objects.all())
    statuses = ["completed"] * 8 + ["running", "failed"]
    now = timezone.now()
    started = time.perf_counter()
    rng = random.Random(7)
    batch = []
    for i in range(PROCESSES):
        status = rng.choice(statuses)
        begin = now - timedelta(seconds=rng.randint(0, 90 * 86400))
        batch.append(
            Process(
                public_id=f"{i:08x}",
                persona=rng.choice(personas),
                status=status,
                started_at=begin,
                finished_at=None if status == "running" else begin + timedelta(seconds=rng.randint(1, 3600)),
                input_tokens=rng.randint(0, 20000),
                output_tokens=rng.randint(0, 5000),
                llm_calls=rng.randint(0, 30),
                cost_usd=rng.randint(0, 10**7) / 10**9,
            )
        )
        if len(batch) == 5000:
            Process.objects.bulk_create(batch)
            batch = []
    Process.objects.bulk_create(batch)
    process_ids = list(Process.objects.values_list("id", flat=True)[:SESSIONS])
    CallerSession.objects.bulk_create(
        CallerSession(
            caller_id=f"+1415555{i:04d}" if i < 10000 else f"req-{i}",
            process_id=pid,
            last_seen_at=now - timedelta(seconds=i),
            ended_at=None if i % 4 == 0 else now,
        )
        for i, pid in enumerate(process_ids)
    )
    print(f"filled {PROCESSES:,} processes and {SESSIONS:,} sessions in {time.perf_counter() - started:.1f}s")


def report(engine):
    from django.test import Client

    client = Client()
    print(f"\n{engine}: {REQUESTS} requests each, in-process (ms)")
    print(f"{'endpoint':58} {'p50':>7} {'p95':>7} {'max':>7}")
    for path in ENDPOINTS:
        client.get(path)  # warm
        samples = []
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        samples.sort()
        p95 = samples[int(len(samples) * 0.95) - 1]
        print(f"{path:58} {statistics.median(samples):7.2f} {p95:7.2f} {samples[-1]:7.2f}")


def explain(connection, engine):
    from agents.models import Persona, Process

    base = Process.objects.select_related("persona").order_by("-started_at", "-id")
    plans = {
        "status=completed": base.filter(status="completed"),
        "status=running&agent=tony": base.filter(
            status="running", persona__in=Persona.objects.ids_named("tony")
        ),
    }
    for name, queryset in plans.items():
        print(f"\nquery plans of /api/processes?{name}: page, then count")
        print(queryset[:50].explain())
        print(queryset.order_by().values("pk").explain())


if __name__ == "__main__":
    main()
