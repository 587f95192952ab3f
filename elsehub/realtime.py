"""The only way an event leaves the server: ``publish_on_commit``.

Events go to Channels groups once the surrounding transaction commits, so that no client ever
hears of a change that was rolled back. Group names: ``supervisors``, ``user.<id>``,
``instance.<id>``, ``conversation.<id>``, ``queue.<instance id>``.

With Redis, a committed event is handed to the process's publisher and the committing thread
goes on without waiting for Redis; the publisher sends events one at a time, in the order they
were handed over. Realtime is best effort: an event that fails, or that finds too many already
waiting, is logged and dropped, and clients catch up from the database when they reconnect.
``flush`` waits for what is queued; it runs when the process exits.
"""

import asyncio
import atexit
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

# Events queued or being sent beyond this are dropped: a slow or absent Redis must not grow memory.
MAX_PENDING = 10_000
# For each group_send: a hung Redis holds up the events behind it this long, not forever.
SEND_TIMEOUT = 5.0


def instance_group(instance_id) -> str:
    return f"instance.{instance_id}"


def user_group(user_id) -> str:
    return f"user.{user_id}"


def conversation_group(conversation_id) -> str:
    return f"conversation.{conversation_id}"


def queue_group(instance_id) -> str:
    """Operators allowed on a number's queue listen here for conversations nobody has taken."""
    return f"queue.{instance_id}"


class _Publisher:
    """An event loop on a daemon thread whose single consumer sends the queued events in order.

    ``async_to_sync`` would build a loop (and a thread) per call, which dominated the cost of an
    inbound message; a long-lived loop also keeps the Redis connections of the channel layer. One
    consumer sending one group at a time is what keeps two events to the same group in order.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending = 0  # events queued or being sent; changed only on the loop's thread
        # The loop holds tasks weakly: keep the consumer alive.
        self.consumer = self.loop.create_task(self._consume())
        threading.Thread(target=self.loop.run_forever, name="realtime-publisher", daemon=True).start()

    def put(self, item: tuple) -> None:
        """From any thread: a lock and a wake-up of the loop, never a round trip to Redis."""
        self.loop.call_soon_threadsafe(self._enqueue, item)

    def flush(self, timeout: float) -> bool:
        """Queue a marker behind everything handed over so far and wait for the consumer to reach it."""
        reached = threading.Event()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, reached)
        return reached.wait(timeout)

    def _enqueue(self, item: tuple) -> None:
        if self.pending >= MAX_PENDING:
            _, event, groups, _ = item
            logger.warning("realtime.queue_full", extra={"event": event, "groups": groups, "pending": self.pending})
            return
        self.pending += 1
        self.queue.put_nowait(item)

    async def _consume(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, threading.Event):
                item.set()  # a flush: everything queued before it is done
            else:
                await self._send_event(*item)
                self.pending -= 1

    async def _send_event(self, layer, event: str, groups: tuple[str, ...], message: dict) -> None:
        try:
            for group in groups:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await layer.group_send(group, message)
        except Exception:
            # One failed event must not stop the ones behind it; clients catch up on reconnect.
            logger.warning("realtime.publish_failed", extra={"event": event, "groups": groups}, exc_info=True)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()
# Inherited by forked children, whose exit then flushes their own publisher.
_flush_at_exit = False
# Publishers a fork left without their thread. Kept: collecting one would log its waiting consumer
# as a destroyed task.
_inherited: list[_Publisher] = []


def _current_publisher() -> _Publisher:
    """This process's publisher: started lazily, and again after a fork (Celery's prefork children)."""
    global _publisher, _flush_at_exit
    with _publisher_lock:
        if _publisher is None or _publisher.pid != os.getpid():
            if _publisher is not None:
                _inherited.append(_publisher)
            _publisher = _Publisher()
            if not _flush_at_exit:
                atexit.register(flush)
                _flush_at_exit = True
        return _publisher


def flush(timeout: float = 5.0) -> bool:
    """Wait until every event handed over so far in this process has been sent (or given up on).

    Returns whether that happened within ``timeout``. Runs at exit (``atexit``, and Celery's
    ``worker_process_shutdown`` in prefork children), so that events committed just before a
    process stops still go out.
    """
    publisher = _publisher
    if publisher is None or publisher.pid != os.getpid():
        return True  # nothing was ever queued in this process
    if publisher.flush(timeout):
        return True
    logger.warning("realtime.flush_timed_out", extra={"pending": publisher.pending, "timeout": timeout})
    return False


async def _group_send_all(layer, groups: tuple[str, ...], message: dict) -> None:
    for group in groups:
        await layer.group_send(group, message)


def _send(event: str, data: dict[str, Any], groups: tuple[str, ...]) -> None:
    """Runs on commit: with Redis, queues the event and returns; the in-memory layer sends at once."""
    layer = get_channel_layer()
    if layer is None:
        return
    # With Redis, ``data`` is serialized later on the publisher's thread: callers hand over a
    # payload built for the event and never touch it again.
    message = {"type": "realtime.event", "event": event, "data": data}
    try:
        if isinstance(layer, RedisChannelLayer):
            _current_publisher().put((layer, event, groups, message))
        else:
            # The in-memory layer lives on the server's own loop: publish there.
            async_to_sync(_group_send_all)(layer, groups, message)
    except Exception:
        # A realtime hiccup must not undo a committed change; clients catch up on reconnect.
        logger.warning("realtime.publish_failed", extra={"event": event, "groups": groups}, exc_info=True)


def publish_on_commit(event: str, data: dict[str, Any], groups: Iterable[str]) -> None:
    groups = tuple(dict.fromkeys(groups))
    transaction.on_commit(lambda: _send(event, data, groups))
