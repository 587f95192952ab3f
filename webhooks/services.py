"""The webhook inbox: store first, answer, then process (DESIGN.md, "How data flows").

``receive_*`` run inside the provider's request and only write ``WebhookEvent`` rows; the task
enqueued after commit runs ``process_event``, which turns one row into domain calls. Every step
may run twice: an identical re-delivery hits the unique dedupe key, a processed row is skipped,
and the domain writes behind it are idempotent. ``sweep_pending_events`` re-queues whatever a
lost task left behind.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from instances import services as instance_services
from instances.models import Provider, ServiceInstance
from instances.providers.exceptions import InvalidWebhookPayload
from instances.providers.registry import adapter_class
from instances.providers.types import ConnectionUpdate, ProviderEvent, QRCodeUpdate
from webhooks import envelopes
from webhooks.envelopes import Malformed
from webhooks.models import EventState, WebhookEvent
from webhooks.verification import MetaSender

logger = logging.getLogger(__name__)

FINAL_STATES = (EventState.PROCESSED, EventState.IGNORED)
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)


# A PENDING row this old lost its task (the process died between commit and enqueue, or the
# broker was down): the sweeper queues it again.
def _pending_grace() -> timedelta:
    """How long a PENDING event may wait for its task before the sweeper re-queues it."""
    return timedelta(seconds=settings.WEBHOOK_STALE_SECONDS)


# A re-queued row is not queued again for this long, so that a backlog longer than the grace
# period is not doubled by every sweep.
REQUEUE_LEASE = timedelta(minutes=5)
SWEEP_BATCH = 500
# last_webhook_at is for people ("last event 3 s ago"): one UPDATE of the instance row per
# burst, not per event, keeps that hot row out of every worker's way.
TOUCH_INTERVAL = timedelta(seconds=10)

NO_INSTANCE = "No live service instance for this webhook"
MALFORMED_BODY = "The body is not valid JSON"
NOTHING_TO_APPLY = "No event to apply (ignored or unknown event type)"


def max_attempts() -> int:
    return getattr(settings, "WEBHOOK_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * 2**attempts, BACKOFF_MAX)


def dedupe_key(*, provider: str, instance_id: Any, raw_body: bytes, scope: str = "") -> str:
    """sha256 of provider + instance id (+ the phone number a Meta batch was split by) + raw body."""
    digest = hashlib.sha256()
    for part in (provider, str(instance_id or ""), scope):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(raw_body)
    return digest.hexdigest()


def _enqueue(event_ids: list[int]) -> None:
    from webhooks.tasks import process_webhook_event_task

    for event_id in event_ids:
        process_webhook_event_task.delay(event_id)


def _enqueue_on_commit(event_ids: list[int]) -> None:
    # robust: a broker outage must not turn a stored event into a 500; the sweeper re-queues it.
    # A plain function, not a partial: Django logs a robust callback's failure by its __qualname__.
    if not event_ids:
        return
    event_ids = list(event_ids)

    def enqueue_webhook_events() -> None:
        _enqueue(event_ids)

    transaction.on_commit(enqueue_webhook_events, robust=True)


# ------------------------------------------------------------------------------
# Receiving
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """One row to store: a whole Evolution call, or one phone number's share of a Meta batch."""

    instance: ServiceInstance | None
    event_type: str
    payload: Any
    scope: str = ""
    state: str = EventState.PENDING
    last_error: str = ""


def receive_events(*, provider: str, raw_body: bytes, items: list[Incoming]) -> list[WebhookEvent]:
    """Store each item once (unique dedupe key) and queue the new PENDING ones after commit.

    All rows of one call commit together, so the provider's retry after a failure finds either
    all of them or none. An identical re-delivery, even a concurrent one, finds the stored row.
    """
    stored, new_pending = [], []
    with transaction.atomic():
        for item in items:
            key = dedupe_key(
                provider=provider,
                instance_id=item.instance.pk if item.instance else None,
                raw_body=raw_body,
                scope=item.scope,
            )
            # Insert first (the usual case: one statement, no SELECT); the unique key turns a
            # re-delivery, even a concurrent one, into an IntegrityError that finds the stored row.
            try:
                with transaction.atomic():
                    event = WebhookEvent.objects.create(
                        dedupe_key=key,
                        provider=provider,
                        service_instance=item.instance,
                        event_type=item.event_type,
                        payload=item.payload,
                        state=item.state,
                        last_error=item.last_error,
                    )
                created = True
            except IntegrityError:
                event, created = WebhookEvent.objects.get(dedupe_key=key), False
            stored.append(event)
            if created and event.state == EventState.PENDING:
                new_pending.append(event.pk)
            elif not created:
                logger.info("webhooks.receive.duplicate", extra={"event": event.pk, "provider": provider})
        _enqueue_on_commit(new_pending)
    return stored


def receive_event(
    *, provider: str, instance: ServiceInstance | None, event_type: str, payload: Any, raw_body: bytes
) -> WebhookEvent:
    malformed = isinstance(payload, Malformed)
    item = Incoming(
        instance=instance,
        event_type=event_type,
        payload=payload.text if malformed else payload,
        state=EventState.IGNORED if malformed else EventState.PENDING,
        last_error=MALFORMED_BODY if malformed else "",
    )
    return receive_events(provider=provider, raw_body=raw_body, items=[item])[0]


def receive_evolution(
    *, instance: ServiceInstance, payload: Any, raw_body: bytes, slug: str | None = None
) -> WebhookEvent:
    """An authenticated Evolution call; a body that is not JSON is kept as text, IGNORED."""
    event_type = envelopes.evolution_event_type(payload, slug)
    if isinstance(payload, Malformed):
        logger.warning("webhooks.evolution.malformed_body", extra={"instance": str(instance.pk)})
    return receive_event(
        provider=Provider.EVOLUTION_API, instance=instance, event_type=event_type, payload=payload, raw_body=raw_body
    )


def receive_meta(*, sender: MetaSender, payload: Any, raw_body: bytes) -> list[WebhookEvent]:
    """A verified Meta batch, stored as one row per phone number so that each row has one instance.

    Changes for a number no live instance owns (or with no number, such as ``account_update``)
    are kept as IGNORED rows without an instance; changes for an instance the signature does not
    vouch for are dropped.
    """
    if isinstance(payload, Malformed):
        logger.warning("webhooks.meta.malformed_body")
        return [
            receive_event(
                provider=Provider.OFFICIAL_META, instance=None, event_type="", payload=payload, raw_body=raw_body
            )
        ]
    items = []
    for phone_id, part in envelopes.split_meta_batch(payload).items():
        if phone_id in sender.refused:
            logger.warning("webhooks.meta.signature_not_for_instance", extra={"phone_number_id": phone_id})
            continue
        instance = sender.instances.get(phone_id) if phone_id else None
        items.append(
            Incoming(
                instance=instance,
                event_type=envelopes.meta_event_type(part),
                payload=part,
                scope=phone_id or "",
                state=EventState.PENDING if instance else EventState.IGNORED,
                last_error="" if instance else NO_INSTANCE,
            )
        )
    return receive_events(provider=Provider.OFFICIAL_META, raw_body=raw_body, items=items)


# ------------------------------------------------------------------------------
# Processing
# ------------------------------------------------------------------------------


def _apply(instance: ServiceInstance, event: ProviderEvent) -> None:
    if isinstance(event, ConnectionUpdate):
        instance_services.apply_connection(instance=instance, connection=event.connection)
    elif isinstance(event, QRCodeUpdate):
        instance_services.apply_qr(instance=instance, qr=event.qr)
    else:
        # Imported here: the conversation store may be absent (tests, partial deployments), and
        # then only this kind of event fails and is retried.
        from conversations.services.inbound import apply_provider_event

        apply_provider_event(instance=instance, event=event)


def _finish(event: WebhookEvent, state: str, last_error: str | None = None) -> None:
    event.state, event.processed_at, event.next_attempt_at = state, timezone.now(), None
    fields = ["state", "processed_at", "next_attempt_at"]
    if last_error is not None:
        event.last_error = last_error
        fields.append("last_error")
    event.save(update_fields=fields)


def _relax_commit_durability() -> None:
    """Let this transaction commit without waiting for the WAL flush (PostgreSQL only).

    Safe here and only here: the event row was stored durably when it was received, and this
    transaction marks it PROCESSED together with the domain writes. A crash can lose the last few
    milliseconds of such commits, but never half of one, so a lost commit leaves the event PENDING
    and the sweeper applies it again (idempotently). It spares a disk flush per message.
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
            if instance is None or instance.deleted_at is not None:
                _finish(event, EventState.IGNORED, NO_INSTANCE)
                return event
            try:
                provider_events = adapter_class(event.provider).parse_webhook(event.payload)
            except InvalidWebhookPayload as exc:
                # The same body would fail every time: keep it for people, do not retry it.
                _finish(event, EventState.IGNORED, str(exc.details or exc.message))
                return event
            for provider_event in provider_events:
                _apply(instance, provider_event)
            if provider_events:
                _finish(event, EventState.PROCESSED)
            else:
                _finish(event, EventState.IGNORED, NOTHING_TO_APPLY)
    except Exception as exc:
        _record_failure(event_id, exc)
        return None
    _touch(instance)
    return event


def _touch(instance: ServiceInstance) -> None:
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


# ------------------------------------------------------------------------------
# Sweeping and replaying
# ------------------------------------------------------------------------------


def sweep_pending_events(*, batch_size: int = SWEEP_BATCH) -> list[int]:
    """Queue again what a lost task left behind; returns the ids queued. Safe to run twice.

    PENDING rows older than ``WEBHOOK_STALE_SECONDS`` and FAILED rows whose ``next_attempt_at`` has
    passed, oldest first, at most ``batch_size`` of each. Each gets ``next_attempt_at`` pushed by
    ``REQUEUE_LEASE`` so the next sweep leaves it to the task just queued; rows a worker holds
    right now are skipped.
    """
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update(skip_locked=True)
        pending = list(
            locked.filter(due, state=EventState.PENDING, received_at__lt=now - _pending_grace())
            .order_by("received_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        failed = list(
            locked.filter(state=EventState.FAILED, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        event_ids = pending + failed
        if event_ids:
            WebhookEvent.objects.filter(pk__in=event_ids).update(next_attempt_at=now + REQUEUE_LEASE)
            _enqueue_on_commit(event_ids)
    if event_ids:
        logger.info("webhooks.sweep.requeued", extra={"pending": len(pending), "failed": len(failed)})
    return event_ids


def replay_events(*, event_ids: list[int]) -> int:
    """Back to PENDING with a fresh retry budget, and queued. The domain does not change for an
    event already applied: processing is idempotent."""
    with transaction.atomic():
        ids = list(WebhookEvent.objects.filter(pk__in=event_ids).values_list("pk", flat=True))
        WebhookEvent.objects.filter(pk__in=ids).update(
            state=EventState.PENDING, attempts=0, next_attempt_at=None, processed_at=None
        )
        _enqueue_on_commit(ids)
    return len(ids)
