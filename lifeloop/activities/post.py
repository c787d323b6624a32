"""post: a short post in the persona's voice from its recent material.

What becomes of it is said as it is: published (TRON_SOCIAL_API_URL), stored only (no social API set),
awaiting an operator's approval (TRON_POSTS_NEED_APPROVAL), or withheld, kept with the reason, when the
model wrote nothing or repeated its prompt or an earlier post (a small model given the date and the
persona's prompt tends to write them back: "It's Sunday 6 December 2026, 22:50 (UTC). I'm Tony, …").
"""

import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from agents.display import ellipsis
from agents.prompts import quoted

from ..models import Activity, Goal, JournalEntry, NewsItem, Post
from ..social import publish
from ..thinking import IMPORTANCE_ASK, Outcome, bullet_lines, split_importance, think, when

MAX_CHARS = 280
LOOKBACK = timedelta(days=2)
RUN_OF_WORDS = 6  # this many words in a row, as in the prompt or an earlier post, is a repeat


def run(run) -> Outcome:
    persona = run.persona
    since = timezone.now() - LOOKBACK
    reflection = (
        JournalEntry.objects.filter(persona=persona, kind=Activity.REFLECTION)
        .order_by("-created_at")
        .values_list("text", flat=True)
        .first()
    )
    news = NewsItem.objects.filter(persona=persona, picked=True, created_at__gte=since).order_by(
        "-created_at"
    )[:3]
    goals = Goal.objects.filter(persona=persona, status=Goal.Status.ACTIVE).order_by("-updated_at")[:3]
    recent = list(
        Post.objects.filter(persona=persona)
        .exclude(text="")
        .order_by("-created_at")
        .values_list("text", flat=True)[:3]
    )
    # The instructions are what a post must not repeat; the material (news, reflection, goals) it may quote.
    opening = f"It is {when(persona)}. Write one short post for your social feed."
    rules = (
        f"Write the post itself, in your own voice, at most {MAX_CHARS} characters, with at most two "
        "hashtags. Never share anything confidential: no clients, deals, revenue, salaries, people's "
        f"details or credentials. {IMPORTANCE_ASK}"
    )
    picked = quoted(
        "news items you picked", bullet_lines((f"{n.title} ({n.link}) — {n.take}" for n in news), "(none)")
    )
    answer = think(
        run,
        f"{opening}\n\n"
        f"News you picked lately:\n{picked}\n\n"
        f"Your latest reflection:\n{ellipsis(reflection or '(none yet)', 600)}\n\n"
        f"Your current goals:\n{bullet_lines((g.title for g in goals), '(none)')}\n\n"
        f"Your last posts (do not repeat them):\n{bullet_lines(recent, '(none)')}\n\n"
        f"{rules}",
        max_tokens=200,
    )
    text, importance = split_importance(answer)
    text = shorten(text.strip().strip('"').strip())
    if reason := withheld_because(text, [opening, rules, persona.system_prompt], recent):
        Post.objects.create(persona=persona, run=run, text=text, status=Post.Status.WITHHELD, error=reason)
        return Outcome(
            result=f"Withheld, not published: {text or '(nothing)'}",
            error=f"The post was withheld: {reason}.",
        )
    if settings.TRON_POSTS_NEED_APPROVAL:
        Post.objects.create(persona=persona, run=run, text=text, status=Post.Status.AWAITING_APPROVAL)
        return Outcome(
            result=f"Awaiting approval: {text}",
            journal=f"Wrote a post, awaiting an operator's approval: {text}",
            importance=importance,
        )
    post = Post.objects.create(persona=persona, run=run, text=text)
    publish(post)
    if post.status == Post.Status.FAILED:
        return Outcome(
            result=f"Stored, not published: {text}",
            journal=f"Wrote a post (not published): {text}",
            importance=importance,
            error=f"Publishing to the social API failed: {post.error}",
        )
    if post.status == Post.Status.STORED:
        result = f"Stored, not published (no social API set): {text}"
        return Outcome(
            result=result,
            journal=f"Wrote a post (not published): {text}",
            importance=importance,
            share=result,
        )
    return Outcome(result=f"Posted: {text}", journal=f"Posted: {text}", importance=importance, share=text)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def runs_of_words(text: str) -> set[tuple[str, ...]]:
    found = words(text)
    return {tuple(found[i : i + RUN_OF_WORDS]) for i in range(len(found) - RUN_OF_WORDS + 1)}


def withheld_because(text: str, prompt: list[str], earlier: list[str]) -> str:
    """Why the post must not be published ("" when it may): empty, or it repeats its prompt (the
    instructions, the persona's own prompt) or an earlier post, by RUN_OF_WORDS words in a row, or whole."""
    if not words(text):
        return "the model wrote nothing"
    mine, whole = runs_of_words(text), f" {' '.join(words(text))} "
    if any(mine & runs_of_words(part) or whole in f" {' '.join(words(part))} " for part in prompt):
        return "it repeats its prompt"
    if any(mine & runs_of_words(post) or whole == f" {' '.join(words(post))} " for post in earlier):
        return "it repeats an earlier post"
    return ""


def shorten(text: str) -> str:
    """At most MAX_CHARS, cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= MAX_CHARS:
        return text
    cut = text[: MAX_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"
