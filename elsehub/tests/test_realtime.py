"""publish_on_commit reaches subscribers of every group, only after commit (real channel layer)."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from elsehub import realtime

pytestmark = pytest.mark.django_db(transaction=True)


def _subscribe(*groups: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return channel


def _receive(channel: str) -> dict:
    layer = get_channel_layer()

    async def receive():
        import asyncio

        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    return async_to_sync(receive)()


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
