"""Workers keep a healthy database connection across tasks and drop expired ones."""

import time
from types import SimpleNamespace

import pytest
from django.db import connection

from elsehub.celery import app, close_old_database_connections

pytestmark = pytest.mark.django_db(transaction=True)


def _task(*, eager: bool):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_celery_reuse_setting_disables_the_close_per_task():
    assert app.conf.get("CELERY_DB_REUSE_MAX") >= 1000


def test_worker_task_keeps_a_healthy_connection_and_drops_an_expired_one(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 60
    healthy = connection.connection

    close_old_database_connections(sender=_task(eager=False))
    assert connection.connection is healthy

    connection.close_at = time.monotonic() - 1
    close_old_database_connections(sender=_task(eager=False))
    assert connection.connection is None


def test_eager_task_never_touches_the_callers_connection(monkeypatch):
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1
    current = connection.connection
    close_old_database_connections(sender=_task(eager=True))
    assert connection.connection is current
