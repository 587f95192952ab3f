"""Settings for the test suite.

PostgreSQL and Redis are used when they answer (DATABASE_URL / REDIS_URL, or the local defaults);
otherwise the embedded default. With CI=true an unreachable server is an error, never a fallback.
"""

import os
import socket
from urllib.parse import urlparse

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "elsehub-test-secret-key-not-for-production-0123456789")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_worker_index = int(_worker[2:]) if _worker.startswith("gw") and _worker[2:].isdigit() else 0

_pg_url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/elsehub"
_redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
_problems = []
if _reachable(_pg_url, 5432):
    os.environ["DATABASE_URL"] = _pg_url
else:
    os.environ.pop("DATABASE_URL", None)
    _problems.append(f"PostgreSQL at {_pg_url}")
if _reachable(_redis_url, 6379):
    # One Redis database per xdist worker, so that flushing the cache between tests is private.
    _base = _redis_url.rsplit("/", 1)[0] if urlparse(_redis_url).path.strip("/").isdigit() else _redis_url.rstrip("/")
    # Cache and channel layer in databases 1-7, the Celery broker in 8-15: the per-test cache flush
    # must not drop queued tasks.
    os.environ["REDIS_URL"] = f"{_base}/{1 + _worker_index % 7}"
    os.environ["CELERY_BROKER_URL"] = f"{_base}/{8 + _worker_index % 8}"
else:
    os.environ.pop("REDIS_URL", None)
    _problems.append(f"Redis at {_redis_url}")
if _CI and _problems:
    raise RuntimeError("CI=true but these are unreachable: " + ", ".join(_problems))

from elsehub.settings.base import *  # noqa: E402,F403
from elsehub.settings.base import DATABASES, REDIS_URL  # noqa: E402

TEST_BACKENDS = "{} + {}".format(
    "PostgreSQL" if DATABASES["default"]["ENGINE"].endswith("postgresql") else "SQLite",
    "Redis" if REDIS_URL else "in-memory layer/cache",
)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Tests that exercise the limiter set their own numbers; the rest must not trip it.
RATE_LIMIT_MAX = 100_000
LOGIN_SLOWDOWN_SECONDS = 0.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (whitenoise warns about a missing root)
WEBHOOK_SECRET_CACHE_SECONDS = 0.0  # tests delete instances and rotate secrets between requests
