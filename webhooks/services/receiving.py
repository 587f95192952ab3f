"""Receiving: an authenticated provider call stored as ``WebhookEvent`` rows before we answer it."""

import hashlib
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from instances.models import Provider, ServiceInstance
from webhooks import envelopes
from webhooks.envelopes import Malformed
from webhooks.models import EventState, WebhookEvent
from webhooks.services.scheduling import schedule_on_commit
from webhooks.verification import MetaSender

logger = logging.getLogger(__name__)

NO_INSTANCE = "No live service instance for this webhook"
MALFORMED_BODY = "The body is not valid JSON"


def dedupe_key(*, provider: str, instance_id: Any, raw_body: bytes, scope: str = "") -> str:
    """sha256 of provider + instance id (+ the phone number a Meta batch was split by) + raw body."""
    digest = hashlib.sha256()
    for part in (provider, str(instance_id or ""), scope):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(raw_body)
    return digest.hexdigest()


def partition_of(chat_key: str) -> int:
    """The partition of a chat: stable across processes (not Python's salted ``hash``)."""
    partitions = settings.WEBHOOK_PARTITIONS
    if partitions <= 1 or not chat_key:
        return 0
    digest = hashlib.blake2b(chat_key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % partitions


@dataclass(frozen=True)
class Incoming:
    """One row to store: a whole Evolution call, or one phone number's share of a Meta batch."""

    instance: ServiceInstance | None
    event_type: str
    payload: Any
    scope: str = ""
    partition: int = 0
    state: str = EventState.PENDING
    last_error: str = ""


def receive_events(*, provider: str, raw_body: bytes, items: list[Incoming]) -> list[WebhookEvent]:
    """Store each item once (unique dedupe key) and schedule drains for the new PENDING ones after commit.

    All rows of one call commit together, so the provider's retry after a failure finds either
    all of them or none. An identical re-delivery, even a concurrent one, finds the stored row.
    """
    if len(items) == 1 and not connection.in_atomic_block:
        # The usual call: one INSERT that commits on its own (no BEGIN, savepoint or COMMIT round
        # trips in the provider's request).
        event, created = _store(provider, raw_body, items[0])
        stored, new_pending = [event], [event] if created else []
    else:
        stored, new_pending = [], []
        with transaction.atomic():
            for item in items:
                event, created = _store(provider, raw_body, item)
                stored.append(event)
                if created:
                    new_pending.append(event)
    pairs = [(event.service_instance_id, event.partition) for event in new_pending if event.state == EventState.PENDING]
    schedule_on_commit(pairs)
    return stored


def _store(provider: str, raw_body: bytes, item: Incoming) -> tuple[WebhookEvent, bool]:
    """Insert first (the usual case: one statement, no SELECT); the unique key turns a re-delivery,
    even a concurrent one, into an IntegrityError that finds the stored row. Inside a transaction
    the insert takes a savepoint, so that a duplicate does not break the rest of it."""
    key = dedupe_key(
        provider=provider, instance_id=item.instance.pk if item.instance else None, raw_body=raw_body, scope=item.scope
    )
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            event = WebhookEvent.objects.create(
                dedupe_key=key,
                provider=provider,
                service_instance=item.instance,
                event_type=item.event_type,
                payload=item.payload,
                state=item.state,
                last_error=item.last_error,
                partition=item.partition,
            )
        return event, True
    except IntegrityError:
        logger.info("webhooks.receive.duplicate", extra={"provider": provider})
        return WebhookEvent.objects.get(dedupe_key=key), False


def receive_event(
    *,
    provider: str,
    instance: ServiceInstance | None,
    event_type: str,
    payload: Any,
    raw_body: bytes,
    chat_key: str = "",
) -> WebhookEvent:
    malformed = isinstance(payload, Malformed)
    item = Incoming(
        instance=instance,
        event_type=event_type,
        partition=partition_of(chat_key),
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
        provider=Provider.EVOLUTION_API,
        instance=instance,
        event_type=event_type,
        payload=payload,
        raw_body=raw_body,
        chat_key=envelopes.evolution_chat_key(payload),
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
                partition=partition_of(envelopes.meta_chat_key(part)),
                state=EventState.PENDING if instance else EventState.IGNORED,
                last_error="" if instance else NO_INSTANCE,
            )
        )
    return receive_events(provider=Provider.OFFICIAL_META, raw_body=raw_body, items=items)
