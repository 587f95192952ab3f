"""HTTP access to one Evolution API server: the client, the error mapping and answer checks.

Evolution answers errors as ``{"status", "error", "response": {"message": [...] | "..."}}``
(evolution.md §0) and some failures as HTTP 200 ``{"error": true, "message": "[object Object]"}``
(§1.2, §1.5). Both become ``ProviderError`` subclasses here, with a translatable message and
Evolution's own words in ``provider_code``/``details``.
"""

import json
from collections.abc import Callable
from typing import Any

import requests
from django.utils.translation import gettext_lazy as _

from instances.providers.exceptions import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from instances.providers.http import ProviderHTTPClient

PROVIDER = "evolution"
_DETAILS_LIMIT = 500

NOT_ON_WHATSAPP = _("The number is not on WhatsApp")


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_messages(body: Any) -> list[Any]:
    """The items of ``response.message`` (or a top-level ``message``), as a list."""
    if not isinstance(body, dict):
        return []
    inner = body.get("response")
    message = inner.get("message") if isinstance(inner, dict) else body.get("message")
    if message is None:
        return []
    return message if isinstance(message, list) else [message]


def _describe(items: list[Any]) -> str:
    parts = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
        else:
            parts.append(json.dumps(item, ensure_ascii=False, sort_keys=True, default=str))
    return "; ".join(parts)


def _not_on_whatsapp(items: list[Any]) -> bool:
    return any(isinstance(item, dict) and item.get("exists") is False for item in items)


def make_error_mapper(secret: str) -> Callable[[requests.Response], ProviderError]:
    """``map_error`` for ``ProviderHTTPClient``; ``secret`` is scrubbed from what Evolution echoes."""

    def scrub(text: str | None) -> str | None:
        if not text:
            return None
        if secret:
            text = text.replace(secret, "***")
        return text[:_DETAILS_LIMIT]

    def map_error(response: requests.Response) -> ProviderError:
        status = response.status_code
        body = _body(response)
        items = error_messages(body)
        details = scrub(_describe(items) if items else (response.text or "")[:_DETAILS_LIMIT])
        code = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
        kwargs = {"provider_code": code, "http_status": status, "details": details}
        if status == 401:
            return ProviderAuthError(**kwargs)
        if status == 403:
            if "already in use" in (details or "").lower():
                return ProviderConflict(**kwargs)
            return ProviderAuthError(**kwargs)
        if status == 404:
            return ProviderNotFound(**kwargs)
        if status == 429:
            return ProviderRateLimited(retry_after=_retry_after(response), **kwargs)
        if status >= 500:
            return ProviderUnavailable(**kwargs)
        if _not_on_whatsapp(items):
            return ProviderRejected(NOT_ON_WHATSAPP, **kwargs)
        return ProviderRejected(**kwargs)

    return map_error


def build_http(*, base_url: str, api_token: str) -> ProviderHTTPClient:
    return ProviderHTTPClient(
        provider=PROVIDER,
        base_url=base_url,
        headers={"apikey": api_token},
        map_error=make_error_mapper(api_token),
    )


def raise_for_quirk(answer: Any, message) -> None:
    """Evolution catches some failures and answers them with HTTP 200 ``{"error": true, ...}``."""
    if isinstance(answer, dict) and answer.get("error") is True:
        detail = answer.get("message")
        raise ProviderRejected(
            message,
            http_status=200,
            details=(detail if isinstance(detail, str) else json.dumps(detail, default=str))[:_DETAILS_LIMIT],
        )


def expect_dict(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ProviderBadResponse(details=f"expected an object, got {type(answer).__name__}")
    return answer


def expect_list(answer: Any) -> list[Any]:
    if not isinstance(answer, list):
        raise ProviderBadResponse(details=f"expected an array, got {type(answer).__name__}")
    return answer
