"""The one HTTP client of the provider adapters.

One ``requests.Session`` per provider (connection pooling), connect/read timeouts, bounded retries
with exponential backoff on connection failures, timeouts, 5xx and 429 (honouring
``Retry-After``), none on other 4xx. Calls that must not be repeated blindly (sends) pass
``idempotent=False``: they are retried only when the provider certainly did not act (connection
refused, connect timeout, 429), never after a read timeout or a 5xx.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from django.conf import settings

from instances.providers.exceptions import (
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

logger = logging.getLogger(__name__)

_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()

ErrorMapper = Callable[[requests.Response], ProviderError]


def session_for(provider: str) -> requests.Session:
    with _sessions_lock:
        session = _sessions.get(provider)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=50, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[provider] = session
        return session


def _maybe_delivered(exc: requests.ConnectionError) -> bool:
    """Whether the request may have reached the provider before the connection failed.

    urllib3 reports a connection that broke while the request was written or the answer awaited
    (reset, or closed without an answer: ``RemoteDisconnected``) as ``ProtocolError``; failures to
    connect (refused, DNS, TLS handshake) come wrapped in ``MaxRetryError`` instead.
    """
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, urllib3.exceptions.ProtocolError) or "reset" in str(exc).lower()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class ProviderHTTPClient:
    def __init__(self, *, provider: str, base_url: str, headers: dict[str, str], map_error: ErrorMapper):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.map_error = map_error
        self.session = session_for(provider)
        self.connect_timeout = getattr(settings, "PROVIDER_CONNECT_TIMEOUT", 5.0)
        self.read_timeout = getattr(settings, "PROVIDER_READ_TIMEOUT", 30.0)
        self.max_attempts = max(1, getattr(settings, "PROVIDER_MAX_ATTEMPTS", 3))
        self.backoff = getattr(settings, "PROVIDER_RETRY_BACKOFF", 0.5)
        self.max_wait = getattr(settings, "PROVIDER_RETRY_MAX_WAIT", 10.0)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self, method: str, path: str, *, idempotent: bool = True, expect_json: bool = True, **kwargs: Any
    ) -> Any:
        """Send one call; returns the decoded JSON (or the raw response with ``expect_json=False``)."""
        url = self.url(path)
        headers = {**self.headers, **kwargs.pop("headers", {})}
        last_error: ProviderError | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait = self.backoff * 2 ** (attempt - 1)
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=(self.connect_timeout, self.read_timeout), **kwargs
                )
            except requests.ConnectTimeout as exc:
                last_error = ProviderConnectionError(details=type(exc).__name__)
            except requests.Timeout as exc:
                last_error = ProviderTimeout(details=type(exc).__name__)
                if not idempotent:
                    raise last_error from exc
            except requests.ConnectionError as exc:
                last_error = ProviderConnectionError(details=type(exc).__name__)
                # A connection reset or closed after the request was written is as ambiguous as a timeout.
                if not idempotent and _maybe_delivered(exc):
                    raise ProviderTimeout(details="connection lost after sending") from exc
            except requests.RequestException as exc:
                raise ProviderError(details=type(exc).__name__) from exc
            else:
                if response.status_code < 400:
                    return self._decode(response) if expect_json else response
                last_error = self.map_error(response)
                if response.status_code == 429 or isinstance(last_error, ProviderRateLimited):
                    retry_after = _retry_after(response)
                    if isinstance(last_error, ProviderRateLimited) and retry_after is not None:
                        last_error.retry_after = retry_after
                    wait = max(wait, retry_after or 0.0)
                elif response.status_code >= 500 and idempotent:
                    pass
                else:
                    raise last_error
            if attempt == self.max_attempts or not last_error.retryable or wait > self.max_wait:
                break
            logger.info(
                "providers.http.retry",
                extra={
                    "provider": self.provider,
                    "method": method,
                    "attempt": attempt,
                    "error": type(last_error).__name__,
                },
            )
            time.sleep(wait)
        assert last_error is not None
        raise last_error

    @staticmethod
    def _decode(response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderBadResponse(http_status=response.status_code, details=response.text[:200]) from None


def default_error(response: requests.Response) -> ProviderError:
    """Fallback mapping by status code, for adapters to refine."""
    if response.status_code == 429:
        return ProviderRateLimited(http_status=429, retry_after=_retry_after(response))
    if response.status_code >= 500:
        return ProviderUnavailable(http_status=response.status_code)
    return ProviderError(http_status=response.status_code)


__all__ = ["ProviderHTTPClient", "ProviderUnavailable", "default_error", "session_for"]
