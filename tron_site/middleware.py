"""Cross-cutting concerns of the JSON surface: CORS, the bearer token, and JSON errors.

Written sync- and async-capable (no MiddlewareMixin), so the streaming chat path stays on the event loop.
"""

import hmac
import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponseBadRequest

from integrations.error_envelope import body_too_large_response, error_response
from integrations.identify import CALLER_HEADERS

log = logging.getLogger(__name__)

# Paths that answer JSON; errors on them are rewritten into the envelope.
JSON_PREFIXES = ("/api/", "/internal/", "/v1/", "/chat/", "/vapi/", "/slack/", "/health", "/metrics")
# Paths browsers may call cross-origin.
CORS_PREFIXES = ("/api/", "/v1/", "/chat/")
# Paths behind TRON_API_TOKEN (operators, and Prometheus, which sends it as a bearer token), and the
# exception Caddy (which sends no token) must reach.
TOKEN_PREFIXES = ("/api/", "/internal/", "/metrics")
TOKEN_EXEMPT = ("/internal/caddy-ask",)
# Paths behind TRON_CHAT_API_KEY (callers: VAPI, ElevenLabs and SDK clients send it as a bearer key).
CHAT_PREFIXES = ("/v1/", "/chat/")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",  # all that any endpoint accepts
    "Access-Control-Allow-Headers": ", ".join(("Authorization", "Content-Type", *CALLER_HEADERS)),
    "Access-Control-Expose-Headers": "X-Total-Count, X-Tron-Caller-ID, X-Tron-Process-ID",
    "Access-Control-Max-Age": "86400",
}


def _bearer_ok(request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _missing_token(request) -> str | None:
    """Which token this request lacks: "api", "chat", or None when it may pass.

    Uses path_info, the path as routed (a script prefix such as /tron/api/… must not dodge the check).
    """
    path = request.path_info
    if request.method == "OPTIONS":
        return None
    if path.startswith(TOKEN_PREFIXES) and not path.startswith(TOKEN_EXEMPT):
        token, kind = settings.TRON_API_TOKEN, "api"
    elif path.startswith(CHAT_PREFIXES):
        token, kind = settings.TRON_CHAT_API_KEY, "chat"
    else:
        return None
    return kind if token and not _bearer_ok(request, token) else None


def _is_staff(user) -> bool:
    # An operator logged into the admin may browse the API docs and JSON in the same browser.
    return bool(user is not None and user.is_authenticated and user.is_staff)


def _unauthorized(kind: str):
    setting = "TRON_API_TOKEN" if kind == "api" else "TRON_CHAT_API_KEY"
    return error_response(
        401,
        f"Missing or incorrect API key: send 'Authorization: Bearer <{setting}>'.",
        type_="invalid_request_error",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


class _HybridMiddleware:
    """Base for middleware that runs natively in both sync and async stacks."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)


class ApiTokenMiddleware(_HybridMiddleware):
    """When TRON_API_TOKEN is set, /api/* and /internal/* need it (or a staff session); when
    TRON_CHAT_API_KEY is set, the chat API needs it. Goes after AuthenticationMiddleware."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        missing = _missing_token(request)
        if missing == "chat" or (missing == "api" and not _is_staff(getattr(request, "user", None))):
            return _unauthorized(missing)
        return self.get_response(request)

    async def _acall(self, request):
        missing = _missing_token(request)
        if missing == "chat":
            return _unauthorized(missing)
        if missing == "api":
            user = await request.auser() if hasattr(request, "auser") else None
            if not _is_staff(user):
                return _unauthorized(missing)
        return await self.get_response(request)


NUL_IN_URL = "The URL must not contain NUL characters (%00)."


def _nul_in_url(request) -> bool:
    """A NUL in the path (decoded) or the query string (as sent: %00, or the byte itself). No database
    compares text with one (PostgreSQL refuses it), and no URL of this server has one: refused here,
    every view and filter is spared the check."""
    query = request.META.get("QUERY_STRING", "")
    return "\x00" in request.path_info or "%00" in query or "\x00" in query


class ApiEdgeMiddleware(_HybridMiddleware):
    """Outermost: refuses a URL with a NUL character (400), answers CORS preflight, adds CORS headers,
    and turns any error on a JSON path into the envelope (Django's own 404/405/500 pages included, even
    with DEBUG on)."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        early = self.before(request)
        return self.after(request, early or self.get_response(request))

    async def _acall(self, request):
        early = self.before(request)
        return self.after(request, early or await self.get_response(request))

    def before(self, request):
        path = request.path_info
        if _nul_in_url(request):
            if path.startswith(JSON_PREFIXES):
                return error_response(400, NUL_IN_URL)
            return HttpResponseBadRequest(NUL_IN_URL, content_type="text/plain; charset=utf-8")
        if request.method == "OPTIONS" and path.startswith(CORS_PREFIXES):
            # CORS preflight: browsers send no Authorization here, so answer before the token check.
            return HttpResponse(status=204)
        return None

    def after(self, request, response):
        path = request.path_info
        if path.startswith(JSON_PREFIXES) and response.status_code >= 400:
            content_type = response.get("Content-Type", "")
            if not content_type.startswith("application/json"):
                response = error_response(response.status_code, headers=_kept_headers(response))
        if path.startswith(CORS_PREFIXES):
            for key, value in CORS_HEADERS.items():
                response.setdefault(key, value)
        return response

    def process_exception(self, request, exception):
        if not request.path_info.startswith(JSON_PREFIXES):
            return None
        if isinstance(exception, RequestDataTooBig):
            return body_too_large_response()
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(500, "The server hit an unexpected error; it has been logged.")


def body_too_large(path: str) -> HttpResponse:
    """The 413 for a body over TRON_MAX_BODY_BYTES (tron_site/asgi.py sends it before the body is read):
    in the envelope on a JSON path, with the CORS headers where browsers may call."""
    if not path.startswith(JSON_PREFIXES):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than {limit:,} bytes (TRON_MAX_BODY_BYTES)."
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
    response = body_too_large_response()
    if path.startswith(CORS_PREFIXES):
        for key, value in CORS_HEADERS.items():
            response[key] = value
    return response


def _kept_headers(response):
    return {
        key: response[key] for key in ("Allow", "WWW-Authenticate", "Retry-After") if response.has_header(key)
    }


# What the chat paths need, outermost first, served by their own handler in tron_site/asgi.py (no
# sessions, CSRF, users): the same classes settings.MIDDLEWARE lists, in the same order.
LEAN_MIDDLEWARE = [ApiEdgeMiddleware, ApiTokenMiddleware]
