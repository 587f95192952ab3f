from celery import shared_task

from webhooks import services


# acks_late + reject_on_worker_lost: a worker killed mid-batch leaves the message on the broker,
# and draining is safe to run again (the batch's transaction was rolled back).
@shared_task(name="webhooks.drain_events", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_events_task(instance_id: str, partition: int) -> int:
    return services.drain_events(instance_id=instance_id, partition=partition)


# Tasks queued by an earlier version, one per event, may still wait in the broker.
@shared_task(name="webhooks.process_event", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_webhook_event_task(event_id: int) -> None:
    services.process_event(event_id=event_id)


@shared_task(name="webhooks.sweep_pending_events", ignore_result=True)
def sweep_pending_events_task() -> int:
    return len(services.sweep_pending_events())
