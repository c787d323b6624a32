"""The NinjaAPI instances: the control-panel API at /api/, internal endpoints at /internal/, and the
OpenAI-compatible chat API at the root.

Every error leaves here in one envelope, OpenAI's (integrations/errors.py, owned by the chat API).
"""

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from agents import metrics as tron_metrics
from agents.api import router as control_router
from integrations.caddy import router as caddy_router
from integrations.chat_api import router as chat_router
from integrations.errors import body_too_large_response, error_response
from integrations.vapi_api import router as vapi_router
from lifeloop.api import router as life_router


def _param_of(loc) -> str | None:
    # Ninja locations look like ("query", "limit") or ("body", "payload", "messages", 0, "content").
    parts = [str(p) for p in loc if p not in ("query", "body", "path", "header", "payload", "filters")]
    return ".".join(parts) or None


def validation_error(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    param = _param_of(first.get("loc", ()))
    message = first.get("msg", "Invalid request")
    return error_response(400, f"{param}: {message}" if param else message, param=param)


def install_error_handlers(api: NinjaAPI) -> NinjaAPI:
    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(HttpError, lambda request, exc: error_response(exc.status_code, str(exc)))
    api.add_exception_handler(Http404, lambda request, exc: error_response(404, str(exc) or "Not found"))
    api.add_exception_handler(AuthenticationError, lambda request, exc: error_response(401, "Unauthorized"))
    # Ninja would otherwise answer it with a 500 (its catch-all) whenever DEBUG is on.
    api.add_exception_handler(RequestDataTooBig, lambda request, exc: body_too_large_response())
    return api


class ControlPanelAPI(NinjaAPI):
    """/api/, whose docs (/api/docs) also describe what an operator calls beside it: the internal
    endpoints (the life-loop trigger, caddy-ask) and /metrics. Extending the generated schema this way is
    what django-ninja's maintainer suggests (vitalik/django-ninja#169)."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        internal = internal_api.get_openapi_schema(path_params=path_params)
        schema["paths"].update(internal["paths"])
        for name, component in internal.get("components", {}).get("schemas", {}).items():
            schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, component)
        schema["paths"]["/metrics"] = METRICS_OPERATION
        return schema


METRICS_OPERATION = {
    "get": {
        "operationId": "tron_site_views_metrics",
        "summary": "Prometheus metrics",
        "description": "Prometheus' text format, summed over every process of the machine (docs/api.md lists "
        "the metrics). Behind TRON_API_TOKEN when it is set.",
        "tags": ["monitoring"],
        "responses": {
            "200": {
                "description": "The metrics",
                "content": {tron_metrics.CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            },
            "401": {"description": "TRON_API_TOKEN is set and the request does not carry it"},
        },
    }
}

api = install_error_handlers(
    ControlPanelAPI(
        title="Tron control panel API",
        version="1.0.0",
        description="Processes, caller sessions and system status; the life-loop trigger and /metrics. "
        "See the README for authentication.",
        urls_namespace="api",
    )
)
api.add_router("/", control_router)

internal_api = install_error_handlers(
    NinjaAPI(title="Tron internal", urls_namespace="internal", docs_url=None)
)
internal_api.add_router("/", caddy_router)
internal_api.add_router("/", life_router)

# OpenAI-compatible chat at the site root (/chat/completions, /v1/…): its clients expect those paths.
chat_api = install_error_handlers(
    NinjaAPI(
        title="Tron chat API (OpenAI-compatible)",
        version="1.0.0",
        urls_namespace="chat",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
    )
)
chat_api.add_router("", chat_router)

# Webhooks the voice and chat platforms call (/vapi/events), at the paths they are configured with.
webhooks_api = install_error_handlers(
    NinjaAPI(title="Tron webhooks", urls_namespace="webhooks", docs_url=None, openapi_url=None)
)
webhooks_api.add_router("", vapi_router)
