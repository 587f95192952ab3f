"""The only way an event leaves the server: ``publish_on_commit``.

Events go to Channels groups once the surrounding transaction commits, so that no client ever
hears of a change that was rolled back. Group names: ``supervisors``, ``user.<id>``,
``instance.<id>``, ``conversation.<id>``, ``queue.<instance id>``.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
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


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, on a daemon thread, for publishing from synchronous code.

    ``async_to_sync`` would build a loop (and a thread) per call, which dominated the cost of an
    inbound message; a long-lived loop also keeps the Redis connections of the channel layer.
    Started lazily and again after a fork (Celery's prefork children).
    """
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-publisher", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


async def _group_send_all(layer, groups: tuple[str, ...], message: dict) -> None:
    for group in groups:
        await layer.group_send(group, message)


def _send(event: str, data: dict[str, Any], groups: tuple[str, ...]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "realtime.event", "event": event, "data": data}
    try:
        if isinstance(layer, RedisChannelLayer):
            future = asyncio.run_coroutine_threadsafe(_group_send_all(layer, groups, message), _publisher_loop())
            future.result(timeout=10)
        else:
            # The in-memory layer lives on the server's own loop: publish there.
            async_to_sync(_group_send_all)(layer, groups, message)
    except Exception:
        # A realtime hiccup must not undo a committed change; clients catch up on reconnect.
        logger.warning("realtime.publish_failed", extra={"event": event, "groups": groups}, exc_info=True)


def publish_on_commit(event: str, data: dict[str, Any], groups: Iterable[str]) -> None:
    groups = tuple(dict.fromkeys(groups))
    transaction.on_commit(lambda: _send(event, data, groups))
