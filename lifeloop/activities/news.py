"""news: read the persona's feeds, keep the items it has not seen, and let the model pick what matters
to the persona's focus areas, each with a one-line take."""

from urllib.parse import urlparse

from django.conf import settings
from django.db.models import Q

from agents.display import ellipsis
from agents.prompts import quoted

from ..feeds import FeedItem, read_feeds
from ..models import NewsItem
from ..thinking import ActivityFailed, Outcome, clamp_importance, parse_json, think, when

MAX_OFFERED = 20  # new items shown to the model per run (newest first); the rest wait for the next run
MAX_PICKS = 3


def run(run) -> Outcome:
    persona = run.persona
    feeds = persona.news_feeds or settings.TRON_NEWS_FEEDS
    if not feeds:
        return Outcome(
            result="No feeds to read: set the persona's news feeds or TRON_NEWS_FEEDS.", skipped=True
        )
    items, errors = read_feeds(feeds)
    failed = "; ".join(errors)
    if errors and len(errors) == len(feeds):
        raise ActivityFailed(f"No feed could be read: {failed}")
    fresh = unseen(persona, items)[:MAX_OFFERED]
    if not fresh:
        return Outcome(result=f"Nothing new in {len(feeds) - len(errors)} feed(s).", error=failed)

    answer = think(run, prompt(persona, fresh), max_tokens=600)
    data = parse_json(answer)
    picks = chosen(data.get("picks"), len(fresh))
    NewsItem.objects.bulk_create(
        [
            NewsItem(
                persona=persona,
                run=run,
                key=item.key,
                link=item.link,
                title=item.title,
                summary=item.summary,
                feed=item.feed,
                published_at=item.published_at,
                picked=number in picks,
                take=picks.get(number, ""),
            )
            for number, item in enumerate(fresh, 1)
        ],
        ignore_conflicts=True,  # a concurrent manual run stored some of them first
    )
    lines = [f"{fresh[number - 1].title} — {take}" for number, take in picks.items()]
    result = f"Read {len(fresh)} new item(s); picked {len(picks)}" + (
        ": " + "; ".join(lines) if lines else "."
    )
    return Outcome(
        result=result, journal=result, importance=clamp_importance(data.get("importance")), error=failed
    )


def unseen(persona, items: list[FeedItem]) -> list[FeedItem]:
    """Items this persona has not seen, by guid or link (nor twice in this batch)."""
    keys = {item.key for item in items}
    links = {item.link for item in items if item.link}
    seen = NewsItem.objects.filter(persona=persona).filter(Q(key__in=keys) | Q(link__in=links))
    seen_keys, seen_links = set(), set()
    for key, link in seen.values_list("key", "link"):
        seen_keys.add(key)
        seen_links.add(link)
    fresh = []
    for item in items:
        if item.key in seen_keys or (item.link and item.link in seen_links):
            continue
        seen_keys.add(item.key)
        seen_links.add(item.link)
        fresh.append(item)
    return fresh


def prompt(persona, items: list[FeedItem]) -> str:
    listed = quoted(
        "items from your news feeds",
        "\n".join(
            f"{number}. {item.title} ({urlparse(item.link or item.feed).netloc})"
            + (f" — {ellipsis(item.summary, 200)}" if item.summary else "")
            for number, item in enumerate(items, 1)
        ),
    )
    focus = ", ".join(persona.focus_areas) or "your work"
    return (
        f"It is {when(persona)}. Time to read the news in your field ({focus}). New items from your feeds:\n\n"
        f"{listed}\n\n"
        f"Pick at most {MAX_PICKS} that matter for your work (none, if nothing does), and give each a "
        "one-line take in your own voice. Answer with JSON only, in this form:\n"
        '{"picks": [{"item": <number>, "take": "<one line>"}], '
        '"importance": <1-10: how much today\'s news matters to you>}'
    )


def chosen(picks, count: int) -> dict[int, str]:
    """{item number: take} from the model's picks, keeping only valid numbers, at most MAX_PICKS."""
    found: dict[int, str] = {}
    for pick in picks if isinstance(picks, list) else []:
        if not isinstance(pick, dict):
            continue
        number, take = pick.get("item"), " ".join(str(pick.get("take") or "").split())
        if isinstance(number, str) and number.strip().isdigit():
            number = int(number)
        if isinstance(number, int) and 1 <= number <= count and number not in found:
            found[number] = ellipsis(take, 500)
        if len(found) == MAX_PICKS:
            break
    return found
