"""The only way an event leaves the server: ``publish_on_commit``.

Events go to Channels groups once the surrounding transaction commits, so that no client ever
hears of a change that was rolled back. Group names: ``supervisors``, ``user.<id>``,
``instance.<id>``, ``conversation.<id>``, ``queue.<instance id>``.
"""

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

SUPERVISORS = "supervisors"


def instance_group(instance_id) -> str:
    return f"instance.{instance_id}"


def user_group(user_id) -> str:
    return f"user.{user_id}"


def conversation_group(conversation_id) -> str:
    return f"conversation.{conversation_id}"


def queue_group(instance_id) -> str:
    """Operators allowed on a number's queue listen here for conversations nobody has taken."""
    return f"queue.{instance_id}"


def _send(event: str, data: dict[str, Any], groups: tuple[str, ...]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "realtime.event", "event": event, "data": data}
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            # A realtime hiccup must not undo a committed change; clients catch up on reconnect.
            logger.warning("realtime.publish_failed", extra={"event": event, "group": group}, exc_info=True)


def publish_on_commit(event: str, data: dict[str, Any], groups: Iterable[str]) -> None:
    groups = tuple(dict.fromkeys(groups))
    transaction.on_commit(lambda: _send(event, data, groups))
