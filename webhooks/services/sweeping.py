"""Sweeping and replaying: drains queued again for what a lost task, a failure or a person left behind."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks.models import EventState, WebhookEvent
from webhooks.services.scheduling import schedule_on_commit

logger = logging.getLogger(__name__)


# A PENDING row this old lost its task (the process died between commit and enqueue, or the
# broker was down): the sweeper queues it again.
def _pending_grace() -> timedelta:
    """How long a PENDING event may wait for its task before the sweeper re-queues it."""
    return timedelta(seconds=settings.WEBHOOK_STALE_SECONDS)


# A re-queued row is not queued again for this long, so that a backlog longer than the grace
# period is not doubled by every sweep.
REQUEUE_LEASE = timedelta(minutes=5)
SWEEP_BATCH = 500


def sweep_pending_events(*, batch_size: int = SWEEP_BATCH) -> list[int]:
    """Drain again what a lost task left behind; returns the ids of the events concerned. Safe to run twice.

    PENDING rows older than ``WEBHOOK_STALE_SECONDS`` and FAILED rows whose ``next_attempt_at`` has
    passed (these go back to PENDING), oldest first, at most ``batch_size`` of each: a drain is
    queued for each of their numbers and partitions. Each row gets ``next_attempt_at`` pushed by
    ``REQUEUE_LEASE`` so the next sweep leaves it to the drain just queued; rows a worker holds
    right now are skipped.
    """
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    fields = ("pk", "service_instance_id", "partition")
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update(skip_locked=True)
        pending = list(
            locked.filter(due, state=EventState.PENDING, received_at__lt=now - _pending_grace())
            .order_by("received_at")
            .values_list(*fields)[:batch_size]
        )
        failed = list(
            locked.filter(state=EventState.FAILED, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list(*fields)[:batch_size]
        )
        rows = pending + failed
        if rows:
            WebhookEvent.objects.filter(pk__in=[pk for pk, *_pair in rows]).update(
                state=EventState.PENDING, next_attempt_at=now + REQUEUE_LEASE
            )
            schedule_on_commit([(instance_id, partition) for _pk, instance_id, partition in rows], force=True)
    if rows:
        logger.info("webhooks.sweep.requeued", extra={"pending": len(pending), "failed": len(failed)})
    return [pk for pk, *_pair in rows]


def replay_events(*, event_ids: list[int]) -> int:
    """Back to PENDING with a fresh retry budget, and drained. The domain does not change for an
    event already applied: processing is idempotent."""
    with transaction.atomic():
        rows = list(WebhookEvent.objects.filter(pk__in=event_ids).values_list("pk", "service_instance_id", "partition"))
        WebhookEvent.objects.filter(pk__in=[pk for pk, *_pair in rows]).update(
            state=EventState.PENDING, attempts=0, next_attempt_at=None, processed_at=None
        )
        schedule_on_commit([(instance_id, partition) for _pk, instance_id, partition in rows], force=True)
    return len(rows)
