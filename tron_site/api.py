"""The NinjaAPI instances: the control-panel API at /api/, internal endpoints at /internal/, and the
OpenAI-compatible chat API at the root.

Every error leaves here in one envelope, OpenAI's (integrations/errors.py, owned by the chat API). The
two OpenAPI documents (/api/openapi.json, /v1/openapi.json) list, for each operation, the errors it
gives in that envelope. The internal endpoints and the webhooks serve no document: they are for Caddy,
the life loop's operators and VAPI, and are described in the README.
"""

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from agents import metrics as tron_metrics
from agents.api import router as control_router
from integrations.caddy import router as caddy_router
from integrations.chat_api import REQUEST_BODY_SCHEMAS
from integrations.chat_api import router as chat_router
from integrations.error_envelope import body_too_large_response, error_response
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


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "e.g. invalid_request_error, not_found_error"},
                "param": {"type": ["string", "null"], "description": "The field at fault, if one is."},
                "code": {"type": ["string", "null"], "description": "e.g. message_too_long"},
            },
        }
    },
}

ERRORS = {
    400: "The request is invalid: `param` names the field.",
    401: "TRON_API_TOKEN (for /api/*) or TRON_CHAT_API_KEY (for the chat API) is set and the request does "
    "not carry it as `Authorization: Bearer <key>`.",
    404: "No such process, model or persona.",
    409: "Another turn of the same caller is running (`conversation_busy`): retry.",
    413: "A message longer than TRON_MAX_MESSAGE_CHARS (`message_too_long`), more messages than "
    "TRON_MAX_MESSAGES (`too_many_messages`), or a body over TRON_MAX_BODY_BYTES (16 MiB).",
    429: "The persona has spent its daily budget (`insufficient_quota`).",
    502: "The model's upstream failed or could not be reached (`upstream_error`).",
    503: "The model is overloaded (see Retry-After), too many processes run (`server_overloaded`), or no "
    "persona is configured.",
    504: "The model was silent for TRON_LLM_TIMEOUT seconds.",
}
CHAT_TURN_ERRORS = (400, 401, 409, 413, 429, 502, 503, 504)
# The internal endpoints, documented with the control panel's (ControlPanelAPI). The trigger answers a
# request without `activity` with the seed's help (tron-api.md), other bad requests in the envelope.
TRIGGER_HELP_SCHEMA = {
    "type": "object",
    "required": ["error", "activities", "personas", "examples"],
    "properties": {
        "error": {"type": "string"},
        "activities": {"type": "array", "items": {"type": "string"}},
        "personas": {"type": "array", "items": {"type": "string"}},
        "examples": {"type": "array", "items": {"type": "string"}},
    },
}
INTERNAL_ERRORS = {
    "/internal/life/trigger": {
        "400": {
            "description": "No `activity` (the seed's help: what to send), or an unknown activity or persona.",
            "content": {
                "application/json": {
                    "schema": {"oneOf": [{"$ref": "#/components/schemas/Error"}, TRIGGER_HELP_SCHEMA]}
                }
            },
        },
        "401": {
            "description": ERRORS[401],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
}


class DocumentedAPI(NinjaAPI):
    """A NinjaAPI whose OpenAPI document lists each operation's errors, in the envelope's schema, and
    carries `schemas`: components that operations documented by hand (`openapi_extra`) refer to."""

    def __init__(self, *args, errors: dict[str, tuple[int, ...]], schemas: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors, self.schemas = errors, schemas or {}

    def get_openapi_schema(self, **kwargs):
        document = super().get_openapi_schema(**kwargs)
        document["components"].setdefault("schemas", {}).update({"Error": ERROR_SCHEMA, **self.schemas})
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, operations in document["paths"].items():
            for operation in operations.values():
                for status in self.errors[path]:
                    operation["responses"][str(status)] = {"description": ERRORS[status], "content": error}
        return document


class ControlPanelAPI(DocumentedAPI):
    """/api/, whose docs (/api/docs) also describe what an operator calls beside it: the internal
    endpoints (the life-loop trigger, caddy-ask) and /metrics. Extending the generated schema this way is
    what django-ninja's maintainer suggests (vitalik/django-ninja#169)."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        internal = internal_api.get_openapi_schema(path_params=path_params)
        for path, operations in internal["paths"].items():
            for method, shared in operations.items():
                # One Ninja operation may serve several methods: each gets a copy with an id of its own.
                responses = {**shared["responses"], **INTERNAL_ERRORS.get(path, {})}
                operations[method] = {
                    **shared,
                    "responses": responses,
                    "operationId": f"{shared['operationId']}_{method}",
                }
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
            "401": {
                "description": ERRORS[401],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
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
        errors={
            "/api/status": (401,),
            "/api/processes": (400, 401),
            "/api/processes/{process_id}": (401, 404),
            "/api/spawn-tree": (400, 401),
            "/api/sessions": (400, 401),
        },
    )
)
api.add_router("/", control_router)

internal_api = install_error_handlers(
    NinjaAPI(title="Tron internal", urls_namespace="internal", docs_url=None, openapi_url=None)
)
internal_api.add_router("/", caddy_router)
internal_api.add_router("/", life_router)

# OpenAI-compatible chat at the site root (/chat/completions, /v1/…): its clients expect those paths.
chat_api = install_error_handlers(
    DocumentedAPI(
        title="Tron chat API (OpenAI-compatible)",
        version="1.0.0",
        urls_namespace="chat",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        errors={
            "/chat/completions": CHAT_TURN_ERRORS,
            "/v1/chat/completions": CHAT_TURN_ERRORS,
            "/v1/elevenlabs-llm": CHAT_TURN_ERRORS,
            "/v1/elevenlabs-llm/chat/completions": CHAT_TURN_ERRORS,
            "/v1/models": (401,),
            "/v1/models/{model_id}": (401, 404),
        },
        schemas=REQUEST_BODY_SCHEMAS,
    )
)
chat_api.add_router("", chat_router)

# Webhooks the voice and chat platforms call (/vapi/events), at the paths they are configured with.
webhooks_api = install_error_handlers(
    NinjaAPI(title="Tron webhooks", urls_namespace="webhooks", docs_url=None, openapi_url=None)
)
webhooks_api.add_router("", vapi_router)
