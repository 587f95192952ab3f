"""publish_on_commit reaches subscribers of every group, only after commit, in order, without making
the committing thread wait for Redis (real channel layer)."""

import asyncio
import gc
import logging
import os
import threading
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.db import transaction

from elsehub import realtime
from elsehub.celery import worker_process_shutdown

pytestmark = pytest.mark.django_db(transaction=True)


def _subscribe(*groups: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return channel


def _receive(channel: str) -> dict:
    return _receive_all(channel, 1)[0]


def _receive_all(channel: str, count: int, timeout: float = 5) -> list[dict]:
    layer = get_channel_layer()

    async def receive():
        return [await asyncio.wait_for(layer.receive(channel), timeout=timeout) for _ in range(count)]

    return async_to_sync(receive)()


def _ids(messages: list[dict]) -> list:
    return [message["data"]["id"] for message in messages]


@pytest.fixture
def redis_layer():
    layer = get_channel_layer()
    if not isinstance(layer, RedisChannelLayer):
        pytest.skip("needs Redis (REDIS_URL)")
    realtime._current_publisher()  # started here, so that no test times the start of a thread
    yield layer
    assert realtime.flush(timeout=10), "the publisher did not drain after the test"


def test_publish_on_commit_reaches_every_group_after_commit():
    supervisors = _subscribe(realtime.SUPERVISORS)
    operator = _subscribe(realtime.user_group("u1"))

    with transaction.atomic():
        realtime.publish_on_commit("message:new", {"id": "m1"}, [realtime.SUPERVISORS, realtime.user_group("u1")])

    for channel in (supervisors, operator):
        assert _receive(channel) == {"type": "realtime.event", "event": "message:new", "data": {"id": "m1"}}


def test_publish_on_commit_sends_nothing_when_rolled_back():
    channel = _subscribe(realtime.SUPERVISORS)

    with pytest.raises(RuntimeError), transaction.atomic():
        realtime.publish_on_commit("message:new", {"id": "lost"}, [realtime.SUPERVISORS])
        raise RuntimeError("rollback")
    realtime.publish_on_commit("message:new", {"id": "kept"}, [realtime.SUPERVISORS])  # autocommit: at once

    assert _receive(channel)["data"] == {"id": "kept"}


def test_events_arrive_in_the_order_they_were_committed(redis_layer):
    supervisors = _subscribe(realtime.SUPERVISORS)
    conversation = _subscribe(realtime.conversation_group("c1"))
    groups = [realtime.SUPERVISORS, realtime.conversation_group("c1")]

    with transaction.atomic():
        for n in range(10):
            realtime.publish_on_commit("message:new", {"id": n}, groups)
    for n in range(10, 20):  # autocommit: each one on its own commit
        realtime.publish_on_commit("message:status", {"id": n}, groups)
    assert realtime.flush()

    for channel in (supervisors, conversation):
        assert _ids(_receive_all(channel, 20)) == list(range(20))


def test_send_returns_without_waiting_and_flush_waits(redis_layer, monkeypatch):
    channel = _subscribe(realtime.SUPERVISORS, realtime.user_group("u1"))
    real_group_send, sent = redis_layer.group_send, []

    async def slow_group_send(group, message):
        await asyncio.sleep(0.2)
        await real_group_send(group, message)
        sent.append((group, message["data"]["id"]))

    monkeypatch.setattr(redis_layer, "group_send", slow_group_send)
    groups = (realtime.SUPERVISORS, realtime.user_group("u1"))

    started = time.monotonic()
    realtime._send("message:new", {"id": 1}, groups)
    realtime._send("message:new", {"id": 2}, groups)
    elapsed = time.monotonic() - started
    assert elapsed < 0.2  # sending both takes four sleeps of 0.2 s

    assert realtime.flush(timeout=10)
    assert len(sent) == 4
    assert _ids(_receive_all(channel, 4)) == [1, 1, 2, 2]


def test_flush_reports_a_timeout(redis_layer, monkeypatch, caplog):
    real_group_send = redis_layer.group_send

    async def slow_group_send(group, message):
        await asyncio.sleep(1)
        await real_group_send(group, message)

    monkeypatch.setattr(redis_layer, "group_send", slow_group_send)
    realtime._send("message:new", {"id": 1}, (realtime.SUPERVISORS,))

    with caplog.at_level(logging.WARNING, logger="elsehub.realtime"):
        assert realtime.flush(timeout=0.05) is False
        assert realtime.flush(timeout=10) is True
    [timed_out] = [record for record in caplog.records if record.getMessage() == "realtime.flush_timed_out"]
    assert timed_out.pending == 1


def test_a_failed_send_is_logged_and_the_next_event_still_goes_out(redis_layer, monkeypatch, caplog):
    channel = _subscribe(realtime.SUPERVISORS)
    real_group_send = redis_layer.group_send

    async def failing_group_send(group, message):
        if message["data"]["id"] == "boom":
            raise ConnectionError("redis went away")
        await real_group_send(group, message)

    monkeypatch.setattr(redis_layer, "group_send", failing_group_send)

    with caplog.at_level(logging.WARNING, logger="elsehub.realtime"):
        for event_id in ("before", "boom", "after"):
            realtime._send("message:new", {"id": event_id}, (realtime.SUPERVISORS,))
        assert realtime.flush()

    assert _ids(_receive_all(channel, 2)) == ["before", "after"]
    [failure] = [record for record in caplog.records if record.getMessage() == "realtime.publish_failed"]
    assert failure.levelno == logging.WARNING
    assert failure.groups == (realtime.SUPERVISORS,)
    assert isinstance(failure.exc_info[1], ConnectionError)


def test_a_hung_send_times_out_and_the_queue_moves_on(redis_layer, monkeypatch, caplog):
    channel = _subscribe(realtime.SUPERVISORS)
    real_group_send = redis_layer.group_send

    async def hanging_group_send(group, message):
        if message["data"]["id"] == "hang":
            await asyncio.sleep(60)
        await real_group_send(group, message)

    monkeypatch.setattr(redis_layer, "group_send", hanging_group_send)
    monkeypatch.setattr(realtime, "SEND_TIMEOUT", 0.2)

    with caplog.at_level(logging.WARNING, logger="elsehub.realtime"):
        for event_id in ("hang", "after"):
            realtime._send("message:new", {"id": event_id}, (realtime.SUPERVISORS,))
        assert realtime.flush(timeout=10)

    assert _ids(_receive_all(channel, 1)) == ["after"]
    [failure] = [record for record in caplog.records if record.getMessage() == "realtime.publish_failed"]
    assert isinstance(failure.exc_info[1], TimeoutError)


def test_a_full_queue_drops_events_instead_of_growing(redis_layer, monkeypatch, caplog):
    channel = _subscribe(realtime.SUPERVISORS)
    real_group_send = redis_layer.group_send
    gate = threading.Event()

    async def stuck_group_send(group, message):
        await asyncio.to_thread(gate.wait, 10)
        await real_group_send(group, message)

    monkeypatch.setattr(redis_layer, "group_send", stuck_group_send)
    monkeypatch.setattr(realtime, "MAX_PENDING", 2)

    with caplog.at_level(logging.WARNING, logger="elsehub.realtime"):
        for n in range(1, 6):
            realtime._send("message:new", {"id": n}, (realtime.SUPERVISORS,))
        assert realtime.flush(timeout=0.2) is False  # the marker waits behind the stuck event
        gate.set()
        assert realtime.flush(timeout=10)

    # One event being sent and one queued fill the limit of two; the other three were dropped.
    dropped = [record for record in caplog.records if record.getMessage() == "realtime.queue_full"]
    assert [record.event for record in dropped] == ["message:new"] * 3

    # Once drained, there is room again; nothing of 3 to 5 arrived before it.
    realtime._send("message:new", {"id": 6}, (realtime.SUPERVISORS,))
    assert realtime.flush()
    assert _ids(_receive_all(channel, 3)) == [1, 2, 6]


def test_flush_is_a_no_op_when_this_process_never_published(monkeypatch):
    monkeypatch.setattr(realtime, "_publisher", None)
    assert realtime.flush(timeout=0) is True


def test_a_forked_process_starts_its_own_publisher_and_flushes_it_at_exit(redis_layer, monkeypatch, caplog):
    parent = realtime._current_publisher()
    registered = []
    monkeypatch.setattr(realtime.atexit, "register", registered.append)
    parent.pid = -1  # as the parent's publisher looks in a forked child (it stays that way: abandoned)

    assert realtime.flush(timeout=0) is True  # the parent's queue is not this process's to wait for
    child = realtime._current_publisher()
    assert child is not parent and child.pid == os.getpid()
    assert registered == []  # the flush registered by the parent runs in the child too

    channel = _subscribe(realtime.SUPERVISORS)
    realtime._send("message:new", {"id": "from the child"}, (realtime.SUPERVISORS,))
    assert realtime.flush()
    assert _receive(channel)["data"] == {"id": "from the child"}
    del parent
    gc.collect()  # the inherited publisher is not collected with its consumer still waiting
    assert not [record for record in caplog.records if record.name == "asyncio"]


def test_the_first_publisher_registers_the_exit_flush(monkeypatch):
    registered = []
    monkeypatch.setattr(realtime.atexit, "register", registered.append)
    monkeypatch.setattr(realtime, "_Publisher", lambda: SimpleNamespace(pid=os.getpid()))
    monkeypatch.setattr(realtime, "_publisher", None)
    monkeypatch.setattr(realtime, "_flush_at_exit", False)

    publisher = realtime._current_publisher()

    assert registered == [realtime.flush]
    assert realtime._current_publisher() is publisher and registered == [realtime.flush]


def test_a_celery_child_flushes_before_it_exits(monkeypatch):
    calls = []
    monkeypatch.setattr(realtime, "flush", lambda timeout=5.0: calls.append(timeout) or True)

    worker_process_shutdown.send(sender=None, pid=123, exitcode=0)

    assert calls == [5.0]
