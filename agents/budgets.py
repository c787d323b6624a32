"""Daily budgets: a persona that has spent its budget today (UTC) gets no more model calls until
midnight UTC; every other persona goes on.

A persona's budget is its `budget_usd`, else TRON_DEFAULT_DAILY_BUDGET_USD; empty both: no limit (and
no check). What it spent is one row per persona and UTC day (DailySpend), so the check reads one row
whatever the day's traffic:

- before each model call, the engine takes a hold: one conditional UPDATE adds the most the call may
  cost (`estimate`) to the row's `reserved_usd`, only if `spent_usd + reserved_usd` is still below the
  budget. The database takes these one at a time per row, so concurrent turns cannot all pass on the
  same stale figure: once the calls admitted would use the budget, the next is refused. A call is
  admitted only while the spend including every call in flight is under the budget, so the day ends at
  most one call's cost over it;
- `record_turn` adds the calls' real cost to `spent_usd` and gives the holds back, in the transaction
  that stores the LLMCall rows: `spent_usd` is the sum of the day's LLMCall costs. It does so for every
  persona, so a budget set in the middle of a day counts what was spent before;
- a hold a dead server never gave back lapses after HOLD_SECONDS (no turn runs that long).

The first model call of a turn is held in the transaction that begins the turn (agents.transcript.
begin_turn), which runs while the model works on its first token: the check adds no query on the way to
it. When that hold is refused, the call is dropped before any of it reaches the caller, and for
TRON_PERSONA_CACHE_SECONDS this process refuses the persona's next turns before calling the model
(`refuse_if_known_over`); an edit of the persona (its budget raised) ends that at once.
"""

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.db.models.signals import post_save
from django.utils import timezone

from . import prepared, pricing, tokens
from .llm.base import LLMError, LLMRequest
from .models import DailySpend, Persona

log = logging.getLogger(__name__)

HOLD_SECONDS = 600  # agents.sessions.CLAIM_SECONDS: longer than any turn runs
# The answer a hold assumes when the request sets no max_tokens: longer than a conversation's answers.
RESERVED_OUTPUT_TOKENS = 4096
ZERO = Decimal(0)


class OverBudget(LLMError):
    """The persona has spent its budget for today: the turn is refused (HTTP 429, insufficient_quota)."""

    def __init__(self, persona: Persona, budget: Decimal, spent: Decimal, now: datetime):
        tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
        super().__init__(
            f"{persona.name} has used today's budget (${budget:.2f} per UTC day; ${spent:.2f} spent or "
            "held by calls in flight). It answers again after midnight UTC, or when an operator raises "
            "its budget.",
            status=429,
            code="insufficient_quota",
            retry_after=max(1, int((tomorrow - now).total_seconds())),
        )


def daily_budget(persona: Persona) -> Decimal | None:
    """The persona's budget per UTC day in USD; None for no limit."""
    if persona.budget_usd is not None:
        return persona.budget_usd
    return settings.TRON_DEFAULT_DAILY_BUDGET_USD


def estimate(request: LLMRequest) -> Decimal:
    """The most a model call may cost: its prompt (estimated) and its longest answer (`max_tokens`, else
    RESERVED_OUTPUT_TOKENS) at the model's price; 0 for a model with no price (its calls cost 0)."""
    prompt = tokens.estimate_prompt_tokens(request.messages)
    if request.tools:
        prompt += tokens.estimate_text_tokens(json.dumps(request.tools))
    return pricing.cost_usd(request.model, prompt, request.max_tokens or RESERVED_OUTPUT_TOKENS)


@dataclass
class Hold:
    day: object  # the UTC date whose row holds it
    amount: Decimal


# A hold where there is room, on the writer thread of every turn of a persona with a budget. (The whole
# hold was 2.3 ms of ORM CPU as one UPDATE with Case/When for lapsed holds; this UPDATE is 0.40 ms
# through the ORM, 0.05-0.07 ms prepared: agents.prepared.)
_take_room = prepared.update(
    lambda persona, day, lapsed, budget, amount, now: (
        DailySpend.objects.filter(
            persona=persona, day=day, reserved_at__gte=lapsed, spent_usd__lt=budget - F("reserved_usd")
        ),
        {"reserved_usd": F("reserved_usd") + amount, "reserved_at": now, "budget_usd": budget},
    ),
    DailySpend,
    persona="persona",
    day="day",
    lapsed="reserved_at",
    budget="budget_usd",
    amount="reserved_usd",
    now="reserved_at",
)

# A turn's calls recorded: their cost added to the day's spend, their holds given back (in every turn's
# record: 0.43 ms of CPU through the ORM, 0.03-0.05 ms prepared).
_settle = prepared.update(
    lambda persona, day, returned, cost: (
        DailySpend.objects.filter(persona=persona, day=day),
        {
            "reserved_usd": Greatest(F("reserved_usd") - returned, Value(ZERO)),
            "spent_usd": F("spent_usd") + cost,
        },
    ),
    DailySpend,
    persona="persona",
    day="day",
    returned="reserved_usd",
    cost="spent_usd",
)


def hold(persona: Persona, amount: Decimal, now: datetime | None = None) -> Hold | None:
    """Admit one model call of `persona`: hold `amount` against today's budget, or raise OverBudget when
    today's spend and holds have reached it. None for a persona without a budget (nothing is held)."""
    budget = daily_budget(persona)
    if budget is None:
        return None
    now = now or timezone.now()
    day = now.astimezone(UTC).date()
    lapsed = now - timedelta(seconds=HOLD_SECONDS)

    def take_room() -> bool:
        return bool(
            _take_room(persona=persona.pk, day=day, lapsed=lapsed, budget=budget, amount=amount, now=now)
        )

    # The common case first, in the plainest UPDATE: holds are live and there is room for one more.
    if take_room():
        return Hold(day, amount)
    # No row yet today, or its holds lapsed (a server died with calls in flight), or over budget.
    today = DailySpend.objects.filter(persona_id=persona.pk, day=day)
    row = None
    for _attempt in range(2):
        fresh = today.filter(reserved_at__lt=lapsed, spent_usd__lt=budget)
        if fresh.update(reserved_usd=amount, reserved_at=now, budget_usd=budget):
            return Hold(day, amount)
        row, created = DailySpend.objects.get_or_create(
            persona_id=persona.pk, day=day, defaults={"reserved_at": lapsed - timedelta(seconds=1)}
        )
        if not created:
            if take_room():
                return Hold(day, amount)  # a concurrent turn took a hold meanwhile
            break  # the row is there and over budget
    spent = row.spent_usd + (row.reserved_usd if row.reserved_at >= lapsed else ZERO)
    DailySpend.objects.filter(pk=row.pk).update(budget_usd=budget)
    _refusals[persona.pk] = (time.monotonic(), day, budget, spent)
    log.warning(
        "Refused a model call of %s: $%s spent or held today against a budget of $%s",
        persona.name,
        spent.normalize(),
        budget,
    )
    raise OverBudget(persona, budget, spent, now)


_refusals: dict[int, tuple[float, object, Decimal, Decimal]] = {}  # persona id -> (when, day, budget, spent)


def refuse_if_known_over(persona: Persona) -> None:
    """Raise OverBudget, without a query, when the persona's budget is 0 (its model calls are off) or
    this process refused a call of the persona today less than TRON_PERSONA_CACHE_SECONDS ago."""
    now = timezone.now()
    budget = daily_budget(persona)
    if budget is not None and budget <= 0:
        raise OverBudget(persona, budget, ZERO, now)
    refusal = _refusals.get(persona.pk)
    if refusal is None:
        return
    when, day, budget, spent = refusal
    if time.monotonic() - when >= settings.TRON_PERSONA_CACHE_SECONDS or now.astimezone(UTC).date() != day:
        _refusals.pop(persona.pk, None)
        return
    raise OverBudget(persona, budget, spent, now)


def forget_refusals(**_signal_kwargs) -> None:
    _refusals.clear()


post_save.connect(forget_refusals, sender=Persona, dispatch_uid="agents.budgets.persona_saved")


def settle(persona_id: int, cost: Decimal, holds: list[Hold], now: datetime | None = None) -> None:
    """The calls of a turn are recorded: add their cost to today's spend and give their holds back. Part
    of the transaction that stores the LLMCall rows (agents.transcript.record_turn)."""
    today = (now or timezone.now()).astimezone(UTC).date()
    returned: dict = defaultdict(Decimal)
    for held in holds:
        returned[held.day] += held.amount
    if cost:
        returned[today] += ZERO
    for day, amount in returned.items():
        spent = cost if day == today else ZERO
        values = {"persona": persona_id, "day": day, "returned": amount, "cost": spent}
        if not _settle(**values) and spent:
            DailySpend.objects.get_or_create(persona_id=persona_id, day=day)  # the day's first spend
            _settle(**values)


def release(persona_id: int, holds: list[Hold]) -> None:
    """Give back the holds of a turn that recorded nothing (it was refused, or never began)."""
    settle(persona_id, ZERO, holds)


def spent_today(persona_ids) -> dict[int, Decimal]:
    """Today's spend of these personas (one query): persona id -> USD."""
    rows = DailySpend.objects.filter(persona_id__in=persona_ids, day=timezone.now().astimezone(UTC).date())
    return dict(rows.values_list("persona_id", "spent_usd"))
