"""Shared by the inbound files: the package's logger, skip counters and small query helpers."""

import logging
from datetime import UTC, datetime

from django.core.cache import cache
from django.utils import timezone

from conversations.models import Message
from instances.models import ServiceInstance
from instances.providers.types import InboundMessage

# One logger for the whole package, named as when it was a single module.
logger = logging.getLogger(__package__)

SKIP_GROUP = "group_skipped"
SKIP_NO_PHONE = "no_phone"


def skipped_count(reason: str) -> int:
    """How many events were skipped for ``reason`` (``SKIP_GROUP``, ``SKIP_NO_PHONE``), across workers."""
    return cache.get(_skip_key(reason), 0)


def _skip_key(reason: str) -> str:
    return f"conversations:inbound:skipped:{reason}"


def _skip(reason: str, *, instance: ServiceInstance, event: InboundMessage) -> None:
    logger.warning(
        f"conversations.inbound.{reason}",
        extra={"instance_id": str(instance.pk), "kind": str(event.kind), "from_me": event.from_me},
    )
    try:
        cache.add(_skip_key(reason), 0, timeout=None)
        cache.incr(_skip_key(reason))
    except Exception:
        # A counter must never make a webhook fail (and be retried for days).
        logger.debug("conversations.inbound.skip_count_failed", exc_info=True)


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return timezone.now()
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def _one(query):
    """The row or ``None``, without the model's default ORDER BY (``first()`` would add one)."""
    rows = list(query.order_by()[:1])
    return rows[0] if rows else None


def _locked_message(*, instance: ServiceInstance, external_id: str) -> Message | None:
    query = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(service_instance=instance, external_id=external_id)
    )
    return _one(query)
