"""Limits per public caller, so that one caller cannot spend the team's day: requests per minute and
spend per UTC day (TRON_CALLER_REQUESTS_PER_MINUTE, TRON_CALLER_DAILY_SPEND_USD; an operator may lift or
change them per caller, CallerAllowance). Only turns for a public principal count, under its
`allowance`: the caller id when the edge could vouch for it, else the caller's address.

Counted in the database (CallerUsage), so every web process and node sees the same figures: a request
is counted by one conditional UPDATE, and spend is held before each model call as persona budgets are
(agents.budgets.Ledger), so concurrent turns go at most one call over. Operators' limits per caller are
few rows, kept per process (agents.cache): an edit holds in every process within TRON_CACHE_SECONDS.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, F, Q, Value, When

from .budgets import Hold, Ledger
from .cache import ProcessCache
from .errors import CallerLimited
from .models import CallerAllowance, CallerUsage
from .principals import Principal, Trust

log = logging.getLogger(__name__)

LEDGER = Ledger(CallerUsage, "allowance")
operators_limits = ProcessCache("caller allowances")


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None  # None: no limit
    daily_spend_usd: Decimal | None


def counted(principal: Principal) -> str:
    """The allowance a turn of `principal` counts against; "" for none (only public callers count)."""
    return principal.allowance if principal.trust == Trust.PUBLIC else ""


def limits_of(allowance: str) -> Limits:
    """The caller's limits: an operator's, else the defaults."""
    rpm, spend = settings.TRON_CALLER_REQUESTS_PER_MINUTE or None, settings.TRON_CALLER_DAILY_SPEND_USD
    own = operators_limits.get_or_load("all", _load_operators_limits).get(allowance)
    if own is None:
        return Limits(rpm, spend)
    if own.unlimited:
        return Limits(None, None)
    return Limits(
        own.requests_per_minute if own.requests_per_minute is not None else rpm,
        own.daily_spend_usd if own.daily_spend_usd is not None else spend,
    )


def _load_operators_limits() -> dict[str, CallerAllowance]:
    return {row.allowance: row for row in CallerAllowance.objects.all()}


def admit(allowance: str, now: datetime) -> Limits:
    """Count one request of the caller, or raise CallerLimited when this minute's are used (nothing is
    counted then). Part of the transaction that begins the turn."""
    limits = limits_of(allowance)
    day = now.astimezone(UTC).date()
    minute = now.replace(second=0, microsecond=0)
    rows = CallerUsage.objects.filter(allowance=allowance, day=day)
    if limits.requests_per_minute is not None:
        rows = rows.filter(
            ~Q(minute=minute) | Q(minute_requests__lt=limits.requests_per_minute) | Q(minute=None)
        )
    count = {
        "requests": F("requests") + 1,
        "minute_requests": Case(When(minute=minute, then=F("minute_requests") + 1), default=Value(1)),
        "minute": minute,
    }
    if not rows.update(**count):
        CallerUsage.objects.get_or_create(allowance=allowance, day=day)  # the day's first (or a racer's)
        if not rows.update(**count) and limits.requests_per_minute is not None:
            retry_after = max(1, int((minute + timedelta(minutes=1) - now).total_seconds()))
            log.warning("Refused a request of %s: %s this minute", allowance, limits.requests_per_minute)
            raise CallerLimited(
                f"Too many requests: this caller may make {limits.requests_per_minute} a minute. Try again "
                f"in {retry_after} seconds.",
                retry_after=retry_after,
            )
    return limits


def hold(allowance: str, limits: Limits, amount: Decimal, now: datetime) -> Hold | None:
    """Hold one model call against the caller's spend for today, or raise CallerLimited."""
    if limits.daily_spend_usd is None:
        return None
    spent = LEDGER.take(allowance, limits.daily_spend_usd, amount, now)
    if spent is None:
        return Hold(now.astimezone(UTC).date(), amount)
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    log.warning(
        "Refused a model call for %s: $%s of $%s spent today", allowance, spent, limits.daily_spend_usd
    )
    raise CallerLimited(
        f"This caller has used today's allowance (${limits.daily_spend_usd:.2f} per UTC day). It renews "
        "after midnight UTC.",
        retry_after=max(1, int((tomorrow - now).total_seconds())),
    )


def settle(allowance: str, cost: Decimal, holds: list[Hold], now: datetime | None = None) -> None:
    LEDGER.settle(allowance, cost, holds, now)
