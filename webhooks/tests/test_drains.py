"""Drains: stored events applied a batch per transaction, per number and partition, with the real
conversation store behind them (no stand-in): partitions, coalesced scheduling, constant queries
per batch, a failing event isolated, turns between partitions, two drains at once."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact
from conversations.models import ChatStatus, Conversation, Message
from conversations.services import inbound
from elsehub.tests.concurrency import run_at_once
from instances.models import Provider
from webhooks import services, tasks
from webhooks.envelopes import evolution_chat_key, meta_chat_key
from webhooks.models import EventState, WebhookEvent
from webhooks.services import processing
from webhooks.tests.conftest import META_PHONE_ID, raw

pytestmark = pytest.mark.django_db


def upsert(customer: int, n: int, *, text: str | None = None) -> tuple[dict, bytes]:
    """A customer's text as Evolution sends it: customer ``customer``'s ``n``-th message."""
    payload = json.loads(raw("evolution", "messages_upsert__text.json"))
    key = payload["data"]["key"]
    key["remoteJid"] = f"55119{customer:08d}@s.whatsapp.net"
    key.pop("remoteJidAlt")
    key["id"] = f"MSG-{customer}-{n}"
    payload["data"]["pushName"] = f"Cliente {customer}"
    payload["data"]["message"] = {"conversation": text or f"mensagem {n} do cliente {customer}"}
    payload["data"]["messageTimestamp"] = 1763900000 + n
    return payload, json.dumps(payload).encode()


def store(instance, bodies) -> list[WebhookEvent]:
    """Stored as the webhook view stores them, with no drain run (the commit hooks are dropped)."""
    events = []
    for payload, body in bodies:
        events.append(services.receive_evolution(instance=instance, payload=payload, raw_body=body))
    return events


class Queued(list):
    """(instance id, partition) of every drain queued, and in ``countdowns`` the delay of each."""

    def __init__(self):
        super().__init__()
        self.countdowns: list = []

    def apply_async(self, args, countdown=None):
        self.append(args)
        self.countdowns.append(countdown)


@pytest.fixture
def queued(monkeypatch) -> Queued:
    """Drains are only recorded; nothing runs."""
    calls = Queued()
    monkeypatch.setattr(tasks.drain_events_task, "apply_async", calls.apply_async)
    return calls


# ------------------------------------------------------------------------------ partitions


def test_the_events_of_one_chat_share_a_partition_and_chats_spread_over_them(
    evolution_instance, settings, queued, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_PARTITIONS = 4
    with django_capture_on_commit_callbacks(execute=False):
        events = store(evolution_instance, [upsert(customer, n) for customer in range(40) for n in range(2)])
    by_chat: dict[str, set[int]] = {}
    for event in events:
        by_chat.setdefault(evolution_chat_key(event.payload), set()).add(event.partition)
    assert all(len(partitions) == 1 for partitions in by_chat.values())
    assert {event.partition for event in events} == {0, 1, 2, 3}
    assert services.partition_of("5511900000001@s.whatsapp.net") == services.partition_of(
        "5511900000001@s.whatsapp.net"
    )


def test_one_partition_when_partitioning_is_off_or_the_chat_is_unknown(settings):
    settings.WEBHOOK_PARTITIONS = 1
    assert services.partition_of("5511900000001@s.whatsapp.net") == 0
    settings.WEBHOOK_PARTITIONS = 4
    assert services.partition_of("") == 0


def test_chat_keys_read_from_each_envelope():
    assert evolution_chat_key(upsert(7, 1)[0]) == "5511900000007@s.whatsapp.net"
    status = json.loads(raw("evolution", "messages_update__read.json"))
    assert evolution_chat_key(status).endswith("@s.whatsapp.net")
    assert evolution_chat_key({"event": "connection.update", "data": {"state": "open"}}) == ""
    by_lid = upsert(7, 2)[0]
    by_lid["data"]["key"].update(remoteJid="184467440737095@lid", remoteJidAlt="5511900000007@s.whatsapp.net")
    assert evolution_chat_key(by_lid) == "5511900000007@s.whatsapp.net"  # one customer, one partition
    by_lid["data"]["key"].pop("remoteJidAlt")
    assert evolution_chat_key(by_lid) == "184467440737095@lid"
    assert evolution_chat_key("not a dict") == ""
    meta = json.loads(raw("meta", "messages__text.json"))
    assert meta_chat_key(meta) == meta["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
    assert meta_chat_key({"entry": [{"changes": [{"field": "account_update", "value": {}}]}]}) == ""


def test_a_meta_batch_is_stored_with_the_partition_of_its_customer(meta_instance, app_secret, settings, queued):
    from webhooks.verification import MetaSender

    settings.WEBHOOK_PARTITIONS = 4
    body = raw("meta", "messages__text.json")
    payload = json.loads(body)
    sender = MetaSender(app_secret=True, instances={META_PHONE_ID: meta_instance})
    [event] = services.receive_meta(sender=sender, payload=payload, raw_body=body)
    assert event.partition == services.partition_of(meta_chat_key(payload))


# ------------------------------------------------------------------------------ scheduling


def test_a_queued_drain_is_not_queued_again_until_it_starts(evolution_instance, settings, queued):
    settings.WEBHOOK_COALESCE_DRAINS = True
    settings.WEBHOOK_PARTITIONS = 1
    store(evolution_instance, [upsert(1, n) for n in range(5)])  # commit hooks run: TestCase captures them
    assert queued == []  # nothing committed yet in this test's transaction
    services.schedule_drains([(evolution_instance.pk, 0)] * 5)
    services.schedule_drains([(evolution_instance.pk, 0)])
    assert queued == [(str(evolution_instance.pk), 0)]
    # It starts a little later, so that the events arriving meanwhile join its first batch.
    assert queued.countdowns == [settings.WEBHOOK_DRAIN_DELAY] and settings.WEBHOOK_DRAIN_DELAY > 0

    # The drain starts: an event committed from now on needs (and gets) a new one.
    services.drain_events(instance_id=evolution_instance.pk, partition=0)
    services.schedule_drains([(evolution_instance.pk, 0)])
    assert len(queued) == 2
    # The sweeper queues one whatever the key says (the queued task may be lost).
    services.schedule_drains([(evolution_instance.pk, 0)], force=True)
    assert len(queued) == 3
    settings.WEBHOOK_DRAIN_DELAY = 0
    services.schedule_drains([(evolution_instance.pk, 1)])
    assert queued.countdowns[-1] is None


def test_without_a_shared_cache_every_event_queues_a_drain(evolution_instance, settings, queued):
    settings.WEBHOOK_COALESCE_DRAINS = False
    assert services.schedule_drains([(evolution_instance.pk, 0)] * 3) == 1  # one call, pairs deduplicated
    services.schedule_drains([(evolution_instance.pk, 0)])
    services.schedule_drains([(evolution_instance.pk, 1)])
    assert queued == [(str(evolution_instance.pk), 0)] * 2 + [(str(evolution_instance.pk), 1)]


def test_receiving_queues_the_drains_of_the_new_events_after_commit(
    evolution_instance, settings, queued, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_COALESCE_DRAINS = False
    settings.WEBHOOK_PARTITIONS = 4
    with django_capture_on_commit_callbacks(execute=True):
        [event] = store(evolution_instance, [upsert(3, 1)])
    assert queued == [(str(evolution_instance.pk), event.partition)]
    with django_capture_on_commit_callbacks(execute=True):
        store(evolution_instance, [upsert(3, 1)])  # the same body again: nothing new to drain
    assert len(queued) == 1


# ------------------------------------------------------------------------------ applying batches


def test_a_drain_applies_every_event_of_its_partition_in_arrival_order(
    evolution_instance, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_PARTITIONS = 1
    with django_capture_on_commit_callbacks(execute=False):
        events = store(evolution_instance, [upsert(customer, n) for n in range(3) for customer in range(4)])
    assert services.drain_events(instance_id=evolution_instance.pk, partition=0) == 12

    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {EventState.PROCESSED}
    assert all(event.processed_at is not None for event in WebhookEvent.objects.all())
    assert Contact.objects.count() == 4
    assert Conversation.objects.filter(status=ChatStatus.OPEN).count() == 4
    for conversation in Conversation.objects.select_related("contact"):
        texts = list(conversation.messages.order_by("timestamp").values_list("content", flat=True))
        customer = int(conversation.contact.phone[-8:])
        assert texts == [f"mensagem {n} do cliente {customer}" for n in range(3)]
        assert conversation.message_count == 3
        assert conversation.contact.name == f"Cliente {customer}"
    # Drained again: nothing is PENDING, nothing changes.
    assert services.drain_events(instance_id=evolution_instance.pk, partition=0) == 0
    assert Message.objects.count() == 12
    assert events[0].pk < events[-1].pk


def test_a_batch_costs_the_same_queries_whatever_its_size(
    evolution_instance, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_PARTITIONS = 1

    def drained(customers: range, messages: range) -> int:
        with django_capture_on_commit_callbacks(execute=False):
            store(evolution_instance, [upsert(c, n) for n in messages for c in customers])
        with CaptureQueriesContext(connection) as queries:
            services.process_batch(instance_id=evolution_instance.pk, partition=0, limit=100)
        return len(queries)

    drained(range(0, 3), range(1))  # the first also notes the webhook time on the number
    # New customers (contacts and conversations created), then known ones (counters updated).
    assert drained(range(3, 5), range(1)) == drained(range(10, 40), range(2))
    assert drained(range(3, 5), range(1, 2)) == drained(range(10, 40), range(2, 5))
    assert Message.objects.count() == 3 + 2 + 60 + 2 + 90


def test_a_failing_event_holds_back_only_itself(
    evolution_instance, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_PARTITIONS = 1
    real_fields = inbound.message_fields

    def fields(event):
        if event.text == "veneno":
            raise RuntimeError("cannot store this one")
        return real_fields(event)

    monkeypatch.setattr(inbound.messages, "message_fields", fields)  # where store_customer_messages looks it up
    with django_capture_on_commit_callbacks(execute=False):
        events = store(evolution_instance, [upsert(1, 1), upsert(2, 1, text="veneno"), upsert(3, 1)])
    assert services.drain_events(instance_id=evolution_instance.pk, partition=0) == 3

    states = dict(WebhookEvent.objects.values_list("pk", "state"))
    assert [states[event.pk] for event in events] == [EventState.PROCESSED, EventState.FAILED, EventState.PROCESSED]
    poisoned = WebhookEvent.objects.get(pk=events[1].pk)
    assert poisoned.attempts == 1 and "cannot store this one" in poisoned.last_error
    assert poisoned.next_attempt_at is not None  # retried by the sweeper, with backoff
    assert sorted(Message.objects.values_list("external_id", flat=True)) == ["MSG-1-1", "MSG-3-1"]


def test_a_drain_for_a_deleted_number_ignores_its_events(
    evolution_instance, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_PARTITIONS = 1
    with django_capture_on_commit_callbacks(execute=False):
        store(evolution_instance, [upsert(1, 1), upsert(1, 2)])
    evolution_instance.delete()  # soft delete
    assert services.drain_events(instance_id=evolution_instance.pk, partition=0) == 2
    assert set(WebhookEvent.objects.values_list("state", "last_error")) == {(EventState.IGNORED, services.NO_INSTANCE)}
    assert Message.objects.count() == 0


def test_a_busy_partition_takes_turns(
    evolution_instance, settings, monkeypatch, queued, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_PARTITIONS = 1
    settings.WEBHOOK_BATCH_SIZE = 2
    monkeypatch.setattr(processing, "DRAIN_MAX_BATCHES", 2)
    with django_capture_on_commit_callbacks(execute=False):
        store(evolution_instance, [upsert(1, n) for n in range(7)])

    assert services.drain_events(instance_id=evolution_instance.pk, partition=0) == 4
    assert queued == [(str(evolution_instance.pk), 0)]  # its successor, at the back of the queue
    assert services.drain_events(instance_id=evolution_instance.pk, partition=0) == 3
    assert len(queued) == 1  # done: no successor
    assert Message.objects.count() == 7


@pytest.mark.django_db(transaction=True)
def test_two_drains_of_one_partition_at_once_store_each_message_once(settings, queued):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises them anyway")
    from instances.tests.factories import ServiceInstanceFactory

    settings.WEBHOOK_PARTITIONS = 1
    settings.WEBHOOK_BATCH_SIZE = 5
    settings.WEBHOOK_COALESCE_DRAINS = False
    instance = ServiceInstanceFactory(provider=Provider.EVOLUTION_API)
    store(instance, [upsert(customer, n) for n in range(4) for customer in range(10)])  # drains only queued
    drained = run_at_once([lambda: services.drain_events(instance_id=instance.pk, partition=0)] * 2)
    leftover = services.drain_events(instance_id=instance.pk, partition=0)  # rows one drain skipped
    assert sum(drained) + leftover == 40
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {EventState.PROCESSED}
    assert Message.objects.count() == 40
    assert Message.objects.values("external_id").distinct().count() == 40
    assert sorted(Conversation.objects.values_list("message_count", flat=True)) == [4] * 10
