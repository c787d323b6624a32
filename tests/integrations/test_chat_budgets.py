"""Budgets and the running-process limit as the chat API's clients meet them: OpenAI's error envelope
(429 insufficient_quota, 503), over real HTTP from the official SDK and from concurrent clients."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest

from agents import pricing
from agents.models import CallerSession, DailySpend, LLMCall, Process
from tests.liveserver import post_chat, stream_lines

pytestmark = pytest.mark.django_db(transaction=True)

# $100 per million tokens: a call of 10 prompt and 1,000 answer tokens costs $0.101.
CALL_COST = Decimal("0.101")
PRICEY_USAGE = {"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010}


@pytest.fixture
def pricey(settings, chat_setup, team):
    """Tony on the model `pricey`, which the fake upstream answers as, with usage that costs CALL_COST."""
    settings.TRON_PRICES = {"pricey": {"input": 100, "output": 100}}
    pricing.clear_cache()
    team["tony"].model = "pricey"
    team["tony"].save()
    chat_setup.reset(model="pricey", usage=PRICEY_USAGE)
    yield team["tony"]
    pricing.clear_cache()


def body(**extra):
    return {"model": "tony", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1000, **extra}


def test_a_persona_over_budget_gets_429_insufficient_quota_in_the_openai_envelope(live_tron, pricey):
    pricey.budget_usd = Decimal("0.10")
    pricey.save()
    assert post_chat(live_tron, body(), {"X-Request-ID": "one"}).status_code == 200  # $0.101 spent

    response = post_chat(live_tron, body(), {"X-Request-ID": "two"})

    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "Tony has used today's budget ($0.10 per UTC day" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert 0 < int(response.headers["Retry-After"]) <= 24 * 3600
    assert not CallerSession.objects.filter(caller_id="req-two").exists()  # nothing stored


def test_the_sdk_raises_its_quota_error_and_maya_still_answers(sdk, pricey, team):
    pricey.budget_usd = Decimal("0")
    pricey.save()

    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="tony", messages=[{"role": "user", "content": "Hi"}])
    maya = sdk.chat.completions.create(model="maya", messages=[{"role": "user", "content": "Hi"}])

    assert refused.value.code == "insufficient_quota" and refused.value.type == "insufficient_quota"
    assert maya.choices[0].message.content == "Hello there!"


def test_the_default_budget_applies_to_a_persona_without_its_own(live_tron, pricey, settings):
    settings.TRON_DEFAULT_DAILY_BUDGET_USD = Decimal("0")

    response = post_chat(live_tron, body(), {"X-Request-ID": "default"})

    assert response.status_code == 429 and response.json()["error"]["type"] == "insufficient_quota"


def test_concurrent_requests_overshoot_the_budget_by_at_most_one_call(live_tron, chat_setup, pricey):
    pricey.budget_usd = Decimal("0.15")  # one call's worth, and a little
    pricey.save()
    chat_setup.reset(model="pricey", usage=PRICEY_USAGE, first_token_delay=0.5)  # the calls overlap
    clients = 8

    with ThreadPoolExecutor(clients) as pool:
        responses = list(
            pool.map(lambda n: post_chat(live_tron, body(), {"X-Request-ID": f"many-{n}"}), range(clients))
        )

    statuses = [r.status_code for r in responses]
    answered = statuses.count(200)
    assert statuses.count(429) == clients - answered and 1 <= answered <= 2
    # Each call is held as its turn begins, while the model works on its first token: the refused
    # calls were dropped then, before the model sent a word.
    assert [r.tokens_sent > 0 for r in chat_setup.requests].count(True) == answered
    spent = sum(LLMCall.objects.values_list("cost_usd", flat=True), Decimal(0))
    assert spent == answered * CALL_COST < Decimal("0.15") + CALL_COST  # at most one call over
    row = DailySpend.objects.get(persona=pricey)
    assert (row.spent_usd, row.reserved_usd) == (spent, 0)


def test_a_stream_refused_for_its_budget_is_an_http_429_not_an_event(live_tron, pricey):
    pricey.budget_usd = Decimal("0")
    pricey.save()

    response, lines = stream_lines(live_tron, body())

    assert response.status_code == 429
    assert '"type":"insufficient_quota"' in "".join(lines).replace(" ", "")


def test_a_new_conversation_past_the_running_limit_gets_503_and_completed_ones_do_not_count(
    live_tron, chat_setup, team, settings
):
    settings.TRON_MAX_RUNNING_PROCESSES = 2
    for _ in range(5):  # history: completed processes never count
        Process.objects.create(persona=team["tony"], status=Process.Status.COMPLETED)
    for caller in ("first", "second"):
        assert post_chat(live_tron, body(), {"X-Request-ID": caller}).status_code == 200

    refused = post_chat(live_tron, body(), {"X-Request-ID": "third"})
    again = post_chat(live_tron, body(), {"X-Request-ID": "first"})  # an open conversation goes on
    anonymous = post_chat(live_tron, body())  # would start a process too

    assert refused.status_code == 503
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable_error", "server_overloaded")
    assert "limit of 2 running conversations" in error["message"]
    assert refused.headers["Retry-After"] == "30"
    assert again.status_code == 200 and anonymous.status_code == 503
    # Refused as they began: the model was never asked.
    assert len(chat_setup.requests) == 3
    Process.objects.filter(status=Process.Status.RUNNING).update(status=Process.Status.COMPLETED)
    assert post_chat(live_tron, body(), {"X-Request-ID": "third"}).status_code == 200
