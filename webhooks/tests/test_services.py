"""The inbox services: enqueue on commit, dispatch of neutral events, idempotency, failures with
backoff, the sweeper and replay."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from instances.models import ConnectionStatus, Provider
from instances.providers.types import InboundMessage, StatusUpdate
from webhooks import services, tasks
from webhooks.models import EventState, WebhookEvent
from webhooks.tests.conftest import META_PHONE_ID, raw
from webhooks.verification import MetaSender

pytestmark = pytest.mark.django_db


def _receive(instance, name: str, body_suffix: bytes = b"") -> WebhookEvent:
    folder = "evolution" if instance.provider == Provider.EVOLUTION_API else "meta"
    body = raw(folder, name) + body_suffix  # a suffix makes a new delivery of the same payload
    return services.receive_event(
        provider=instance.provider, instance=instance, event_type="test", payload=json.loads(body), raw_body=body
    )


def _process(event: WebhookEvent) -> WebhookEvent:
    services.process_event(event_id=event.pk)
    event.refresh_from_db()
    return event


# ------------------------------------------------------------------------------ receiving


def test_receive_event_enqueues_processing_only_after_commit(
    evolution_instance, applied, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = _receive(evolution_instance, "messages_upsert__text.json")
    assert len(callbacks) == 1
    assert applied == []
    assert WebhookEvent.objects.get().state == EventState.PENDING

    callbacks[0]()  # the commit: the (eager) task runs
    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    assert len(applied) == 1


def test_receive_event_duplicate_enqueues_nothing_more(evolution_instance, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as first:
        _receive(evolution_instance, "messages_upsert__text.json")
    with django_capture_on_commit_callbacks() as second:
        _receive(evolution_instance, "messages_upsert__text.json")
    assert (len(first), len(second)) == (1, 0)
    assert WebhookEvent.objects.count() == 1


def test_receive_event_survives_a_broker_outage(evolution_instance, monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.drain_events_task, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        event = _receive(evolution_instance, "messages_upsert__text.json")
    # Stored and left PENDING for the sweeper; the provider got its 200.
    event.refresh_from_db()
    assert event.state == EventState.PENDING


def test_receive_meta_splits_the_batch_into_one_row_per_number(meta_instance):
    body = raw("meta", "batch__two_entries.json")
    sender = MetaSender(app_secret=True, instances={META_PHONE_ID: meta_instance})
    events = services.receive_meta(sender=sender, payload=json.loads(body), raw_body=body)
    assert [(e.service_instance, e.state) for e in events] == [
        (meta_instance, EventState.PENDING),
        (None, EventState.IGNORED),  # account_update: no number
        (None, EventState.IGNORED),  # a number no instance owns
    ]
    assert len({e.dedupe_key for e in events}) == 3


# ------------------------------------------------------------------------------ dispatching


def test_process_event_connection_update_applies_the_connection(evolution_instance):
    event = _process(_receive(evolution_instance, "connection_update__open.json"))
    assert event.state == EventState.PROCESSED
    assert event.processed_at is not None
    evolution_instance.refresh_from_db()
    assert evolution_instance.connection_status == ConnectionStatus.CONNECTED
    assert evolution_instance.profile_name == "Acme Support"


def test_process_event_qr_update_applies_the_qr(evolution_instance, captured_events):
    event = _process(_receive(evolution_instance, "qrcode_updated__qr.json"))
    assert event.state == EventState.PROCESSED
    evolution_instance.refresh_from_db()
    assert evolution_instance.qr_code.startswith("data:image/png;base64,")
    assert evolution_instance.qr_code_raw.startswith(
        "2@p8Lx3qZ2vN0kR7tY1wA5sD9fG4hJ6kL8zX2cV5bN7mQ1wE3rT6yU9iO0pA4sD7fG"
    )
    assert evolution_instance.connection_status == ConnectionStatus.CONNECTING


def test_process_event_message_goes_to_apply_provider_event(evolution_instance, applied):
    event = _process(_receive(evolution_instance, "messages_upsert__text.json"))
    assert event.state == EventState.PROCESSED
    assert len(applied) == 1
    instance_id, provider_event = applied[0]
    assert instance_id == evolution_instance.pk
    assert isinstance(provider_event, InboundMessage)
    assert provider_event.provider_message_id == "A5561E44C2A63682E4295B52F484C14E"


def test_process_event_meta_batch_applies_every_event_of_its_number(meta_instance, applied):
    body = raw("meta", "batch__two_entries.json")
    sender = MetaSender(app_secret=True, instances={META_PHONE_ID: meta_instance})
    event = services.receive_meta(sender=sender, payload=json.loads(body), raw_body=body)[0]
    _process(event)
    ids = [provider_event.provider_message_id for _instance, provider_event in applied]
    assert ids == ["wamid.BATCH.M1", "wamid.BATCH.M2", "wamid.BATCH.M3", "wamid.BATCH.S1", "wamid.BATCH.S2"]
    assert isinstance(applied[-1][1], StatusUpdate)
    assert {instance_id for instance_id, _event in applied} == {meta_instance.pk}


def test_process_event_twice_is_a_no_op(evolution_instance, applied):
    event = _process(_receive(evolution_instance, "messages_upsert__text.json"))
    processed_at = event.processed_at
    again = _process(event)
    assert again.state == EventState.PROCESSED
    assert again.processed_at == processed_at
    assert len(applied) == 1


def test_process_event_unknown_event_type_is_ignored(evolution_instance, applied):
    event = _process(_receive(evolution_instance, "chats_upsert__unread_reset.json"))
    assert event.state == EventState.IGNORED
    assert applied == []


def test_process_event_payload_of_the_wrong_shape_is_ignored_not_retried(evolution_instance):
    event = WebhookEvent.objects.create(
        provider=Provider.EVOLUTION_API, service_instance=evolution_instance, payload=[1, 2], dedupe_key="x" * 64
    )
    event = _process(event)
    assert event.state == EventState.IGNORED
    assert event.attempts == 0
    assert event.last_error


def test_process_event_for_a_deleted_instance_is_ignored(evolution_instance, applied):
    event = _receive(evolution_instance, "messages_upsert__text.json")
    evolution_instance.deleted_at = timezone.now()
    evolution_instance.save()
    assert _process(event).state == EventState.IGNORED
    assert applied == []


def test_process_event_notes_the_webhook_time_on_the_instance(evolution_instance, applied):
    _process(_receive(evolution_instance, "messages_upsert__text.json"))
    evolution_instance.refresh_from_db()
    assert evolution_instance.last_webhook_at is not None


def test_process_event_costs_a_fixed_handful_of_queries(evolution_instance, applied, django_assert_max_num_queries):
    first = _receive(evolution_instance, "messages_upsert__text.json")
    second = _receive(evolution_instance, "messages_update__read.json")
    _process(first)  # touches last_webhook_at
    # Lock-and-load (one query with the instance), the state update, and the savepoint pair;
    # on PostgreSQL also the SET LOCAL that spares the commit's disk flush.
    with django_assert_max_num_queries(5 if connection.vendor == "postgresql" else 4):
        services.process_event(event_id=second.pk)


# ------------------------------------------------------------------------------ failures and retries


def test_process_event_failing_apply_is_failed_with_backoff(evolution_instance, failing_apply):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        event = _process(_receive(evolution_instance, "messages_upsert__text.json"))
    assert event.state == EventState.FAILED
    assert event.attempts == 1
    assert "conversation store unavailable" in event.last_error
    assert event.next_attempt_at == start + timedelta(seconds=60)
    assert event.processed_at is None


def test_process_event_backoff_doubles_and_caps_at_one_hour():
    assert [services.backoff(n).total_seconds() for n in (1, 2, 3, 6, 7, 20)] == [60, 120, 240, 1920, 3600, 3600]


def test_process_event_gives_up_after_max_attempts(evolution_instance, failing_apply, settings, caplog):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    event = _process(_receive(evolution_instance, "messages_upsert__text.json"))
    assert (event.attempts, event.next_attempt_at is not None) == (1, True)
    event = _process(event)
    assert event.state == EventState.FAILED
    assert event.attempts == 2
    assert event.next_attempt_at is None  # the sweeper will not pick it up again
    assert any(r.message == "webhooks.process.failed" and r.gave_up for r in caplog.records)


def test_sweep_retries_a_failed_event_once_due_and_then_it_is_processed(
    evolution_instance, failing_apply, django_capture_on_commit_callbacks
):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        event = _process(_receive(evolution_instance, "messages_upsert__text.json"))
    assert event.state == EventState.FAILED
    failing_apply["fail"] = False

    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert services.sweep_pending_events() == []
    event.refresh_from_db()
    assert event.state == EventState.FAILED

    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert services.sweep_pending_events() == [event.pk]
    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    assert event.attempts == 1
    assert failing_apply["calls"] == 2


def test_sweep_requeues_a_pending_event_older_than_a_minute(
    evolution_instance, applied, django_capture_on_commit_callbacks
):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        # The process "died" between commit and enqueue: the callback is never run.
        with django_capture_on_commit_callbacks(execute=False):
            event = _receive(evolution_instance, "messages_upsert__text.json")
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert services.sweep_pending_events() == []
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert services.sweep_pending_events() == [event.pk]
    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    assert len(applied) == 1


def test_sweep_run_twice_queues_an_event_once(evolution_instance, django_capture_on_commit_callbacks):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        with django_capture_on_commit_callbacks(execute=False):
            event = _receive(evolution_instance, "messages_upsert__text.json")
    with time_machine.travel(start + timedelta(seconds=90), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            first = services.sweep_pending_events()
            second = services.sweep_pending_events()
    assert (first, second) == ([event.pk], [])
    assert len(callbacks) == 1


def test_sweep_is_bounded_by_its_batch_size(evolution_instance, django_capture_on_commit_callbacks):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        with django_capture_on_commit_callbacks(execute=False):
            for name in ("messages_upsert__text.json", "messages_update__read.json", "presence_update__composing.json"):
                _receive(evolution_instance, name)
    with time_machine.travel(start + timedelta(seconds=90), tick=False):
        with django_capture_on_commit_callbacks(execute=False):
            assert len(services.sweep_pending_events(batch_size=2)) == 2
            assert len(services.sweep_pending_events(batch_size=2)) == 1


# ------------------------------------------------------------------------------ replay and tasks


def test_replay_events_processes_again_without_changing_the_domain(
    evolution_instance, django_capture_on_commit_callbacks
):
    event = _process(_receive(evolution_instance, "connection_update__open.json"))
    evolution_instance.refresh_from_db()
    before = (evolution_instance.connection_status, evolution_instance.state_changed_at)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.replay_events(event_ids=[event.pk]) == 1
    event.refresh_from_db()
    evolution_instance.refresh_from_db()
    assert event.state == EventState.PROCESSED
    assert (evolution_instance.connection_status, evolution_instance.state_changed_at) == before


def test_an_older_connection_report_replayed_or_retried_later_changes_nothing(
    evolution_instance, captured_events, django_capture_on_commit_callbacks
):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        opened = _receive(evolution_instance, "connection_update__open.json")
        qr = _receive(evolution_instance, "qrcode_updated__qr.json")
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        closed = _receive(evolution_instance, "connection_update__close_logged_out.json")
    # The newest report first (the older ones failed, or are replayed from the admin).
    _process(closed)
    evolution_instance.refresh_from_db()
    assert evolution_instance.connection_status == ConnectionStatus.DISCONNECTED
    published = len(captured_events)

    assert (_process(opened).state, _process(qr).state) == (EventState.PROCESSED, EventState.PROCESSED)
    with django_capture_on_commit_callbacks(execute=True):
        services.replay_events(event_ids=[opened.pk])
    evolution_instance.refresh_from_db()
    assert evolution_instance.connection_status == ConnectionStatus.DISCONNECTED
    assert evolution_instance.qr_code == ""
    assert evolution_instance.state_as_of == closed.received_at
    assert len(captured_events) == published  # no instance:status or qrcode:updated for stale reports

    # A newer report still applies.
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        reopened = _receive(evolution_instance, "connection_update__open.json", body_suffix=b" ")
    _process(reopened)
    evolution_instance.refresh_from_db()
    assert evolution_instance.connection_status == ConnectionStatus.CONNECTED


def test_a_webhook_that_arrived_before_a_status_check_does_not_undo_it(evolution_instance, fake_provider):
    from instances import services as instance_services
    from instances.providers.types import ConnectionState

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        closed = _receive(evolution_instance, "connection_update__close_logged_out.json")  # waits for its drain
    fake_provider.state[str(evolution_instance.id)] = ConnectionState.CONNECTED
    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        instance_services.refresh_status(instance=evolution_instance)  # asked the provider after it
    _process(closed)
    evolution_instance.refresh_from_db()
    assert evolution_instance.connection_status == ConnectionStatus.CONNECTED


def test_tasks_names_and_delivery_options(settings):
    process = tasks.process_webhook_event_task
    assert process.name == "webhooks.process_event"
    assert process.acks_late is True
    assert process.reject_on_worker_lost is True
    sweep = settings.CELERY_BEAT_SCHEDULE["webhooks.sweep_pending_events"]["task"]
    assert tasks.sweep_pending_events_task.name == sweep


@pytest.mark.django_db(transaction=True)
def test_process_event_commits_without_waiting_for_the_disk_flush(evolution_instance):
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is a PostgreSQL setting")
    event = _receive(evolution_instance, "messages_update__read.json")
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        services.process_event(event_id=event.pk)
    assert any("synchronous_commit TO OFF" in query["sql"] for query in queries.captured_queries)
    # LOCAL: the setting ends with the transaction, so other writes keep full durability.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
