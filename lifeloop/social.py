"""Publishing a post to the social feed at TRON_SOCIAL_API_URL: one JSON POST (the body is documented in
docs/api.md), retried once on failure; the outcome is recorded on the Post."""

import logging
import time

import httpx2
from django.conf import settings
from django.utils import timezone

from agents.display import ellipsis

from .models import Post

log = logging.getLogger(__name__)

ATTEMPTS = 2  # the first try and one retry
RETRY_DELAY_SECONDS = 1.0
TIMEOUT_SECONDS = 15


def body(post: Post) -> dict:
    return {
        "content": post.text,
        "persona": post.persona.name,
        "role": post.persona.role,
        "post_id": post.pk,
        "created_at": post.created_at.isoformat(),
    }


def publish(post: Post) -> None:
    """POST the post to TRON_SOCIAL_API_URL (when set); status `published`, or `failed` with the reason
    after the retry. Without the setting it is `stored`: kept here, published nowhere."""
    url = settings.TRON_SOCIAL_API_URL
    if not url:
        post.status = Post.Status.STORED
        post.save(update_fields=["status"])
        return
    headers = {"X-API-Key": settings.TRON_SOCIAL_API_KEY} if settings.TRON_SOCIAL_API_KEY else {}
    error = ""
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            time.sleep(RETRY_DELAY_SECONDS)
        post.attempts = attempt
        try:
            response = httpx2.post(url, json=body(post), headers=headers, timeout=TIMEOUT_SECONDS)
        except httpx2.TimeoutException:
            error = f"no answer within {TIMEOUT_SECONDS} s"
        except httpx2.HTTPError as exc:
            error = f"unreachable ({type(exc).__name__})"
        else:
            if response.is_success:
                post.status, post.error, post.published_at = Post.Status.PUBLISHED, "", timezone.now()
                break
            error = f"HTTP {response.status_code}: {ellipsis(response.text.strip(), 200)}"
        log.warning(
            "Publishing post %s of %s failed (attempt %s): %s", post.pk, post.persona.name, attempt, error
        )
    else:
        post.status, post.error = Post.Status.FAILED, error
    post.save(update_fields=["status", "error", "attempts", "published_at"])
