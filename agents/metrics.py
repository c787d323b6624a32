"""Prometheus metrics: what each process counts as turns happen, and what /metrics reads at scrape time.

Counters, the histogram and the live gauges use prometheus_client's multiprocess mode: every process
(each Daphne, the django-q2 cluster, `manage.py chat`) writes its own values to files in
PROMETHEUS_MULTIPROC_DIR, which settings.py sets before this module imports prometheus_client, and a
scrape adds them all up, so any web process answers for all of them. What the database knows (open
sessions, active processes) is counted at scrape time instead. See docs/decisions.md.
"""

import contextlib
import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .models import CallerSession, Process

MULTIPROC_DIR = settings.PROMETHEUS_MULTIPROC_DIR  # loads the settings, which set the variable

from prometheus_client import (  # noqa: E402 - after the settings, see above
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

if values.ValueClass is values.MutexValue:
    raise ImproperlyConfigured(
        "prometheus_client was imported before tron_site.settings set PROMETHEUS_MULTIPROC_DIR: "
        "its counters would be this process's alone."
    )


def _forget_dead_processes(*, mine: bool = True) -> None:
    """Drop the live gauges (open streams) of processes that are gone, and (`mine`, when this process
    starts) any left under this process's id by an earlier process that had it: they would count streams
    nobody serves. Counters are kept, so they only grow across restarts."""
    for name in os.listdir(MULTIPROC_DIR):
        if not (name.startswith("gauge_live") and name.endswith(".db")):
            continue
        try:
            pid = int(name.rsplit("_", 1)[1].removesuffix(".db"))
        except ValueError:
            continue
        if (mine and pid == os.getpid()) or (pid != os.getpid() and not _alive(pid)):
            # Several processes start at once (make run) and may clear the same dead one's files.
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(pid, MULTIPROC_DIR)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_forget_dead_processes()

TURN_LABELS = ["persona", "provider"]

TURNS = Counter("tron_turns", "Chat turns, by how they ended.", [*TURN_LABELS, "outcome"])
LLM_CALLS = Counter("tron_llm_calls", "Calls to a model.", TURN_LABELS)
TOKENS = Counter("tron_tokens", "Tokens read (input) and written (output) by models.", [*TURN_LABELS, "kind"])
COST = Counter("tron_cost_usd", "Estimated spend in USD (models with no price count 0).", TURN_LABELS)
ERRORS = Counter("tron_errors", "Turns the model failed, by error code (upstream_timeout, …).", ["type"])
TIME_TO_FIRST_TOKEN = Histogram(
    "tron_time_to_first_token_seconds",
    "From the start of a turn to the model's first token.",
    TURN_LABELS,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
OPEN_STREAMS = Gauge("tron_open_streams", "Chat answers streaming now.", multiprocess_mode="livesum")
# The local model's requests waiting for it, as its process (manage.py serve_model) reports them.
LOCAL_MODEL_QUEUE_DEPTH = Gauge(
    "tron_local_model_queue_depth", "Requests waiting for the local model.", multiprocess_mode="livesum"
)


def record_turn(*, persona: str, provider: str, end, ttft_ms: int | None, error, cancelled: bool) -> None:
    """Count one finished turn (`end` is the runtime's TurnEnd). Called once per turn, where it is recorded."""
    outcome = "cancelled" if cancelled else "failed" if error is not None else "answered"
    TURNS.labels(persona, provider, outcome).inc()
    LLM_CALLS.labels(persona, provider).inc(end.llm_calls)
    TOKENS.labels(persona, provider, "input").inc(end.input_tokens)
    TOKENS.labels(persona, provider, "output").inc(end.output_tokens)
    COST.labels(persona, provider).inc(float(end.cost_usd))
    if error is not None:
        ERRORS.labels(error.code).inc()
    if ttft_ms is not None:
        TIME_TO_FIRST_TOKEN.labels(persona, provider).observe(ttft_ms / 1000)


def set_local_model_queue_depth(depth: int) -> None:
    LOCAL_MODEL_QUEUE_DEPTH.set(depth)


class DatabaseCollector:
    """What the database knows, counted at each scrape (two indexed COUNTs): right whichever process,
    or machine, answers."""

    def collect(self):
        yield GaugeMetricFamily(
            "tron_open_sessions", "Caller sessions open now.", value=CallerSession.objects.open().count()
        )
        yield GaugeMetricFamily(
            "tron_active_processes", "Processes pending or running.", value=Process.objects.active().count()
        )


def exposition() -> tuple[bytes, str]:
    """The Prometheus text format of every process's metrics, and its content type. A process killed
    since (whose streams no one serves any more, and which no restart has cleared yet) is left out."""
    _forget_dead_processes(mine=False)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
