"""Elsehub settings, read from environment variables (the README's table lists every one).

The embedded default needs no server: SQLite, the in-memory channel layer, a local-memory cache
and Celery over the filesystem. Setting DATABASE_URL and REDIS_URL switches to PostgreSQL and
Redis for production.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from elsehub.env import env_bool, env_duration, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Embedded state (SQLite file, Celery's filesystem queue, beat schedule) lives here.
DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / "var")

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random string "
            "(or DEBUG=true for a development run with a built-in key)."
        )
    SECRET_KEY = "elsehub-development-only-key-never-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
APP_URL = env_str("APP_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [APP_URL])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "contacts",
    "instances",
    "conversations",
    "campaigns",
    "reports",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "elsehub.api.middleware.ApiRateLimitMiddleware",
    "elsehub.api.middleware.ApiErrorMiddleware",
]

ROOT_URLCONF = "elsehub.urls"
WSGI_APPLICATION = "elsehub.wsgi.application"
ASGI_APPLICATION = "elsehub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# Database
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
# ------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "elsehub.sqlite3",
            # WAL, IMMEDIATE transactions and a busy timeout let the web process and the
            # Celery worker write at once without "database is locked".
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------------------
# Redis: cache, rate-limit counters, channel layer, Celery broker
# ------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "elsehub"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# ------------------------------------------------------------------------------
# Celery
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ------------------------------------------------------------------------------
if REDIS_URL:
    # May point at another Redis database (or server) than the cache: flushing a cache must never
    # drop queued tasks.
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    # The filesystem transport needs no server yet works across processes, so the embedded
    # default still runs the worker and beat as separate processes.
    _queue_dir = DATA_DIR / "celery" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(DATA_DIR / "celery" / "processed"),
        "control_folder": str(DATA_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A few tasks in hand per process hide the broker round trip; acks_late keeps them safe.
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TIMEZONE = "UTC"
# Celery's Django fixup closes the database connection before and after every task unless this is
# set (a reconnect per webhook event); elsehub.celery closes only broken or expired connections.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1_000_000)
CELERY_BEAT_SCHEDULE = {
    "accounts.flush_expired_tokens": {
        "task": "accounts.flush_expired_tokens",
        "schedule": timedelta(hours=6),
    },
    # Sweepers: whatever a lost task left behind (an unprocessed webhook, an unsent message).
    "webhooks.sweep_pending_events": {
        "task": "webhooks.sweep_pending_events",
        "schedule": timedelta(seconds=30),
    },
    "conversations.sweep_outbox": {
        "task": "conversations.sweep_outbox",
        "schedule": timedelta(seconds=30),
    },
    "conversations.forget_early_statuses": {
        "task": "conversations.forget_early_statuses",
        "schedule": timedelta(hours=1),
    },
}

# ------------------------------------------------------------------------------
# Accounts and authentication
# ------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
ALLOW_USER_REGISTRATION = env_bool("ALLOW_USER_REGISTRATION", False)

JWT_ACCESS_TOKEN_TTL, JWT_ACCESS_TOKEN_TTL_LABEL = env_duration("JWT_ACCESS_TOKEN_TTL", "900s")
JWT_REFRESH_TOKEN_TTL, JWT_REFRESH_TOKEN_TTL_LABEL = env_duration("JWT_REFRESH_TOKEN_TTL", "7d")
# https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT_ACCESS_TOKEN_TTL),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=JWT_REFRESH_TOKEN_TTL),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": env_str("JWT_SECRET") or SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    # Tokens carry a hash of the password hash: changing the password ends every session.
    "CHECK_REVOKE_TOKEN": True,
    "REVOKE_TOKEN_CLAIM": "pwh",
}

# Brute force: failures counted per email and per client IP within a window.
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 900)
LOGIN_SLOWDOWN_AFTER = env_int("LOGIN_SLOWDOWN_AFTER", 3)
LOGIN_SLOWDOWN_SECONDS = float(env_str("LOGIN_SLOWDOWN_SECONDS", "1.0"))
LOGIN_LOCK_AFTER_EMAIL = env_int("LOGIN_LOCK_AFTER_EMAIL", 10)
LOGIN_LOCK_AFTER_IP = env_int("LOGIN_LOCK_AFTER_IP", 50)

# ------------------------------------------------------------------------------
# REST API
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["elsehub.api.permissions.RolePermission"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "elsehub.api.pagination.PagePagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "elsehub.api.schema.RoleAwareAutoSchema",
    "EXCEPTION_HANDLER": "elsehub.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
}

# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Elsehub API",
    "DESCRIPTION": _("WhatsApp customer-service console: REST API for operators, supervisors and external systems."),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Several serializers have a "status" field with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "ConnectionStatusEnum": "instances.models.ConnectionStatus",
        "ChatStatusEnum": "conversations.models.ChatStatus",
        "MessageStatusEnum": "conversations.models.MessageStatus",
        "RoleEnum": "accounts.models.Role",
        "ProviderEnum": "instances.models.Provider",
    },
}

# Global API rate limit (contract section 1): per user, per IP when anonymous.
RATE_LIMIT_TTL = env_int("RATE_LIMIT_TTL", 60)
RATE_LIMIT_MAX = env_int("RATE_LIMIT_MAX", 30)
# Provider webhooks must never be throttled: their traffic is not ours to drop.
RATE_LIMIT_EXEMPT_PREFIXES = ("/api/webhooks/",)
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True
# Behind a reverse proxy, set to the header that carries the client's address (e.g. X-Forwarded-For).
RATELIMIT_IP_META_KEY = env_str("RATELIMIT_IP_META_KEY") or None

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_EXPOSE_HEADERS = ["X-Total-Count", "Link", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]

# ------------------------------------------------------------------------------
# Internationalisation: Brazilian Portuguese first, English available.
# ------------------------------------------------------------------------------
LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Brazilian Portuguese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"

# ------------------------------------------------------------------------------
# Static files
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# ------------------------------------------------------------------------------
# Security (production)
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("BEHIND_TLS_PROXY", False)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# ------------------------------------------------------------------------------
# Logging: one line per record; never log tokens, full phone numbers or message bodies.
# ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# ------------------------------------------------------------------------------
# WhatsApp providers
# ------------------------------------------------------------------------------
# Fernet key(s) for credentials at rest; comma-separated to rotate (the first encrypts).
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY")
DEFAULT_PHONE_REGION = env_str("DEFAULT_PHONE_REGION", "BR").upper()
# https://developers.facebook.com/docs/graph-api/guides/versioning
META_GRAPH_API_URL = env_str("META_GRAPH_API_URL", "https://graph.facebook.com/v23.0").rstrip("/")
PROVIDER_CONNECT_TIMEOUT = float(env_str("PROVIDER_CONNECT_TIMEOUT", "5"))
PROVIDER_READ_TIMEOUT = float(env_str("PROVIDER_READ_TIMEOUT", "30"))
PROVIDER_MAX_ATTEMPTS = env_int("PROVIDER_MAX_ATTEMPTS", 3)
PROVIDER_RETRY_BACKOFF = float(env_str("PROVIDER_RETRY_BACKOFF", "0.5"))
PROVIDER_RETRY_MAX_WAIT = float(env_str("PROVIDER_RETRY_MAX_WAIT", "10"))
# Meta webhooks: the app secret signs every delivery (X-Hub-Signature-256); the verify token
# answers the subscription check. An instance's own appSecret / verifyToken take precedence.
META_APP_SECRET = env_str("META_APP_SECRET")
META_VERIFY_TOKEN = env_str("META_VERIFY_TOKEN")
# Webhook events: attempts before an event is left FAILED for a person to replay from the admin.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
# Outbox: attempts on transient provider errors, first backoff, and how long a pending message
# may wait before the sweeper assumes its task was lost.
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 5)
OUTBOX_RETRY_BASE_SECONDS = env_int("OUTBOX_RETRY_BASE_SECONDS", 5)
OUTBOX_STALE_SECONDS = env_int("OUTBOX_STALE_SECONDS", 120)
# Seconds a web process remembers which instance an Evolution webhook secret belongs to.
WEBHOOK_SECRET_CACHE_SECONDS = float(env_str("WEBHOOK_SECRET_CACHE_SECONDS", "10"))
# Seconds a stored webhook event may wait for its task before the sweeper queues it again.
WEBHOOK_STALE_SECONDS = env_int("WEBHOOK_STALE_SECONDS", 60)
# Stored events are applied by drain tasks, a batch per transaction, per number and partition:
# the events of one chat share a partition (applied in arrival order) and the partitions of a
# number are drained in parallel.
WEBHOOK_PARTITIONS = max(1, env_int("WEBHOOK_PARTITIONS", 2))
WEBHOOK_BATCH_SIZE = max(1, env_int("WEBHOOK_BATCH_SIZE", 100))
# One queued drain per number and partition at a time instead of a task per event, noted in the
# cache: only where every process shares it (Redis).
WEBHOOK_COALESCE_DRAINS = env_bool("WEBHOOK_COALESCE_DRAINS", bool(REDIS_URL))
WEBHOOK_DRAIN_DELAY = float(env_str("WEBHOOK_DRAIN_DELAY", "0.1"))
