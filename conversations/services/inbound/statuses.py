"""Delivery statuses: moved forward only, kept as ``EarlyStatus`` until their message lands."""

import hashlib
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations import events
from conversations.models import STATUS_RANK, EarlyStatus, Message, MessageStatus
from conversations.services.inbound.common import _aware, _locked_message, logger
from instances.models import Provider, ServiceInstance
from instances.providers.types import DeliveryStatus, StatusUpdate

DELIVERY_STATUSES = {
    DeliveryStatus.PENDING: MessageStatus.PENDING,
    DeliveryStatus.SENT: MessageStatus.SENT,
    DeliveryStatus.DELIVERED: MessageStatus.DELIVERED,
    DeliveryStatus.READ: MessageStatus.READ,
    DeliveryStatus.PLAYED: MessageStatus.PLAYED,
    DeliveryStatus.FAILED: MessageStatus.FAILED,
}
EVOLUTION_ERROR_CODE = "ERROR"

# First key of pg_advisory_xact_lock(int, int): keeps our keys apart from other advisory locks.
_EARLY_STATUS_LOCK_SPACE = 0x45485553
_STATUS_FIELDS = ["status", "status_code", "status_reason", "status_changed_at", "updated_at"]
_REASON_MAX = Message._meta.get_field("status_reason").max_length
# A kept status whose message never lands (sent from a device while webhooks were off, a provider
# quirk) is forgotten after this long, so the table does not grow for ever.
EARLY_STATUS_TTL = timedelta(days=7)


def _failure_reasons() -> dict[str, str]:
    # Meta error codes that reach us as asynchronous ``failed`` statuses (meta_cloud.md §5 and §8).
    return {
        "131047": _(
            "More than 24 hours have passed since the customer's last message; "
            "only an approved template can be sent now."
        ),
        "131026": _(
            "Message undeliverable: the number may not use WhatsApp, may have blocked this business "
            "or may have an outdated app."
        ),
        "131049": _(
            "WhatsApp held this message back to protect the customer's experience "
            "(too many marketing messages); try again later."
        ),
        "131050": _("The customer has stopped receiving marketing messages from this business."),
        "130429": _("This number reached its sending rate limit; try again in a moment."),
        "131056": _("Too many messages to this customer in a short time; wait a little before sending again."),
        EVOLUTION_ERROR_CODE: _("WhatsApp reported an error sending this message."),
    }


def apply_status_update(*, instance: ServiceInstance, event: StatusUpdate) -> None:
    """Move a message's status forward, or keep the status until its message lands."""
    status = DELIVERY_STATUSES[DeliveryStatus(event.status)]
    code, reason = "", ""
    if status == MessageStatus.FAILED:
        code, reason = failure_details(instance=instance, code=event.error_code, text=event.error_message)
    at = _aware(event.timestamp)
    with transaction.atomic():
        message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            _lock_external_id(instance_id=instance.pk, external_id=event.provider_message_id)
            message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            _keep_early_status(instance=instance, event=event, status=status, at=at, code=code, reason=reason)
            return
        if _set_status(message, status, at=at, code=code, reason=reason):
            message.save(update_fields=_STATUS_FIELDS)
            events.publish_message_status(message, message.conversation)


def apply_early_statuses(*, message: Message) -> bool:
    """Apply (and forget) the statuses that arrived before ``message`` had its provider id.

    For whoever records ``external_id`` on a message (the outbound send): call it inside the same
    transaction, after saving the id. Saves the status fields when they change and returns whether
    they did; publishing ``message:status`` is the caller's.
    """
    if not message.external_id:
        return False
    early = _take_early_statuses(instance_id=message.service_instance_id, external_id=message.external_id)
    changed = _apply_statuses(message, early)
    if changed:
        message.save(update_fields=_STATUS_FIELDS)
    _forget(early)
    return changed


def failure_details(*, instance: ServiceInstance, code: str | None, text: str | None) -> tuple[str, str]:
    """``(status_code, status_reason)`` of a failed status: a sentence for the operator when we know the code."""
    code = (code or "").strip()
    if not code and instance.provider == Provider.EVOLUTION_API:
        code = EVOLUTION_ERROR_CODE  # Evolution reports only "ERROR", never why
    reason = _failure_reasons().get(code) or (text or "").strip() or _("The provider could not deliver this message.")
    return code[:64], reason[:_REASON_MAX]


def _set_status(message: Message, status: str, *, at: datetime, code: str = "", reason: str = "") -> bool:
    """Forward only by ``STATUS_RANK``; ``failed`` is terminal and never overrides a confirmed delivery."""
    current = message.status
    if current in (MessageStatus.RECEIVED, MessageStatus.FAILED):
        return False  # a customer's message has no delivery status of ours
    if status == MessageStatus.FAILED:
        if STATUS_RANK[current] > STATUS_RANK[MessageStatus.SENT]:
            return False
    elif STATUS_RANK[status] <= STATUS_RANK[current]:
        return False
    message.status = status
    message.status_changed_at = at
    # A reason belongs to the status it explains (e.g. the timeout behind "uncertain").
    message.status_code = code
    message.status_reason = reason
    return True


def _apply_statuses(message: Message, early: list[EarlyStatus]) -> bool:
    changed = False
    # Lowest rank first and failed last, so that a delivery reported alongside a failure wins.
    for item in sorted(early, key=lambda e: (e.status == MessageStatus.FAILED, STATUS_RANK[e.status])):
        at = item.timestamp or item.created_at or timezone.now()
        changed |= _set_status(message, item.status, at=at, code=item.status_code, reason=item.status_reason)
    return changed


def _lock_external_id(*, instance_id, external_id: str) -> None:
    """Serialise "status without its message" against "message lands" for one provider id.

    Held until commit. Without it a status could be kept as early while the message commits,
    each transaction missing the other's uncommitted row, and the status would never apply.
    """
    if connection.vendor != "postgresql":
        return  # SQLite runs one write transaction at a time
    digest = hashlib.blake2b(f"{instance_id}:{external_id}".encode(), digest_size=4).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [_EARLY_STATUS_LOCK_SPACE, int.from_bytes(digest, "big", signed=True)],
        )


def _take_early_statuses(*, instance_id, external_id: str) -> list[EarlyStatus]:
    _lock_external_id(instance_id=instance_id, external_id=external_id)
    return list(EarlyStatus.objects.filter(service_instance_id=instance_id, external_id=external_id))


def _forget(early: list[EarlyStatus]) -> None:
    if early:
        EarlyStatus.objects.filter(pk__in=[item.pk for item in early]).delete()


def _keep_early_status(
    *, instance: ServiceInstance, event: StatusUpdate, status: str, at: datetime, code: str, reason: str
) -> None:
    early = EarlyStatus(
        service_instance=instance,
        external_id=event.provider_message_id,
        status=status,
        timestamp=at,
        status_code=code,
        status_reason=reason,
    )
    try:
        with transaction.atomic():
            early.save(force_insert=True)
    except IntegrityError:
        return  # the same status was kept already
    logger.info("conversations.inbound.early_status", extra={"instance_id": str(instance.pk), "status": status})


def forget_stale_early_statuses() -> int:
    """Delete the kept statuses whose message did not land within ``EARLY_STATUS_TTL``; returns how many."""
    deleted, _by_model = EarlyStatus.objects.filter(created_at__lt=timezone.now() - EARLY_STATUS_TTL).delete()
    if deleted:
        logger.info("conversations.inbound.early_statuses_forgotten", extra={"count": deleted})
    return deleted
