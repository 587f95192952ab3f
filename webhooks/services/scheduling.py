"""Scheduling drains: one queued drain per number and partition at a time (a key in the shared cache)."""

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

# How long "a drain is queued" is believed without the drain starting: a lost task costs at most this.
DRAIN_KEY_SECONDS = 30


def drain_key(instance_id: Any, partition: int) -> str:
    return f"webhooks:drain:{instance_id}:{partition}"


def schedule_drains(pairs: Iterable[tuple[Any, int]], *, force: bool = False) -> int:
    """Queue a drain for each (instance id, partition); returns how many were queued.

    With ``WEBHOOK_COALESCE_DRAINS`` a pair whose drain is queued and not started yet (its key is
    in the cache) gets no second one: that drain deletes the key before it reads the events, so
    it sees everything committed before the key was found. The key expires on its own, so a lost
    task only delays its events until the next event or sweep. ``force`` (the sweeper) queues
    one anyway. A second drain of a pair is harmless: both skip the rows the other holds.
    """
    from webhooks.tasks import drain_events_task

    queued = 0
    for instance_id, partition in dict.fromkeys(pairs):
        if instance_id is None:
            continue
        if settings.WEBHOOK_COALESCE_DRAINS:
            key = drain_key(instance_id, partition)
            try:
                if force:
                    cache.set(key, 1, timeout=DRAIN_KEY_SECONDS)
                elif not cache.add(key, 1, timeout=DRAIN_KEY_SECONDS):
                    continue
            except Exception:
                # Without the cache every event queues its own drain: slower, never lost.
                logger.warning("webhooks.drain.key_failed", exc_info=True)
        drain_events_task.apply_async((str(instance_id), partition), countdown=settings.WEBHOOK_DRAIN_DELAY or None)
        queued += 1
    return queued


def schedule_on_commit(pairs: list[tuple[Any, int]], *, force: bool = False) -> None:
    # robust: a broker outage must not turn a stored event into a 500; the sweeper queues it.
    # A plain function, not a partial: Django logs a robust callback's failure by its __qualname__.
    if not pairs:
        return
    pairs = list(pairs)

    def schedule_webhook_drains() -> None:
        schedule_drains(pairs, force=force)

    transaction.on_commit(schedule_webhook_drains, robust=True)
