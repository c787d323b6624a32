"""Token estimates (used when a provider reports no usage) and what a call costs, as tables."""

from decimal import Decimal

import pytest

from agents.pricing import cost_usd, price_for
from agents.tokens import estimate_prompt_tokens, estimate_text_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("abcd", 1),
        ("abcde", 2),  # a started token counts
        ("日本語", 3),  # a CJK character is about a token of its own
        ("😀😀", 2),
        ("привет", 3),  # other scripts: about one per two characters
        ("ab日", 2),  # 2 ASCII = 0.5, 1 CJK = 1: rounded up
    ],
)
def test_text_tokens(text, tokens):
    assert estimate_text_tokens(text) == tokens


@pytest.mark.parametrize(
    ("messages", "tokens"),
    [
        ([], 3),  # the reply's priming
        ([{"role": "user", "content": "abcd"}], 3 + 3 + 1),
        ([{"role": "assistant", "content": None}], 3 + 3),
        (
            [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "ab", "arguments": "cd"}}],
                }
            ],
            3 + 3 + 1,  # the call's name and arguments are tokens too
        ),
    ],
)
def test_prompt_tokens(messages, tokens):
    assert estimate_prompt_tokens(messages) == tokens


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o-mini", (Decimal("0.15"), Decimal("0.60"))),
        ("GPT-4o-mini", (Decimal("0.15"), Decimal("0.60"))),
        ("openai/gpt-4o-mini", (Decimal("0.15"), Decimal("0.60"))),  # a router's prefix
        ("gpt-4o-mini-2024-07-18", (Decimal("0.15"), Decimal("0.60"))),  # a dated variant: longest prefix
        ("gpt-4o-2024-08-06", (Decimal("2.50"), Decimal("10.00"))),
        ("ft:gpt-9", None),
        ("", None),
    ],
)
@pytest.mark.django_db
def test_prices_by_model_name(model, price):
    assert price_for(model) == price


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens", "cost"),
    [
        ("gpt-4o-mini", 1_000_000, 0, Decimal("0.15")),
        ("gpt-4o-mini", 42, 3, Decimal("0.000008100")),
        ("unknown-model", 1000, 1000, Decimal(0)),  # unpriced: $0, and logged once
        ("smollm2-135m-instruct", 1000, 1000, Decimal(0)),
    ],
)
@pytest.mark.django_db
def test_cost(model, input_tokens, output_tokens, cost):
    assert cost_usd(model, input_tokens, output_tokens) == cost
