"""Graph API transport for the Meta adapter, and the translation of Graph errors into ``ProviderError``.

Every Graph failure answers the same envelope::

    {"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}, "fbtrace_id"}}

The code decides the exception; Meta's code goes to ``provider_code`` and its own words to
``details``. Codes: https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/
"""

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from instances.providers.exceptions import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from instances.providers.http import ProviderHTTPClient

logger = logging.getLogger(__name__)

DEFAULT_GRAPH_API_URL = "https://graph.facebook.com/v23.0"

# 0/10/200-299: Graph's generic auth and permission errors; 131005: access denied for WhatsApp.
AUTH_CODES = frozenset({0, 10, 190, 131005, *range(200, 300)})
# 4/17/32/613: Graph's app, user and page call limits; the rest are WhatsApp throughput limits.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
# 1/2: Graph's "unknown error" and "service temporarily unavailable".
UNAVAILABLE_CODES = frozenset({1, 2, 131000, 131016, 131057})
INVALID_PARAMETER_CODES = frozenset({100, 131008, 131009})
# Graph's subcode for "Unsupported get/post request. Object with ID ... does not exist".
OBJECT_NOT_FOUND_SUBCODE = 33

WINDOW_CLOSED_CODE = 131047
TEMPLATE_CODES = range(132000, 133000)

REJECTION_MESSAGES = {
    WINDOW_CLOSED_CODE: _(
        "More than 24 hours have passed since the customer's last message, so the 24-hour customer service "
        "window is closed: only an approved template message can be sent now"
    ),
    131026: _(
        "The number cannot receive messages: it may not be on WhatsApp, may not have accepted the current terms "
        "of service, or may be using an outdated WhatsApp version"
    ),
    131021: _("The recipient is the sending number itself"),
    131030: _("The recipient is not in the allowed list of this test number; add it in the Meta dashboard"),
    131031: _("The WhatsApp Business account is locked by Meta"),
    131042: _("The WhatsApp Business account has a payment or eligibility problem"),
    131049: _("Meta did not deliver the message to preserve user engagement (marketing limit for this user)"),
    131050: _("The customer stopped receiving marketing messages from this business"),
    131051: _("This message type is not supported by WhatsApp"),
    131052: _("WhatsApp could not download the media sent by the customer"),
    131053: _("WhatsApp could not use the media: check its format, size and URL"),
    130472: _("The customer's number is part of a Meta experiment and did not receive this marketing message"),
    133016: _("Too many registration attempts for this number; Meta blocked it for 72 hours"),
    368: _("The WhatsApp Business account is temporarily blocked for policy violations"),
}

TEMPLATE_PROBLEMS = {
    132000: _("the number of parameters does not match the template"),
    132001: _("the template does not exist in this language or is not approved yet"),
    132005: _("the text with the parameters filled in is too long"),
    132007: _("the content violates WhatsApp's formatting policy"),
    132012: _("a parameter does not have the format the template expects"),
    132015: _("the template is paused because of its low quality"),
    132016: _("the template is disabled because of its low quality"),
}


def is_template_code(code: str | int | None) -> bool:
    number = _as_int(code)
    return number is not None and number in TEMPLATE_CODES


def template_problem(code: str | int | None) -> str:
    """What a 132xxx error means, as a phrase to put after the template's name."""
    problem = TEMPLATE_PROBLEMS.get(_as_int(code))  # type: ignore[arg-type]
    return str(problem or _("Meta refused the template parameters"))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _graph_error(response: requests.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def _details(error: Mapping[str, Any]) -> str | None:
    parts = []
    for text in (error.get("message"), error.get("error_user_msg")):
        if isinstance(text, str) and text.strip():
            parts.append(text.strip())
    error_data = error.get("error_data")
    # error_data is an object in WhatsApp errors but a plain string in some older Graph errors.
    data_details = error_data.get("details") if isinstance(error_data, Mapping) else error_data
    if isinstance(data_details, str) and data_details.strip():
        parts.append(data_details.strip())
    return " | ".join(dict.fromkeys(parts))[:1000] or None


def map_graph_error(response: requests.Response) -> ProviderError:
    """One Graph error answer -> the ``ProviderError`` that says what to do about it."""
    status = response.status_code
    error = _graph_error(response)
    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    common = {"provider_code": code, "http_status": status, "details": _details(error)}
    logger.warning(
        "providers.meta.error",
        extra={"http_status": status, "code": code, "subcode": subcode, "fbtrace_id": error.get("fbtrace_id")},
    )

    if code in AUTH_CODES or status == 401:
        return ProviderAuthError(**common)
    if code in RATE_LIMIT_CODES or status == 429:
        return ProviderRateLimited(retry_after=_retry_after(response), **common)
    if code in UNAVAILABLE_CODES or status >= 500:
        return ProviderUnavailable(**common)
    if code in REJECTION_MESSAGES:
        return ProviderRejected(REJECTION_MESSAGES[code], **common)
    if is_template_code(code):
        problem = template_problem(code)
        return ProviderRejected(_("Template message refused: %(problem)s") % {"problem": problem}, **common)
    says_missing = subcode == OBJECT_NOT_FOUND_SUBCODE or "does not exist" in message.lower()
    if (says_missing and (code is None or code in INVALID_PARAMETER_CODES)) or (not error and status == 404):
        return ProviderNotFound(
            _("Meta says the requested object does not exist or the token cannot read it"), **common
        )
    if code in INVALID_PARAMETER_CODES:
        return ProviderRejected(_("Meta rejected a parameter of the request"), **common)
    return ProviderRejected(**common)


class GraphClient:
    """Graph calls with one number's bearer token; every answer must be a JSON object."""

    def __init__(self, *, access_token: str):
        base_url = getattr(settings, "META_GRAPH_API_URL", None) or DEFAULT_GRAPH_API_URL
        self.http = ProviderHTTPClient(
            provider="meta",
            base_url=base_url,
            headers={"Authorization": f"Bearer {access_token}"},
            map_error=map_graph_error,
        )

    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._object(self.http.request("GET", path, params=params))

    def post(self, path: str, *, json: Mapping[str, Any], idempotent: bool) -> dict[str, Any]:
        return self._object(self.http.request("POST", path, json=json, idempotent=idempotent))

    def post_multipart(self, path: str, *, data: Mapping[str, str], files: Mapping[str, Any]) -> dict[str, Any]:
        # An upload repeated after an ambiguous failure only leaves an unused media id (expires in 30 days).
        return self._object(self.http.request("POST", path, data=data, files=files, idempotent=True))

    def get_bytes(self, url: str) -> requests.Response:
        return self.http.request("GET", url, expect_json=False)

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` points at the configured Graph host (safe to send the token to)."""
        ours, theirs = urlsplit(self.http.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    @staticmethod
    def _object(answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise ProviderBadResponse(details=f"expected a JSON object, got {type(answer).__name__}")
        return answer
