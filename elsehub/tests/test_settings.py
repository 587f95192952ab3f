import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from elsehub.env import env_bool, env_duration

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'options': settings.DATABASES['default'].get('OPTIONS', {}), 'cache': settings.CACHES['default']['BACKEND'], "
    "'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], 'broker': settings.CELERY_BROKER_URL, "
    "'language': settings.LANGUAGE_CODE, 'tz': settings.TIME_ZONE, 'debug': settings.DEBUG}))"
)


def run_settings(env_overrides: dict[str, str | None], tmp_path) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG"}
    }
    env.update({"DJANGO_SETTINGS_MODULE": "elsehub.settings.base", "DATA_DIR": str(tmp_path)})
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_settings_refuse_to_start_without_secret_key_outside_debug(tmp_path):
    result = run_settings({"DEBUG": "false"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_settings_embedded_default_needs_no_server(tmp_path):
    result = run_settings({"DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    # WAL, IMMEDIATE transactions and a busy timeout: web and worker can write at once.
    assert "journal_mode=WAL" in values["options"]["init_command"]
    assert values["options"]["transaction_mode"] == "IMMEDIATE"
    assert values["options"]["timeout"] > 0
    assert values["cache"].endswith("LocMemCache")
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["broker"] == "filesystem://"
    assert values["language"] == "pt-br"
    assert values["tz"] == "UTC"


def test_settings_production_uses_postgres_and_redis_from_urls(tmp_path):
    result = run_settings(
        {
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u:p@db.internal:5432/elsehub",
            "REDIS_URL": "redis://cache.internal:6379/0",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["broker"] == "redis://cache.internal:6379/0"
    assert values["debug"] is False


@pytest.mark.parametrize(
    ("raw", "seconds", "label"),
    [("900", 900, "900s"), ("900s", 900, "900s"), ("15m", 900, "15m"), ("7d", 604800, "7d"), ("2h", 7200, "2h")],
)
def test_env_duration_reads_seconds_and_units(monkeypatch, raw, seconds, label):
    monkeypatch.setenv("SOME_TTL", raw)
    assert env_duration("SOME_TTL", "1s") == (seconds, label)


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "7w", "1.5h"])
def test_env_duration_rejects_nonsense(monkeypatch, raw):
    monkeypatch.setenv("SOME_TTL", raw)
    with pytest.raises(ImproperlyConfigured):
        env_duration("SOME_TTL", "1s")


def test_env_bool_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env_bool("FLAG")
