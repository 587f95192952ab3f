"""Processing: stored events applied to the domain, a batch per transaction, or one by one."""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from instances import services as instance_services
from instances.models import ServiceInstance
from instances.providers.exceptions import InvalidWebhookPayload
from instances.providers.registry import adapter_class
from instances.providers.types import ConnectionUpdate, ProviderEvent, QRCodeUpdate
from webhooks.models import EventState, WebhookEvent
from webhooks.services.receiving import NO_INSTANCE
from webhooks.services.scheduling import drain_key, schedule_drains

logger = logging.getLogger(__name__)

FINAL_STATES = (EventState.PROCESSED, EventState.IGNORED)
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
# A drain applies at most this many batches before it queues its successor and lets others run.
DRAIN_MAX_BATCHES = 10
# last_webhook_at is for people ("last event 3 s ago"): one UPDATE of the instance row per
# burst, not per event, keeps that hot row out of every worker's way.
TOUCH_INTERVAL = timedelta(seconds=10)
NOTHING_TO_APPLY = "No event to apply (ignored or unknown event type)"


def max_attempts() -> int:
    return getattr(settings, "WEBHOOK_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * 2**attempts, BACKOFF_MAX)


def _apply_instance_event(instance: ServiceInstance, event: ProviderEvent, received_at: datetime) -> None:
    # As of the webhook's arrival: a retried or replayed older report does not undo a newer one.
    if isinstance(event, ConnectionUpdate):
        instance_services.apply_connection(instance=instance, connection=event.connection, as_of=received_at)
    else:
        instance_services.apply_qr(instance=instance, qr=event.qr, as_of=received_at)


def _apply(instance: ServiceInstance, items: list[tuple[WebhookEvent, list[ProviderEvent]]]) -> None:
    """Apply each row's events in order: the number's own events here, runs of the others to the
    conversation store."""
    # Imported here: the conversation store may be absent (tests, partial deployments), and then
    # only these events fail and are retried.
    from conversations.services.inbound import apply_provider_events

    run: list[ProviderEvent] = []
    for event, provider_events in items:
        for provider_event in provider_events:
            if isinstance(provider_event, ConnectionUpdate | QRCodeUpdate):
                if run:
                    apply_provider_events(instance=instance, events=run)
                    run = []
                _apply_instance_event(instance, provider_event, event.received_at)
            else:
                run.append(provider_event)
    if run:
        apply_provider_events(instance=instance, events=run)


def _parse(event: WebhookEvent) -> tuple[list[ProviderEvent], tuple[str, str] | None]:
    """The neutral events of a stored row, or the final ``(state, last_error)`` of a row with none."""
    instance = event.service_instance
    if instance is None or instance.deleted_at is not None:
        return [], (EventState.IGNORED, NO_INSTANCE)
    try:
        provider_events = adapter_class(event.provider).parse_webhook(event.payload)
    except InvalidWebhookPayload as exc:
        # The same body would fail every time: keep it for people, do not retry it.
        return [], (EventState.IGNORED, str(exc.details or exc.message))
    if not provider_events:
        return [], (EventState.IGNORED, NOTHING_TO_APPLY)
    return provider_events, None


def _apply_rows(instance: ServiceInstance | None, events: list[WebhookEvent]) -> None:
    """Apply locked rows of ``instance`` in order and record how each one ended: PROCESSED, or
    IGNORED with the reason (one UPDATE per outcome)."""
    outcomes: dict[tuple[str, str | None], list[WebhookEvent]] = {}
    parsed_events: list[tuple[WebhookEvent, list[ProviderEvent]]] = []
    for event in events:
        parsed, outcome = _parse(event)
        parsed_events.append((event, parsed))
        outcomes.setdefault(outcome or (EventState.PROCESSED, None), []).append(event)
    _apply(instance, parsed_events)
    now = timezone.now()
    for (state, last_error), rows in outcomes.items():
        changes = {"state": state, "processed_at": now, "next_attempt_at": None}
        if last_error is not None:
            changes["last_error"] = last_error
        WebhookEvent.objects.filter(pk__in=[event.pk for event in rows]).update(**changes)
        for event in rows:
            for name, value in changes.items():
                setattr(event, name, value)


def _relax_commit_durability() -> None:
    """Let this transaction commit without waiting for the WAL flush (PostgreSQL only).

    Safe here and only here: the event rows were stored durably when they were received, and this
    transaction marks them PROCESSED together with the domain writes. A crash can lose the last few
    milliseconds of such commits, but never half of one, so a lost commit leaves the events PENDING
    and the sweeper applies them again (idempotently). It spares a disk flush per transaction.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def process_event(*, event_id: int) -> WebhookEvent | None:
    """Apply one stored webhook to the domain in one transaction. Running it twice is a no-op.

    The row stays locked (``SELECT ... FOR UPDATE``) until the domain writes commit, so two
    workers never apply it at once; a row another worker holds is skipped (that worker settles
    it). PROCESSED and IGNORED rows are left alone. Any exception rolls the whole event back and
    schedules a retry (``_record_failure``); nothing is raised to the task.
    """
    try:
        with transaction.atomic():
            _relax_commit_durability()
            event = (
                WebhookEvent.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("service_instance")
                .filter(pk=event_id)
                .first()
            )
            if event is None or event.state in FINAL_STATES:
                return event
            instance = event.service_instance
            _apply_rows(instance, [event])
    except Exception as exc:
        _record_failure(event_id, exc)
        return None
    _touch(instance)
    return event


def drain_events(*, instance_id: Any, partition: int) -> int:
    """Apply the PENDING events of one number and partition, a batch per transaction; returns how many.

    Stops after ``DRAIN_MAX_BATCHES`` batches and queues its successor if events are left, so that
    a busy partition takes turns with the others on the workers.
    """
    if settings.WEBHOOK_COALESCE_DRAINS:
        try:
            # Before reading: an event committed after this finds no key and queues a new drain.
            cache.delete(drain_key(instance_id, partition))
        except Exception:
            logger.warning("webhooks.drain.key_failed", exc_info=True)
    size, done = settings.WEBHOOK_BATCH_SIZE, 0
    for _batch in range(DRAIN_MAX_BATCHES):
        claimed = process_batch(instance_id=instance_id, partition=partition, limit=size)
        done += claimed
        if claimed < size:
            return done
    schedule_drains([(instance_id, partition)])
    return done


def process_batch(*, instance_id: Any, partition: int, limit: int) -> int:
    """Apply up to ``limit`` PENDING events of one number and partition, oldest first, in one
    transaction; returns how many it claimed.

    Rows another worker holds are skipped. If anything fails, the batch is rolled back and each of
    its events is applied on its own (``process_event``), so one bad event holds back only itself.
    """
    claimed: list[int] = []
    try:
        with transaction.atomic():
            _relax_commit_durability()
            events = list(
                WebhookEvent.objects.select_for_update(skip_locked=True)
                .filter(service_instance_id=instance_id, partition=partition, state=EventState.PENDING)
                .order_by("pk")[:limit]
            )
            if not events:
                return 0
            claimed = [event.pk for event in events]
            instance = ServiceInstance.objects.filter(pk=instance_id).first()
            for event in events:
                event.service_instance = instance
            _apply_rows(instance, events)
    except Exception:
        if not claimed:
            logger.exception("webhooks.drain.failed", extra={"instance": str(instance_id), "partition": partition})
            return 0
        logger.warning("webhooks.drain.batch_failed", extra={"events": len(claimed)}, exc_info=True)
        for event_id in claimed:
            process_event(event_id=event_id)
        return len(claimed)
    _touch(instance)
    return len(claimed)


def _touch(instance: ServiceInstance | None) -> None:
    if instance is None or instance.deleted_at is not None:
        return
    now = timezone.now()
    if instance.last_webhook_at is None or now - instance.last_webhook_at >= TOUCH_INTERVAL:
        instance_services.touch_webhook(instance=instance)
        instance.last_webhook_at = now


def _record_failure(event_id: int, exc: Exception) -> None:
    """attempts + 1 and a retry after ``backoff``; after ``max_attempts()`` it stays FAILED for good."""
    limit = max_attempts()
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
            if event is None or event.state in FINAL_STATES:
                return
            event.attempts += 1
            gave_up = event.attempts >= limit
            event.state = EventState.FAILED
            event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            event.next_attempt_at = None if gave_up else timezone.now() + backoff(event.attempts)
            event.save(update_fields=["attempts", "state", "last_error", "next_attempt_at"])
    except Exception:
        # The database itself may be what failed: the row stays PENDING and the sweeper retries it.
        logger.exception("webhooks.process.failure_not_recorded", extra={"event": event_id})
        return
    (logger.error if gave_up else logger.warning)(
        "webhooks.process.failed",
        extra={"event": event_id, "attempts": event.attempts, "gave_up": gave_up, "error": type(exc).__name__},
        exc_info=exc,
    )
