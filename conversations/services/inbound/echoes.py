"""Echoes: a message the business sent from the phone may be an Elsehub send still waiting for its provider id."""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from contacts.models import Contact
from conversations import events
from conversations.models import Direction, Message, MessageStatus
from conversations.services.inbound.common import _one, logger
from conversations.services.inbound.statuses import (
    _STATUS_FIELDS,
    _apply_statuses,
    _forget,
    _set_status,
    _take_early_statuses,
)
from instances.models import ServiceInstance
from instances.providers.types import InboundMessage, MessageKind

# A message typed on the phone is taken for an Elsehub send still waiting for its provider id
# when it has the same content and arrived within this window.
ECHO_MATCH_WINDOW = timedelta(minutes=10)
ECHO_MATCH_CANDIDATES = 20
PRE_SEND_STATUSES = (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.UNCERTAIN)


def _match_echo(
    *, instance: ServiceInstance, contact: Contact, event: InboundMessage, fields: dict, timestamp: datetime
) -> Message | None:
    """Attach the provider id of a message typed on the phone to the Elsehub send it echoes, if any.

    An Elsehub send may not have recorded its provider id yet (the call is still running, or it
    timed out as ``uncertain``) when the provider reports the same message back. Matching on
    content within ``ECHO_MATCH_WINDOW`` keeps it one row. Caller holds the contact lock.
    """
    if not event.provider_message_id:
        return None
    candidates = (
        Message.objects.filter(
            service_instance=instance,
            conversation__contact=contact,
            direction=Direction.OUTBOUND,
            external_id__isnull=True,
            status__in=PRE_SEND_STATUSES,
            kind=fields["kind"],
            timestamp__gte=timestamp - ECHO_MATCH_WINDOW,
        )
        .order_by("timestamp", "created_at")
        .only("id", "content", "media_caption")[:ECHO_MATCH_CANDIDATES]
    )
    wanted = (event.text or "").strip() if fields["kind"] != MessageKind.TEXT else fields["content"].strip()
    match = next((row for row in candidates if wanted in _comparable(row, fields["kind"])), None)
    if match is None:
        return None
    # Re-checked under the row lock: the send may have recorded its own id meanwhile.
    message = _one(
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation", "sender")
        .filter(pk=match.pk, external_id__isnull=True, status__in=PRE_SEND_STATUSES)
    )
    if message is None:
        return None
    message.external_id = event.provider_message_id
    early = _take_early_statuses(instance_id=instance.pk, external_id=message.external_id)
    _set_status(message, MessageStatus.SENT, at=timestamp)
    _apply_statuses(message, early)
    try:
        with transaction.atomic():
            message.save(update_fields=["external_id", *_STATUS_FIELDS])
    except IntegrityError:
        # Another row already holds this provider id: the echo was stored before.
        logger.debug("conversations.inbound.duplicate", extra={"instance_id": str(instance.pk)})
        return None
    _forget(early)
    events.publish_message_status(message, message.conversation)
    return message


def _comparable(row: Message, kind: str) -> set[str]:
    if kind == MessageKind.TEXT:
        return {row.content.strip()}
    return {row.content.strip(), row.media_caption.strip()}
