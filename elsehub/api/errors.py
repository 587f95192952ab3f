"""The contract's error body, ``{"statusCode", "message", "error"}``, for every failure on /api/.

Two families reach the handler: domain refusals (``ApplicationError``) and everything DRF and
Django raise. Validation failures become 422 with a list of sentences naming the field.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from instances.providers.exceptions import ProviderAuthError, ProviderError

logger = logging.getLogger(__name__)

# Fixed reason phrases: Python's own differ between versions (422 became "Unprocessable Content").
STATUS_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ApplicationError(Exception):
    """A domain refusal: carries a stable code, an HTTP status and a translatable message."""

    status_code = 400

    def __init__(self, message: Any, *, code: str = "bad_request", status_code: int | None = None):
        super().__init__(str(message))
        self.message = message
        self.code = code
        if status_code is not None:
            self.status_code = status_code


class ConflictError(ApplicationError):
    status_code = 409


def error_body(status_code: int, message: Any) -> dict:
    return {
        "statusCode": status_code,
        "message": message,
        "error": STATUS_PHRASES.get(status_code, "Error"),
    }


def error_response(status_code: int, message: Any, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse(error_body(status_code, message), status=status_code)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def validation_messages(detail: Any, field: str = "") -> list[str]:
    """Flatten DRF's nested error detail into sentences that name the field."""
    if isinstance(detail, dict):
        messages: list[str] = []
        for key, value in detail.items():
            name = "" if key == api_settings.NON_FIELD_ERRORS_KEY else str(key)
            messages.extend(validation_messages(value, f"{field}.{name}" if field and name else field or name))
        return messages
    if isinstance(detail, list):
        messages = []
        for index, value in enumerate(detail):
            nested = isinstance(value, (dict, list))
            messages.extend(validation_messages(value, f"{field}[{index}]" if nested else field))
        return messages
    return [f"{field}: {detail}" if field else str(detail)]


# DRF's own wording is generic; these are the contract's sentences.
DEFAULT_MESSAGES = {
    401: gettext_lazy("Invalid or missing token"),
    403: gettext_lazy("User is not authorised to perform this action"),
    404: gettext_lazy("Resource not found"),
}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ProviderError):
        # Provider failures are the caller's to read (wrong token, unreachable server, name taken):
        # 401 for credentials the provider refused, 400 otherwise, never a 500.
        status_code = 401 if isinstance(exc, ProviderAuthError) else 400
        message = str(exc.message)
    elif isinstance(exc, ApplicationError):
        status_code = exc.status_code
        message = [str(item) for item in exc.message] if isinstance(exc.message, list) else str(exc.message)
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, exceptions.ParseError):
        status_code, message = 400, _("Malformed request body: the JSON could not be read")
    elif isinstance(exc, exceptions.ValidationError):
        status_code, message = 422, validation_messages(exc.detail)
    elif isinstance(exc, (Http404, exceptions.NotFound)):
        status_code, message = 404, str(DEFAULT_MESSAGES[404])
    elif isinstance(exc, (DjangoPermissionDenied, exceptions.PermissionDenied)):
        detail = getattr(exc, "detail", None)
        custom = detail is not None and detail != exceptions.PermissionDenied.default_detail
        status_code, message = 403, str(detail) if custom else str(DEFAULT_MESSAGES[403])
    elif isinstance(exc, exceptions.NotAuthenticated):
        status_code, message = 401, str(DEFAULT_MESSAGES[401])
    elif isinstance(exc, exceptions.Throttled):
        status_code, message = (
            429,
            _("Too many requests. Try again in %(seconds)s seconds.") % {"seconds": exc.wait or 1},
        )
        headers["Retry-After"] = str(int(exc.wait or 1))
    elif isinstance(exc, exceptions.MethodNotAllowed):
        status_code, message = 405, _("Method %(method)s is not allowed here") % {"method": context["request"].method}
    elif isinstance(exc, exceptions.APIException):
        status_code, message = exc.status_code, str(exc.detail)
    else:
        return None

    if isinstance(exc, exceptions.APIException):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    return Response(error_body(status_code, message), status=status_code, headers=headers)
