"""OpenAI's error envelope, `{"error": {message, type, param, code}}`: the chat API's protocol, so it
lives with the chat API. The project answers every other JSON endpoint's errors in it too, so a client
meets one shape everywhere."""

from http import HTTPStatus

from django.conf import settings
from django.http import JsonResponse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "method_not_allowed",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


# Errors whose type is their own, as OpenAI names them, whatever their status maps to.
CODE_TYPES = {"insufficient_quota": "insufficient_quota"}  # a persona's daily budget is spent (429)


def error_type_for(status: int, code: str | None = None) -> str:
    if code in CODE_TYPES:
        return CODE_TYPES[code]
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(
    status: int, message: str | None = None, *, type_: str | None = None, param=None, code=None, headers=None
) -> JsonResponse:
    if message is None:
        message = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return JsonResponse(
        error_body(message, type_ or error_type_for(status, code), param, code),
        status=status,
        headers=headers,
    )


def body_too_large_response() -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(413, f"The request body is larger than {limit:,} bytes (TRON_MAX_BODY_BYTES).")
