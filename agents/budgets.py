"""Daily budgets: a persona that has spent its budget today (UTC) gets no more model calls until
midnight UTC. Spend per owner and day is a `Ledger` row: each model call holds its most possible cost
by one conditional UPDATE before it is made (so concurrent calls go at most one call over), and its real
cost is added when it is recorded. Persona budgets are one ledger (DailySpend); callers' allowances
(agents.allowances) another.
"""

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from . import pricing, tokens
from .errors import OverBudget
from .llm.base import LLMRequest
from .models import DailySpend, Persona

log = logging.getLogger(__name__)

HOLD_SECONDS = 600  # a backstop, longer than any turn runs: a lost turn's holds come back when its lease lapses (turn_store.reap_lapsed)
# The answer a hold assumes when the request sets no max_tokens: longer than a conversation's answers.
RESERVED_OUTPUT_TOKENS = 4096
ZERO = Decimal(0)


def over_budget(persona: Persona, budget: Decimal, spent: Decimal, now: datetime) -> OverBudget:
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    return OverBudget(
        f"{persona.name} has used today's budget (${budget:.2f} per UTC day; ${spent:.2f} spent or "
        "held by calls in flight). It answers again after midnight UTC, or when an operator raises "
        "its budget.",
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


class Ledger:
    """Spend per owner and UTC day, held before each model call and settled when it is recorded: the
    rows of `model` (with `day`, `spent_usd`, `reserved_usd`, `reserved_at`), one per owner (`owner`
    names the owner's field) and day. Persona budgets (DailySpend) and callers' allowances
    (agents.allowances) keep theirs this way."""

    def __init__(self, model, owner: str):
        self.model, self.owner = model, owner

    def _rows(self, owner_value, day):
        return self.model.objects.filter(**{self.owner: owner_value, "day": day})

    def take(self, owner_value, budget: Decimal, amount: Decimal, now: datetime, **also) -> Decimal | None:
        """Hold `amount` against `budget` for today: None when held, else what is spent or held already
        (refused). One conditional UPDATE in the common case; the database takes them one at a time per
        row, so concurrent holds cannot all pass on the same stale figure."""
        day = now.astimezone(UTC).date()
        lapsed = now - timedelta(seconds=HOLD_SECONDS)
        today = self._rows(owner_value, day)

        def take_room() -> bool:
            room = today.filter(reserved_at__gte=lapsed, spent_usd__lt=budget - F("reserved_usd"))
            return bool(room.update(reserved_usd=F("reserved_usd") + amount, reserved_at=now, **also))

        if take_room():
            return None
        # No row yet today, or its holds lapsed (a server died with calls in flight), or over budget.
        row = None
        for _attempt in range(2):
            fresh = today.filter(reserved_at__lt=lapsed, spent_usd__lt=budget)
            if fresh.update(reserved_usd=amount, reserved_at=now, **also):
                return None
            row, created = self.model.objects.get_or_create(
                **{self.owner: owner_value, "day": day},
                defaults={"reserved_at": lapsed - timedelta(seconds=1)},
            )
            if not created:
                if take_room():
                    return None  # a concurrent turn took a hold meanwhile
                break  # the row is there and over budget
        if also:
            today.update(**also)
        return row.spent_usd + (row.reserved_usd if row.reserved_at >= lapsed else ZERO)

    def settle(self, owner_value, cost: Decimal, holds: list[Hold], now: datetime | None = None) -> None:
        """Add `cost` to today's spend and give `holds` back."""
        today = (now or timezone.now()).astimezone(UTC).date()
        returned: dict = defaultdict(Decimal)
        for held in holds:
            returned[held.day] += held.amount
        if cost:
            returned[today] += ZERO
        for day, amount in returned.items():
            spent = cost if day == today else ZERO
            changes = {
                "reserved_usd": Greatest(F("reserved_usd") - amount, Value(ZERO)),
                "spent_usd": F("spent_usd") + spent,
            }
            if not self._rows(owner_value, day).update(**changes) and spent:
                self.model.objects.get_or_create(**{self.owner: owner_value, "day": day})  # the day's first
                self._rows(owner_value, day).update(**changes)


PERSONAS = Ledger(DailySpend, "persona_id")


def hold(persona: Persona, amount: Decimal, now: datetime | None = None) -> Hold | None:
    """Admit one model call of `persona`: hold `amount` against today's budget, or raise OverBudget when
    today's spend and holds have reached it. None for a persona without a budget (nothing is held)."""
    budget = daily_budget(persona)
    if budget is None:
        return None
    now = now or timezone.now()
    spent = PERSONAS.take(persona.pk, budget, amount, now, budget_usd=budget)
    if spent is None:
        return Hold(now.astimezone(UTC).date(), amount)
    log.warning(
        "Refused a model call of %s: $%s spent or held today against a budget of $%s",
        persona.name,
        spent.normalize(),
        budget,
    )
    raise over_budget(persona, budget, spent, now)


def settle(persona_id: int, cost: Decimal, holds: list[Hold], now: datetime | None = None) -> None:
    """Model calls are recorded: add their cost to today's spend and give their holds back. Part of the
    transaction that stores the LLMCall rows (agents.turn_store)."""
    PERSONAS.settle(persona_id, cost, holds, now)


def spent_today(persona_ids) -> dict[int, Decimal]:
    """Today's spend of these personas (one query): persona id -> USD."""
    rows = DailySpend.objects.filter(persona_id__in=persona_ids, day=timezone.now().astimezone(UTC).date())
    return dict(rows.values_list("persona_id", "spent_usd"))
