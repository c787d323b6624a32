"""The rule that keeps a platform's transcript lines from being stored twice: plain tables."""

import pytest

from integrations.transcripts import missing_lines

U, A = "user", "assistant"


@pytest.mark.parametrize(
    "stored, reported, missing",
    [
        ([], [(U, "hi")], [(U, "hi")]),
        ([(U, "hi")], [(U, "hi")], []),
        # Case, punctuation and spacing do not make a line new.
        ([(U, "Hi Tony, it's Ada.")], [(U, "hi tony  its ada")], []),
        # The same words from the other speaker are another line.
        ([(U, "hello")], [(A, "hello")], [(A, "hello")]),
        # A line said twice is stored twice; each stored line matches one reported line.
        ([(U, "yes"), (A, "ok")], [(U, "yes"), (A, "ok"), (U, "yes")], [(U, "yes")]),
        # A line stored out of the platform's order (the greeting, reported late) is still found.
        ([(U, "hi"), (A, "hello"), (A, "I'm Tony")], [(A, "I'm Tony"), (U, "hi"), (A, "hello")], []),
        # The platform splits and cuts the answer the model gave whole: its pieces are there.
        ([(A, "Sure. The invoice is on its way. Anything else?")], [(A, "The invoice is on its way.")], []),
        ([(A, "Sure. The invoice is on its way.")], [(A, "Sure. The inv")], [(A, "Sure. The inv")]),
        # Only what is missing, in the platform's order.
        (
            [(U, "hi"), (A, "hello")],
            [(A, "greeting"), (U, "hi"), (A, "hello"), (U, "bye")],
            [(A, "greeting"), (U, "bye")],
        ),
        # Nothing but punctuation is nothing to store.
        ([], [(U, "...")], []),
    ],
)
def test_only_lines_the_transcript_lacks_are_missing(stored, reported, missing):
    assert missing_lines(stored, reported) == missing
