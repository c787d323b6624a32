"""The conversation put into a prompt: trimmed newest-first to a token budget, the newest user message
always kept; oversized messages refused."""

import pytest

from agents.llm.base import LLMError
from agents.prompts import refuse_oversized, within_budget


def _m(role, words):
    return {"role": role, "content": " ".join(["word"] * words)}  # 5 characters a word: ~1.25 tokens


U1, A1, U2, A2, U3 = _m("user", 40), _m("assistant", 40), _m("user", 40), _m("assistant", 40), _m("user", 40)
# Each of those is 50 + 3 tokens by the estimate (200 characters, 3 for the message's framing).


@pytest.mark.parametrize(
    ("conversation", "budget", "kept"),
    [
        ([U1, A1, U2, A2, U3], 1000, [U1, A1, U2, A2, U3]),  # everything fits
        ([U1, A1, U2, A2, U3], 53 * 3, [U2, A2, U3]),  # exactly three fit
        ([U1, A1, U2, A2, U3], 53 * 3 - 1, [A2, U3]),  # one token short of three
        ([U1, A1, U2, A2, U3], 10, [U3]),  # the newest user message is kept whatever it costs
        ([U1, A1, U2, A2, U3], -50, [U3]),  # even when the system prompt took the whole budget
        ([U1, A1], 10, [U1, A1]),  # what follows the newest user message is kept with it
        ([], 10, []),
    ],
)
def test_the_history_is_trimmed_newest_first(conversation, budget, kept):
    assert within_budget(conversation, budget) == kept


def test_a_message_over_the_limit_is_refused_with_its_index(settings):
    settings.TRON_MAX_MESSAGE_CHARS = 10
    refuse_oversized([{"role": "user", "content": "x" * 10}])  # at the limit: fine
    with pytest.raises(LLMError) as caught:
        refuse_oversized([{"role": "system", "content": "ok"}, {"role": "user", "content": "x" * 11}])
    assert (caught.value.status, caught.value.code) == (413, "message_too_long")
    assert "messages[1]" in caught.value.message and "TRON_MAX_MESSAGE_CHARS" in caught.value.message
