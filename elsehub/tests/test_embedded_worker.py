"""The embedded default runs Celery as a separate process with no broker server."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

SEED = """
import django; django.setup()
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
user = User.objects.create_user("w@example.com", "long-enough-1", name="W")
for n, days in enumerate((-2, -1, 3)):
    OutstandingToken.objects.create(user=user, jti=f"jti-{n}", token="t",
                                    expires_at=timezone.now() + timedelta(days=days))
"""
SEND = "import django; django.setup(); from accounts.tasks import flush_expired_tokens_task as t; t.delay()"
COUNT = (
    "import django; django.setup(); "
    "from rest_framework_simplejwt.token_blacklist.models import OutstandingToken as T; print(T.objects.count())"
)


@pytest.mark.slow
def test_embedded_worker_consumes_tasks_from_the_filesystem_queue(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    env.update({"DEBUG": "true", "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "elsehub.settings.base"})

    def python(code: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    python(SEED)
    python(SEND)  # queued before any worker exists: nothing may be lost
    assert python(COUNT) == "3"

    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "elsehub", "worker", "--pool", "solo", "-l", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        count = "3"
        while time.monotonic() < deadline and count != "1":
            time.sleep(1)
            count = python(COUNT)
        assert count == "1", "the worker did not run the queued task"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
