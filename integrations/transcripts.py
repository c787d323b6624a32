"""Transcript lines a voice platform reports (VAPI's webhooks) added to a session's transcript, never twice.

The chat endpoint stores what it sees of a conversation: every user message it is sent and every answer
the model gives. The platform reports the same conversation again (line by line, and whole, several
times), and also what the chat endpoint never saw: the assistant's first message, which the platform
speaks itself, and words said after the last model request (a caller who hangs up). The rule:

1. A reported line is already in the transcript when a stored line of the same speaker has the same
   words (compared ignoring case, punctuation and spacing), each stored line matching one reported
   line (in order where the orders agree, so a line said twice is stored twice); or when its words lie
   within a longer stored line of that speaker (the platform splits and cuts the
   answers the model gave whole). Only the lines left are stored, in the platform's order.
2. While a turn of the chat endpoint runs in the session, mid-call reports store nothing: the turn
   records what the model says, and the platform's next request carries what the caller said meanwhile
   (storing it now would put it before the answer it interrupted, and the next request would store it
   again). The end-of-call report then stores only the caller's lines the transcript lacks.

The check and the write are one transaction that locks the session row, so a turn starting meanwhile
waits for it and then sees the lines (its own retry check drops words already stored).
"""

import re
from difflib import SequenceMatcher

from django.db import transaction

from agents.models import CallerSession, Message

WORD = re.compile(r"\w+")


def words(text: str) -> str:
    """The words of a line, for comparing: lower case, no punctuation (apostrophes join: it's = its)."""
    return " ".join(WORD.findall(text.lower().replace("'", "").replace("\u2019", "")))


def missing_lines(stored: list[tuple[str, str]], reported: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The reported (role, text) lines the stored ones do not have (rule 1), in the reported order."""
    stored_keys = [(role, words(text)) for role, text in stored]
    reported_keys = [(role, words(text)) for role, text in reported]
    matcher = SequenceMatcher(None, stored_keys, reported_keys, autojunk=False)
    found, used = set(), set()
    for block in matcher.get_matching_blocks():
        found.update(range(block.b, block.b + block.size))
        used.update(range(block.a, block.a + block.size))
    left = []
    for index, (role, key) in enumerate(reported_keys):
        if index in found or not key:
            continue
        # The same line stored out of the platform's order (a greeting reported after the first turn).
        twin = next((i for i, s in enumerate(stored_keys) if s == (role, key) and i not in used), None)
        if twin is not None:
            used.add(twin)
            continue
        if any(
            role == s_role and key != s_key and f" {key} " in f" {s_key} " for s_role, s_key in stored_keys
        ):
            continue  # a piece of a line stored whole
        left.append(reported[index])
    return left


def add_reported_lines(session: CallerSession, reported: list[tuple[str, str]], *, call_over: bool) -> int:
    """Store the lines of `reported` the session's transcript lacks (see the rules above); how many.
    The lines are the edge's, checked there: text a database stores, within TRON_MAX_MESSAGE_CHARS."""
    if not reported:
        return 0
    with transaction.atomic():
        locked = CallerSession.objects.select_for_update().get(pk=session.pk)
        turn_running = locked.turn_running()
        if turn_running:
            if not call_over:
                return 0
            reported = [line for line in reported if line[0] == Message.Role.USER]
        stored = list(
            Message.objects.filter(
                process_id=locked.process_id, role__in=(Message.Role.USER, Message.Role.ASSISTANT)
            )
            .order_by("id")
            .values_list("role", "content")
        )
        new = missing_lines(stored, reported)
        Message.objects.bulk_create(
            Message(
                process_id=locked.process_id,
                session=locked,
                role=role,
                content=text,
            )
            for role, text in new
        )
    return len(new)
