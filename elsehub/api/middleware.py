"""API-wide middleware: the contract's rate limit and a JSON body for unhandled errors."""

import logging
import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django_ratelimit.core import _get_ip, get_usage  # _get_ip: the package's proxy-aware address
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from elsehub.api.errors import error_response

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The caller's address, honouring ``RATELIMIT_IP_META_KEY`` behind a proxy."""
    return _get_ip(request)


def _is_limited_path(path: str) -> bool:
    return path.startswith("/api/") and not path.startswith(settings.RATE_LIMIT_EXEMPT_PREFIXES)


def _rate_key(group: str, request: HttpRequest) -> str:
    """Per user when the request carries a valid access token, per client IP otherwise.

    The token is only decoded and verified here (no database query); authentication proper
    happens in the view.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _sep, raw = header.partition(" ")
    if scheme.lower() == "bearer" and raw:
        try:
            token = AccessToken(raw.strip())
        except TokenError:
            pass  # an invalid token counts against the address it came from
        else:
            subject = token.get(settings.SIMPLE_JWT["USER_ID_CLAIM"])
            if subject:
                return f"user:{subject}"
    return f"ip:{client_ip(request)}"


class ApiRateLimitMiddleware:
    """``RATE_LIMIT_MAX`` requests per ``RATE_LIMIT_TTL`` seconds, with ``X-RateLimit-*`` headers.

    Counters live in the default cache, which is Redis when ``REDIS_URL`` is set, so every web
    process shares them. Webhooks are exempt: provider traffic must never be dropped.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_limited_path(request.path):
            return self.get_response(request)
        limit = settings.RATE_LIMIT_MAX
        try:
            usage = get_usage(
                request, group="api", key=_rate_key, rate=f"{limit}/{settings.RATE_LIMIT_TTL}s", increment=True
            )
        except Exception:
            usage = None
            logger.warning("api.ratelimit.cache_unavailable", exc_info=True)
        if usage is None:
            # Fail open: a cache outage must not take the whole API down (health reports it).
            return self.get_response(request)
        # django-ratelimit's window still includes its last second (time_left == 0): the next
        # window starts one second after that, so a client waiting exactly this long gets through.
        reset = max(1, math.ceil(usage["time_left"]) + 1)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - usage["count"])),
            "X-RateLimit-Reset": str(reset),
        }
        if usage["should_limit"]:
            headers["Retry-After"] = str(reset)
            message = _("Too many requests. Try again in %(seconds)s seconds.") % {"seconds": reset}
            return error_response(429, message, headers)
        response = self.get_response(request)
        for name, value in headers.items():
            response[name] = value
        return response


class ApiErrorMiddleware:
    """An unhandled exception on /api/ becomes a JSON 500: never an HTML page or a traceback."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        logger.exception("api.unhandled_exception", extra={"path": request.path, "method": request.method})
        return error_response(500, _("Internal server error"))
