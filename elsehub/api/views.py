import logging
from functools import lru_cache

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from elsehub.api.errors import error_response
from elsehub.api.fields import format_timestamp

logger = logging.getLogger(__name__)


@csrf_exempt  # an unknown API path is a 404 for every method, never a CSRF page
def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    return error_response(
        404, _("Route %(method)s %(path)s not found") % {"method": request.method, "path": request.path}
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        logger.warning("health.database_unavailable", exc_info=True)
        return False


@lru_cache(maxsize=4)
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def _redis_ok() -> bool:
    try:
        return bool(_redis_client(settings.REDIS_URL).ping())
    except redis.RedisError:
        logger.warning("health.redis_unavailable", exc_info=True)
        return False


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness and dependencies; never rate limited, never authenticated."""
    failing = []
    if not _database_ok():
        failing.append("database")
    if settings.REDIS_URL and not _redis_ok():
        failing.append("redis")
    if failing:
        return error_response(503, _("Unavailable dependency: %(names)s") % {"names": ", ".join(failing)})
    return JsonResponse({"status": "ok", "timestamp": format_timestamp(timezone.now())})
