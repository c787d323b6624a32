"""POST /slack/events: Slack's Events API (HTTP mode), `../shared/docs/protocols.md` §3.

Every request is verified with SLACK_SIGNING_SECRET by slack_sdk's SignatureVerifier (HMAC of the raw
body, five-minute window): 401 when the signature is missing, malformed, wrong or stale, 503 while no
secret is configured (never open). `url_verification` is answered with its challenge. A message to
answer is stored (its `event_id` is the dedup key, in the database) and handed to a django-q2 task, and
Slack gets its 200 at once: the persona's turn never runs inside Slack's three seconds.

A signed body that is not a JSON object, or a handshake without its challenge, is a 400. A signed event
that does not fit its schema (schemas.py) is logged and answered 200, nothing stored: Slack retries a
non-2xx three times, and the same bytes would fail the same way (docs/decisions.md).
"""

import logging
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from integrations.error_envelope import error_response
from integrations.json_input import NotJson, loads
from integrations.models import SlackMessage, SlackThread

from . import tasks
from .events import Incoming, Unreadable, incoming

log = logging.getLogger(__name__)

CHALLENGE_MAX = 1000  # Slack's challenges are some 50 characters
# On a 4xx to a signed request: the same bytes would fail again, so Slack need not retry them.
NO_RETRY = {"X-Slack-No-Retry": "1"}

# The signature headers as Slack writes them: Unix seconds, and `v0=` with the HMAC-SHA256 in hex.
# Anything else is refused before slack_sdk sees it (it would raise on a timestamp too large for a
# float, or on a signature with a non-ASCII character).
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@csrf_exempt
@require_POST
def events(request):
    if not settings.SLACK_SIGNING_SECRET:
        log.warning("A Slack request was refused: SLACK_SIGNING_SECRET is not set")
        return error_response(503, "Slack is not configured on this server: SLACK_SIGNING_SECRET is not set.")
    if not _signed(request):
        return error_response(401, "The request's Slack signature is missing, wrong or too old.")
    try:
        envelope = loads(request.body)
    except NotJson as exc:
        return error_response(400, f"The body is not JSON: {exc}.", headers=NO_RETRY)
    if not isinstance(envelope, dict):
        return error_response(400, "The body must be a JSON object.", headers=NO_RETRY)
    kind = envelope.get("type")
    if kind == "url_verification":
        challenge = envelope.get("challenge")
        if not isinstance(challenge, str) or len(challenge) > CHALLENGE_MAX:
            return error_response(
                400,
                f"url_verification needs a 'challenge' string of at most {CHALLENGE_MAX} characters.",
                param="challenge",
                headers=NO_RETRY,
            )
        return JsonResponse({"challenge": challenge})
    if kind == "app_rate_limited":
        log.warning(
            "Slack is holding back this app's events (app_rate_limited): %s",
            envelope.get("minute_rate_limited"),
        )
    elif kind == "event_callback":
        return _event_callback(request, envelope)
    return HttpResponse(status=200)


def _signed(request) -> bool:
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not (TIMESTAMP.fullmatch(timestamp) and SIGNATURE.fullmatch(signature)):
        return False
    try:
        return SignatureVerifier(settings.SLACK_SIGNING_SECRET).is_valid(
            body=request.body, timestamp=timestamp, signature=signature
        )
    except UnicodeDecodeError:  # a body that is no UTF-8: Slack signs none
        return False


def _event_callback(request, envelope: dict):
    try:
        message = incoming(envelope)
    except Unreadable as exc:
        log.warning("A signed Slack event was dropped: %s (event_id %.64r)", exc, envelope.get("event_id"))
        return HttpResponse(status=200)
    if message is None:
        return HttpResponse(status=200)  # not for a persona: a bot's post, an edit, another event type
    if not settings.SLACK_BOT_TOKEN:
        log.error("A Slack message was refused: SLACK_BOT_TOKEN is not set, so it could not be answered")
        return error_response(503, "Slack is not configured on this server: SLACK_BOT_TOKEN is not set.")
    stored, new = store(message)
    retry = request.headers.get("X-Slack-Retry-Num")
    if new or stored.status == SlackMessage.Status.PENDING:
        # A retry of a message still waiting (its first task may never have run) is handed out again;
        # the thread's lease and the row's status make sure it is answered once.
        tasks.enqueue(stored.thread_id)
    elif retry:
        log.info(
            "Slack retry %s of %s (%s): already %s",
            retry,
            message.event_id,
            request.headers.get("X-Slack-Retry-Reason"),
            stored.status,
        )
    return HttpResponse(status=200)


def store(message: Incoming) -> tuple[SlackMessage, bool]:
    """The message's row, and whether this call created it. The event id is unique in the database, as
    is (thread, ts), so whichever web process gets a copy first stores it and the others find it."""
    thread, _ = SlackThread.objects.get_or_create(
        team_id=message.team_id, channel=message.channel, thread_ts=message.thread_ts
    )
    try:
        with transaction.atomic():
            row = SlackMessage.objects.create(
                event_id=message.event_id,
                thread=thread,
                kind=message.kind,
                user=message.user,
                ts=message.ts,
                text=message.text,
                file_names=message.file_names,
                bot_user_id=message.bot_user_id,
            )
            return row, True
    except IntegrityError:
        existing = SlackMessage.objects.filter(
            Q(event_id=message.event_id) | Q(thread=thread, ts=message.ts)
        ).first()
        if existing is None:
            raise
        return existing, False
