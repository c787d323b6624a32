"""Daily budgets (agents.budgets) and the running-process limit (agents.sessions), through the turn engine
with a small fake provider: a persona that has spent its budget is refused before its model is called,
concurrent turns overshoot by at most one call, and other personas keep working."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from asgiref.sync import sync_to_async

from agents import budgets, pricing
from agents.callers import Caller
from agents.errors import OverBudget, Overloaded
from agents.llm.base import Delta, LLMProvider, LLMRequest, ToolCall, Usage
from agents.models import CallerSession, DailySpend, LLMCall, Message, Process
from agents.principals import Principal, Trust
from agents.runtime import TurnInput, complete_turn
from agents.sessions import end_idle_sessions, open_session
from tests.factories import make_persona, make_process

pytestmark = pytest.mark.django_db(transaction=True)  # the engine writes on its own database threads

# $100 per million tokens in and out: a call of 10 + 1,000 tokens costs $0.101.
PRICEY = {"pricey": {"input": 100, "output": 100}}
ANSWER_TOKENS = 1000
CALL_COST = Decimal("0.101")


@pytest.fixture(autouse=True)
def pricey_model(settings):
    settings.TRON_PRICES = PRICEY
    settings.TRON_DEFAULT_DAILY_BUDGET_USD = None
    pricing.clear_cache()
    yield
    pricing.clear_cache()


class SlowProvider(LLMProvider):
    """Takes every request, waits `delay` (so concurrent turns overlap), answers with 10 prompt and
    ANSWER_TOKENS answer tokens; with `tool_first`, the first call of each turn asks for list_team."""

    name = "fake"

    def __init__(self, delay=0.0, tool_first=False):
        self.delay, self.tool_first = delay, tool_first
        self.requests: list[LLMRequest] = []

    def default_model(self):
        return "pricey"

    async def stream(self, request):
        self.requests.append(request)
        yield Delta(accepted=True)
        await asyncio.sleep(self.delay)
        if self.tool_first and request.messages[-1]["role"] == "user":
            yield Delta(tool_calls=(ToolCall("c1", "list_team", "{}"),))
        else:
            yield Delta(text="Done.")
        yield Delta(usage=Usage(10, ANSWER_TOKENS))


def ask(caller, persona="Tony"):
    return TurnInput(
        [{"role": "user", "content": "hi"}],
        Caller(caller),
        Principal(Trust.PUBLIC, caller),
        persona_name=persona,
        max_tokens=ANSWER_TOKENS,
    )


def open_for(caller_id, persona):
    return open_session(Caller(caller_id), persona, principal=Principal(Trust.PUBLIC, caller_id))


def spend_of(persona) -> tuple[Decimal, Decimal]:
    row = DailySpend.objects.get(persona=persona)
    return row.spent_usd, row.reserved_usd


def llm_spend(persona) -> Decimal:
    return sum((c.cost_usd for c in LLMCall.objects.filter(process__persona=persona)), Decimal(0))


# -- the rule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "default", "expected"),
    [
        (Decimal("2.50"), Decimal("9"), Decimal("2.50")),  # the persona's own
        (None, Decimal("9"), Decimal("9")),  # TRON_DEFAULT_DAILY_BUDGET_USD
        (None, None, None),  # no limit
        (Decimal("0"), None, Decimal("0")),  # nothing at all
    ],
)
def test_a_personas_budget_is_its_own_else_the_default(settings, own, default, expected):
    settings.TRON_DEFAULT_DAILY_BUDGET_USD = default
    assert budgets.daily_budget(make_persona(budget_usd=own)) == expected


def test_a_hold_is_refused_once_spend_and_holds_reach_the_budget():
    tony = make_persona(budget_usd=Decimal("1.00"))
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    first = budgets.hold(tony, Decimal("0.60"), now)
    second = budgets.hold(tony, Decimal("0.60"), now)  # 0.60 held is still under 1.00: admitted
    with pytest.raises(OverBudget) as refused:
        budgets.hold(tony, Decimal("0.01"), now)  # 1.20 held: the budget is used

    assert refused.value.code == "insufficient_quota"
    assert refused.value.retry_after == 12 * 3600  # until midnight UTC
    budgets.settle(tony.pk, Decimal("0.30"), [first, second], now)
    assert spend_of(tony) == (Decimal("0.30"), Decimal(0))
    budgets.hold(tony, Decimal("0.60"), now)  # 0.30 spent: admitted again


def test_a_hold_left_by_a_dead_server_lapses():
    tony = make_persona(budget_usd=Decimal("1.00"))
    then = datetime(2026, 3, 1, 12, tzinfo=UTC)
    budgets.hold(tony, Decimal("5"), then)  # never given back

    with pytest.raises(OverBudget):
        budgets.hold(tony, Decimal("0.1"), then + timedelta(seconds=budgets.HOLD_SECONDS - 1))
    budgets.hold(tony, Decimal("0.1"), then + timedelta(seconds=budgets.HOLD_SECONDS + 1))

    assert DailySpend.objects.get().reserved_usd == Decimal("0.1")


def test_a_new_utc_day_starts_from_nothing():
    tony = make_persona(budget_usd=Decimal("1.00"))
    day_one = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    budgets.settle(tony.pk, Decimal("3"), [], day_one)
    with pytest.raises(OverBudget):
        budgets.hold(tony, Decimal("0.1"), day_one)

    budgets.hold(tony, Decimal("0.1"), day_one + timedelta(minutes=2))

    assert list(DailySpend.objects.order_by("day").values_list("spent_usd", "reserved_usd")) == [
        (Decimal(3), Decimal(0)),
        (Decimal(0), Decimal("0.1")),
    ]


def test_a_holds_size_is_the_prompt_and_the_longest_answer_at_the_models_price():
    request = LLMRequest(messages=[{"role": "user", "content": "x" * 400}], model="pricey", max_tokens=1000)
    prompt = 3 + 3 + 100  # framing, message, 400 characters
    assert budgets.estimate(request) == Decimal((prompt + 1000) * 100) / 1_000_000
    request.max_tokens = None
    assert budgets.estimate(request) == Decimal((prompt + budgets.RESERVED_OUTPUT_TOKENS) * 100) / 1_000_000
    request.model = "no-such-model"
    assert budgets.estimate(request) == 0


# -- through the engine ----------------------------------------------------------------------------------


async def test_a_turn_over_budget_is_refused_and_logged_and_the_next_before_the_model_is_called(caplog):
    tony = await sync_to_async(make_persona)(budget_usd=Decimal("0.10"))
    provider = SlowProvider()
    await complete_turn(ask("req-1"), provider)  # $0.101: the budget is spent

    with caplog.at_level(logging.WARNING, logger="agents.budgets"), pytest.raises(OverBudget) as refused:
        await complete_turn(ask("req-2"), provider)

    assert refused.value.code == "insufficient_quota"
    assert "Tony has used today's budget ($0.10 per UTC day" in refused.value.message
    assert "Refused a model call of Tony" in caplog.text
    # The hold is taken as the turn begins, before the model is asked: refused then, nothing is stored
    # or held, and the model never had the request.
    assert len(provider.requests) == 1
    assert not await CallerSession.objects.filter(caller_id="req-2").aexists()
    assert await sync_to_async(spend_of)(tony) == (CALL_COST, Decimal(0))

    # An operator raises the budget: the persona answers again at once.
    tony.budget_usd = Decimal("1.00")
    await sync_to_async(tony.save)()
    await complete_turn(ask("req-4"), provider)
    assert len(provider.requests) == 2


async def test_concurrent_turns_overshoot_the_budget_by_at_most_one_call():
    # The budget allows one call's worth; eight turns ask at once, each call takes a while.
    tony = await sync_to_async(make_persona)(budget_usd=Decimal("0.15"))
    provider = SlowProvider(delay=0.3)

    results = await asyncio.gather(
        *(complete_turn(ask(f"req-{n}"), provider) for n in range(8)), return_exceptions=True
    )

    answered = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, OverBudget) for r in refused)
    assert 1 <= len(answered) <= 2 and len(refused) >= 6
    spent = await sync_to_async(llm_spend)(tony)
    assert spent == len(answered) * CALL_COST
    assert spent < Decimal("0.15") + CALL_COST  # at most one call over
    assert await sync_to_async(spend_of)(tony) == (spent, Decimal(0))  # the ledger is the calls' sum


async def test_other_personas_keep_working_when_one_has_spent_its_budget():
    await sync_to_async(make_persona)(name="Tony", budget_usd=Decimal("0"))
    maya = await sync_to_async(make_persona)(name="Maya", sort_order=2)  # no budget
    provider = SlowProvider()

    with pytest.raises(OverBudget):
        await complete_turn(ask("req-tony"), provider)
    end = await complete_turn(ask("req-maya", persona="Maya"), provider)

    assert end.text == "Done."
    assert await sync_to_async(spend_of)(maya) == (CALL_COST, Decimal(0))  # tracked, though unlimited


async def test_a_tool_round_past_the_budget_fails_the_turn_and_records_what_it_did():
    tony = await sync_to_async(make_persona)(budget_usd=Decimal("0.05"), tools=["list_team"])
    provider = SlowProvider(tool_first=True)

    with pytest.raises(OverBudget):
        await complete_turn(ask("req-tools"), provider)

    assert len(provider.requests) == 1  # the call after the tool was not made
    process = await Process.objects.aget()
    assert (process.llm_calls, process.tool_calls) == (1, 1)
    assert "used today's budget" in process.error
    assert await Message.objects.filter(role="tool").aexists()
    assert await sync_to_async(spend_of)(tony) == (CALL_COST, Decimal(0))


async def test_a_budget_set_mid_day_counts_what_was_spent_before():
    tony = await sync_to_async(make_persona)()  # no budget yet
    await complete_turn(ask("req-1"), SlowProvider())
    tony.budget_usd = Decimal("0.10")
    await tony.asave()

    with pytest.raises(OverBudget):
        await complete_turn(ask("req-2"), SlowProvider())


# -- the running-process limit ---------------------------------------------------------------------------


def test_completed_processes_do_not_count_against_the_running_limit(settings):
    settings.TRON_MAX_RUNNING_PROCESSES = 2
    tony = make_persona()
    for _ in range(60):  # the original stopped after 50 in its lifetime
        make_process(tony, status=Process.Status.COMPLETED)
    open_for("+14155550001", tony)
    open_for("+14155550002", tony)

    with pytest.raises(Overloaded) as full:
        open_for("+14155550003", tony)

    assert full.value.code == "server_overloaded"
    assert "limit of 2 running" in full.value.message
    open_for("+14155550001", tony)  # a conversation that goes on starts no process
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        end_idle_sessions()  # they complete, and stay as history
        open_for("+14155550003", tony)
    assert Process.objects.count() == 63


async def test_a_turn_that_would_start_a_process_too_many_is_refused(settings):
    settings.TRON_MAX_RUNNING_PROCESSES = 1
    await sync_to_async(make_persona)()
    provider = SlowProvider()
    await complete_turn(ask("req-1"), provider)

    with pytest.raises(Overloaded):
        await complete_turn(ask("req-2"), provider)  # refused as it begins, before the model is asked
    with pytest.raises(Overloaded):
        await complete_turn(ask("req-3"), provider)
    end = await complete_turn(ask("req-1"), provider)  # its conversation goes on

    assert len(provider.requests) == 2 and end.text == "Done."
    assert not await CallerSession.objects.filter(caller_id__in=["req-2", "req-3"]).aexists()


async def test_a_one_off_callers_process_completes_with_its_turn():
    await sync_to_async(make_persona)()

    end = await complete_turn(ask("anonymous-123"), SlowProvider())

    process = await Process.objects.aget(pk=end.process_id)
    assert process.status == Process.Status.COMPLETED and process.finished_at is not None


@pytest.mark.parametrize("limit", [1, 4, 9])
def test_the_running_limit_holds_exactly(settings, limit):
    settings.TRON_MAX_RUNNING_PROCESSES = limit
    tony = make_persona()
    for n in range(limit):
        open_for(f"+1415555{n:04d}", tony)

    with pytest.raises(Overloaded):
        open_for("+14155559999", tony)
    assert Process.objects.active().count() == limit
