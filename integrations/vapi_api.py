"""POST /vapi/events: VAPI's server messages (webhooks). Protocol only; what each does is
integrations/vapi.py."""

import hmac
import logging

from django.conf import settings
from django.http import JsonResponse
from ninja import Router

from agents import tracing
from agents.errors import Overloaded

from .error_envelope import error_response
from .vapi import handle
from .vapi_events import BadEvent, parse_event

log = logging.getLogger(__name__)

router = Router(tags=["vapi"])

SECRET_HEADER = "X-Vapi-Secret"


@router.post("/vapi/events", summary="VAPI's server messages")
def vapi_events(request):
    if not verified(request):
        return error_response(
            401,
            f"Missing or incorrect VAPI secret: send '{SECRET_HEADER}: <VAPI_SECRET>' or "
            "'Authorization: Bearer <VAPI_SECRET>'.",
            code="invalid_vapi_secret",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        event = parse_event(request.body)
        # Its tool runs continue VAPI's trace when it sends one (agents.tracing).
        parent = tracing.parent_from(
            request.headers.get("traceparent", ""), request.headers.get("tracestate", "")
        )
        with tracing.span(f"vapi {event.type}", parent=parent):
            return JsonResponse(handle(event, base_url=public_base_url(request)))
    except BadEvent as exc:
        log.info("Refused a VAPI message: %s", exc.message)
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code)
    except Overloaded as exc:  # a call that would start one process too many
        return error_response(503, exc.message, code=exc.code, headers={"Retry-After": str(exc.retry_after)})


def verified(request) -> bool:
    """With VAPI_SECRET set, the request carries it: as VAPI's legacy `X-Vapi-Secret` header, or as a
    bearer token (VAPI's current credentials). Compared in constant time."""
    secret = settings.VAPI_SECRET
    if not secret:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    given = [request.headers.get(SECRET_HEADER, ""), token.strip() if scheme.lower() == "bearer" else ""]
    # Headers arrive as Latin-1 text (their bytes): compared as bytes, a UTF-8 secret matches too.
    return any(hmac.compare_digest(_raw(value), secret.encode()) for value in given if value)


def _raw(header_value: str) -> bytes:
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (a test client's str)
        return header_value.encode()


def public_base_url(request) -> str:
    """Where VAPI reaches this server: TRON_PUBLIC_URL, else the scheme and host this request came to."""
    return settings.TRON_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")
