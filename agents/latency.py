"""Time to first token and errors hour by hour, per persona and per model, from the recorded LLM calls.

Percentiles without reading every call: one GROUP BY counts the calls per hour, persona, model and
time-to-first-token bucket (its rows grow with hours × personas × models × buckets, not with the
calls), and p50/p95 are read from the buckets as Prometheus' histogram_quantile reads a histogram:
linearly within the bucket that holds the rank. So a percentile is exact to within its bucket.
"""

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.functions import TruncHour

from .charts import sparkline
from .display import milliseconds
from .models import LLMCall

# Upper bounds of the time-to-first-token buckets (ms); a last bucket holds everything slower.
BUCKETS_MS = [50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000, 30_000, 60_000]
NO_TTFT = -1  # a call that never produced a token (it failed first): counted, not timed


def hour_slots(now: datetime, hours: int) -> list[datetime]:
    """The starts (UTC) of the last `hours` hours, the current one last."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


class Row(NamedTuple):
    hour: datetime
    persona: str
    model: str
    bucket: int
    calls: int
    errors: int


def hourly_rows(since: datetime) -> list[Row]:
    """The calls since `since` counted per hour, persona, model and bucket (one query)."""
    bucket = Case(
        When(ttft_ms__isnull=True, then=Value(NO_TTFT)),
        *(When(ttft_ms__lte=bound, then=Value(i)) for i, bound in enumerate(BUCKETS_MS)),
        default=Value(len(BUCKETS_MS)),
    )
    rows = (
        LLMCall.objects.filter(created_at__gte=since)
        .annotate(
            hour=TruncHour("created_at", tzinfo=UTC), bucket=bucket, persona=F("process__persona__name")
        )
        .values("hour", "model", "bucket", "persona")
        .annotate(calls=Count("id"), errors=Count("id", filter=~Q(error="")))
        .order_by()
        .values_list("hour", "persona", "model", "bucket", "calls", "errors")  # tuples: the rows can be many
    )
    return [Row(*row) for row in rows]


def quantile(counts: list[int], q: float) -> float | None:
    """The q-quantile (0-1) of a histogram over BUCKETS_MS (`counts` per bucket, the overflow last), in
    ms; None for no calls. The overflow bucket has no upper bound: its quantiles read as its lower one."""
    total = sum(counts)
    if not total:
        return None
    rank, below = q * total, 0
    for i, count in enumerate(counts):
        if count and below + count >= rank:
            if i == len(BUCKETS_MS):
                return float(BUCKETS_MS[-1])
            lower = BUCKETS_MS[i - 1] if i else 0
            return lower + (BUCKETS_MS[i] - lower) * (rank - below) / count
        below += count
    return float(BUCKETS_MS[-1])


class _Series:
    """One persona's (or model's) calls: per hour and over the whole period."""

    def __init__(self, key: str, hours: list[datetime]):
        self.key = key
        self.index = {hour: i for i, hour in enumerate(hours)}
        self.hours = hours
        self.calls = [0] * len(hours)
        self.errors = [0] * len(hours)
        self.buckets = [[0] * (len(BUCKETS_MS) + 1) for _ in hours]

    def add(self, row: Row) -> None:
        i = self.index.get(row.hour)
        if i is None:
            return
        self.calls[i] += row.calls
        self.errors[i] += row.errors
        if row.bucket != NO_TTFT:
            self.buckets[i][row.bucket] += row.calls

    def figures(self) -> dict:
        overall = [sum(column) for column in zip(*self.buckets, strict=True)]
        p95_per_hour = [quantile(counts, 0.95) for counts in self.buckets]
        return {
            "key": self.key,
            "calls": sum(self.calls),
            "p50": milliseconds(quantile(overall, 0.5)),
            "p95": milliseconds(quantile(overall, 0.95)),
            "errors": sum(self.errors),
            "p95_chart": sparkline(
                [value or 0 for value in p95_per_hour],
                [
                    f"{hour:%H:00} UTC: p95 {milliseconds(value)} over {calls} call{'' if calls == 1 else 's'}"
                    for hour, value, calls in zip(self.hours, p95_per_hour, self.calls, strict=True)
                ],
                css_class="latency",
            ),
            "errors_chart": sparkline(
                self.errors,
                [
                    f"{hour:%H:00} UTC: {errors} error{'' if errors == 1 else 's'} in {calls} call"
                    f"{'' if calls == 1 else 's'}"
                    for hour, errors, calls in zip(self.hours, self.errors, self.calls, strict=True)
                ],
                css_class="errors",
            ),
        }


def over_time(now: datetime, hours: int = 24) -> dict:
    """Time to first token (p50, p95) and errors over the last `hours` hours, per persona and per model,
    each with a bar per hour (one query)."""
    slots = hour_slots(now, hours)
    per_persona: dict[str, _Series] = {}
    per_model: dict[str, _Series] = {}
    for row in hourly_rows(slots[0]):
        per_persona.setdefault(row.persona, _Series(row.persona, slots)).add(row)
        per_model.setdefault(row.model, _Series(row.model, slots)).add(row)
    return {
        "hours": hours,
        "since": slots[0],
        "per_persona": [per_persona[key].figures() for key in sorted(per_persona)],
        "per_model": [per_model[key].figures() for key in sorted(per_model)],
    }
