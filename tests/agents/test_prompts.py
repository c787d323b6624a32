"""The conversation put into a prompt: trimmed newest-first to a token budget, the newest user message
always kept; oversized messages refused."""

from collections.abc import Sequence

import pytest

from agents import errors
from agents.prompts import (
    new_messages,
    paired_tool_calls,
    plain_text,
    refuse_oversized,
    unsaved,
    within_budget,
)


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
    with pytest.raises(errors.TurnError) as caught:
        refuse_oversized([{"role": "system", "content": "ok"}, {"role": "user", "content": "x" * 11}])
    assert (type(caught.value), caught.value.code) == (errors.MessageTooLong, "message_too_long")
    assert "messages[1]" in caught.value.message and "TRON_MAX_MESSAGE_CHARS" in caught.value.message


def _call(id_):
    return {"id": id_, "type": "function", "function": {"name": "f", "arguments": "{}"}}


ASK = {"role": "user", "content": "q"}
CALLS = {"role": "assistant", "content": "", "tool_calls": [_call("a"), _call("b")]}
SAYS_AND_CALLS = {"role": "assistant", "content": "let me see", "tool_calls": [_call("a")]}
RESULT_A = {"role": "tool", "content": "ra", "tool_call_id": "a"}
RESULT_B = {"role": "tool", "content": "rb", "tool_call_id": "b"}


@pytest.mark.parametrize(
    ("conversation", "paired"),
    [
        ([ASK, CALLS, RESULT_A, RESULT_B], [ASK, CALLS, RESULT_A, RESULT_B]),  # whole: as it is
        ([RESULT_A, RESULT_B, ASK], [ASK]),  # trimmed to after the call: its results go
        ([ASK, CALLS], [ASK]),  # calls never answered (a client that moved on) go, and the empty message
        ([ASK, CALLS, RESULT_B], [ASK, {**CALLS, "tool_calls": [_call("b")]}, RESULT_B]),  # one of two
        ([ASK, SAYS_AND_CALLS], [ASK, {"role": "assistant", "content": "let me see"}]),  # words stay
        ([ASK, RESULT_A, CALLS, RESULT_B], [ASK, {**CALLS, "tool_calls": [_call("b")]}, RESULT_B]),
    ],
)
def test_tool_calls_and_results_stay_paired(conversation, paired):
    assert paired_tool_calls(conversation) == paired


@pytest.mark.parametrize(
    ("messages", "new"),
    [
        ([ASK], [ASK]),
        ([{"role": "system", "content": "s"}, ASK], [ASK]),
        ([ASK, CALLS, RESULT_A, RESULT_B], [RESULT_A, RESULT_B]),  # a client's tool results are its words
        ([ASK, {"role": "assistant", "content": "a"}], []),
        ([ASK, {"role": "assistant", "content": "a"}, ASK, ASK], [ASK, ASK]),
    ],
)
def test_the_new_words_are_what_follows_the_last_answer(messages, new):
    assert new_messages(messages) == new


def test_a_model_without_tools_gets_the_conversation_as_plain_text():
    assert plain_text([ASK, SAYS_AND_CALLS, RESULT_A, CALLS]) == [
        ASK,
        {"role": "assistant", "content": "let me see"},
    ]


@pytest.mark.parametrize(
    ("recent", "new", "unstored"),
    [
        ([ASK], [ASK], []),  # a retry of words stored without an answer
        ([ASK, {"role": "assistant", "content": "a"}], [ASK], [ASK]),  # answered: asked again
        ([RESULT_A], [RESULT_A, ASK], [ASK]),
        ([RESULT_A], [RESULT_B], [RESULT_B]),
        ([], [ASK], [ASK]),
    ],
)
def test_resent_words_are_not_stored_twice(recent, new, unstored):
    assert unsaved(recent, new) == unstored


class _Counted(Sequence):
    """A conversation that counts the messages read out of it, one by one or as slices."""

    def __init__(self, messages):
        self.messages, self.read = messages, 0

    def __len__(self):
        return len(self.messages)

    def __getitem__(self, key):
        found = self.messages[key]
        self.read += len(found) if isinstance(key, slice) else 1
        return found


def test_pairing_reads_each_message_a_bounded_number_of_times():
    # It runs in the claim's transaction: a body of many assistant messages with calls (each copying
    # the rest of the list) held the database's one writer for seconds.
    conversation = _Counted([ASK] + [CALLS] * 500)
    assert paired_tool_calls(conversation) == [ASK]
    assert conversation.read <= 3 * len(conversation)


def test_the_resent_words_check_reads_each_message_a_bounded_number_of_times():
    # Also in the claim: a transcript ending with many stored words, and a request resending nearly
    # the same ones, compared every overlap in full (0.3 s for 2,000 messages).
    said, other = {"role": "user", "content": "x"}, {"role": "user", "content": "z"}
    recent, new = _Counted([said] * 399 + [other]), _Counted([said] * 400)
    assert list(unsaved(recent, new)) == [said] * 400
    assert recent.read + new.read <= 3 * (len(recent) + len(new))
