"""post: a short post in the persona's voice from its recent material, stored and, when
TRON_SOCIAL_API_URL is set, published there."""

from datetime import timedelta

from django.utils import timezone

from agents.display import ellipsis
from agents.prompts import quoted

from ..models import Activity, Goal, JournalEntry, NewsItem, Post
from ..social import publish
from ..thinking import IMPORTANCE_ASK, ActivityFailed, Outcome, bullet_lines, split_importance, think, when

MAX_CHARS = 280
LOOKBACK = timedelta(days=2)


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
    recent = Post.objects.filter(persona=persona).order_by("-created_at").values_list("text", flat=True)[:3]
    picked = quoted(
        "news items you picked", bullet_lines((f"{n.title} ({n.link}) — {n.take}" for n in news), "(none)")
    )
    answer = think(
        run,
        f"It is {when(persona)}. Write one short post for your social feed.\n\n"
        f"News you picked lately:\n{picked}\n\n"
        f"Your latest reflection:\n{ellipsis(reflection or '(none yet)', 600)}\n\n"
        f"Your current goals:\n{bullet_lines((g.title for g in goals), '(none)')}\n\n"
        f"Your last posts (do not repeat them):\n{bullet_lines(recent, '(none)')}\n\n"
        f"Write the post itself, in your own voice, at most {MAX_CHARS} characters, with at most two "
        "hashtags. Never share anything confidential: no clients, deals, revenue, salaries, people's "
        f"details or credentials. {IMPORTANCE_ASK}",
        max_tokens=200,
    )
    text, importance = split_importance(answer)
    text = shorten(text.strip().strip('"').strip())
    if not text:
        raise ActivityFailed("The model wrote no post.")
    post = Post.objects.create(persona=persona, run=run, text=text)
    publish(post)
    if post.status == Post.Status.FAILED:
        return Outcome(
            result=f"Stored, not published: {text}",
            journal=f"Wrote a post (not published): {text}",
            importance=importance,
            error=f"Publishing to the social API failed: {post.error}",
        )
    return Outcome(result=f"Posted: {text}", journal=f"Posted: {text}", importance=importance, share=text)


def shorten(text: str) -> str:
    """At most MAX_CHARS, cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= MAX_CHARS:
        return text
    cut = text[: MAX_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"
