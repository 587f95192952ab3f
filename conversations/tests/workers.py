"""Real Celery workers for end-to-end tests: a subprocess on this test's database and broker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).parent / "celery"


def database_url() -> str:
    """The test database (not the configured one): the worker must see what the test writes."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgresql://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def kill(self) -> None:
        """SIGKILL to the whole process group: the pool's children die with their parent."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        self.process.terminate()  # warm shutdown: unstarted tasks go back to the broker
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def start_worker(settings, log: Path, *, pool: str = "solo", concurrency: int = 1, name: str = "e2e") -> Worker:
    """Start ``celery worker`` and wait for its "ready." line: only a worker that is up has
    declared its queue in Redis, and a task sent before that would be routed nowhere."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "elsehub.settings.base",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,  # the instance's credentials are encrypted with it
        "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY or "",
        "META_GRAPH_API_URL": settings.META_GRAPH_API_URL,  # the simulator's, when a test points it there
        "PROVIDER_RETRY_BACKOFF": "0.01",
        "DB_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
    }
    command = [str(CELERY), "-A", "elsehub", "worker", "--pool", pool, "--concurrency", str(concurrency)]
    command += ["--hostname", f"{name}@%h", "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),  # a file, not a pipe: an undrained pipe would block the worker
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, for kill()
    )
    worker = Worker(process, log)
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        if not worker.alive() or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"the worker did not start: {worker.tail()}")
        time.sleep(0.1)
    return worker
