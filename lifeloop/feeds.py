"""Reading news feeds: RSS and Atom through feedparser, JSON Feed (plain JSON, which feedparser 6 does
not read) by its documented fields (https://www.jsonfeed.org/version/1.1/)."""

import calendar
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser
import httpx2
from django.conf import settings
from django.utils.html import strip_tags

USER_AGENT = "Tron/1.0 (news reader of a team of AI personas)"
MAX_FEED_BYTES = 5 * 1024 * 1024
SUMMARY_CHARS = 500
KEY_LENGTH = 255  # NewsItem.key


class FeedError(Exception):
    """A feed could not be read: unreachable, an HTTP error, too large, or not a feed."""


@dataclass
class FeedItem:
    key: str  # the guid, else the link: what deduplicates an item
    link: str
    title: str
    summary: str
    published_at: datetime | None
    feed: str


def read_feeds(urls: list[str]) -> tuple[list[FeedItem], list[str]]:
    """Every feed's items (newest first) and a reason for each feed that failed, read in parallel."""
    with ThreadPoolExecutor(max_workers=min(len(urls), 8) or 1) as pool:
        outcomes = list(pool.map(_read_quietly, urls))
    items = [item for found, _error in outcomes for item in found]
    errors = [error for _found, error in outcomes if error]
    items.sort(key=lambda item: item.published_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return items, errors


def _read_quietly(url: str) -> tuple[list[FeedItem], str]:
    try:
        return read_feed(url), ""
    except FeedError as exc:
        return [], f"{url}: {exc}"


def read_feed(url: str) -> list[FeedItem]:
    body, content_type = fetch(url)
    if "json" in content_type or body.lstrip()[:1] == b"{":
        return parse_json_feed(body, url)
    return parse_xml_feed(body, url)


def fetch(url: str) -> tuple[bytes, str]:
    timeout = settings.TRON_NEWS_TIMEOUT
    try:
        with (
            httpx2.Client(
                timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise FeedError(f"HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_FEED_BYTES:
                    raise FeedError(f"larger than {MAX_FEED_BYTES // (1024 * 1024)} MB")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("content-type", "").lower()
    except httpx2.TimeoutException:
        raise FeedError(f"no answer within {timeout} s") from None
    except httpx2.HTTPError as exc:
        raise FeedError(f"unreachable ({type(exc).__name__}: {exc})") from None


def parse_xml_feed(body: bytes, url: str) -> list[FeedItem]:
    parsed = feedparser.parse(body)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedError(f"not an RSS, Atom or JSON feed{f' ({reason})' if reason else ''}")
    items = []
    for entry in parsed.entries:
        link = entry.get("link") or ""
        guid = entry.get("id") or ""
        title = _text(entry.get("title"))
        if not (link or guid) or not title:
            continue
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        published = (
            datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else None
        )  # struct_time in UTC
        items.append(_item(guid, link, title, entry.get("summary"), published, url))
    return items


def parse_json_feed(body: bytes, url: str) -> list[FeedItem]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise FeedError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("https://jsonfeed.org/"):
        raise FeedError("not a JSON Feed (no jsonfeed.org version)")
    entries = data.get("items")
    if not isinstance(entries, list):
        raise FeedError("a JSON Feed without an items list")
    items = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        link = str(entry.get("url") or entry.get("external_url") or "")
        guid = str(entry.get("id") or "")
        text = (
            entry.get("summary") or entry.get("content_text") or strip_tags(entry.get("content_html") or "")
        )
        title = _text(entry.get("title")) or _text(text)[:120]
        if not (link or guid) or not title:
            continue
        items.append(_item(guid, link, title, text, _iso_date(entry.get("date_published")), url))
    return items


def _item(guid, link, title, summary, published, feed) -> FeedItem:
    return FeedItem(
        key=_key(guid or link),
        link=link[:2000] if link.startswith(("http://", "https://")) else "",
        title=title[:500],
        summary=_text(summary)[:SUMMARY_CHARS],
        published_at=published,
        feed=feed[:2000],
    )


def _key(value: str) -> str:
    value = value.strip()
    if len(value) <= KEY_LENGTH:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{value[: KEY_LENGTH - 17]}-{digest}"


def _text(value) -> str:
    return " ".join(strip_tags(str(value or "")).split())


def _iso_date(value) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
