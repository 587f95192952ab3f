import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elsehub.settings.base")

app = Celery("elsehub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender=None, **kwargs) -> None:
    """Keep a healthy connection across tasks, drop a broken or expired one (CONN_MAX_AGE).

    Celery's own handler (disabled by CELERY_DB_REUSE_MAX) closes every connection around every
    task, which costs a reconnect per webhook event. Eager tasks run inside the caller's
    transaction and are left alone.
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_process_shutdown.connect
def flush_realtime_events(**kwargs) -> None:
    """Send the realtime events still queued before a prefork child exits.

    The child leaves through ``os._exit``, which skips the ``atexit`` flush.
    """
    from elsehub import realtime

    realtime.flush()
