from celery import shared_task

from conversations.services import inbound, outbound


@shared_task(
    name="conversations.deliver_message",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The service counts attempts on the row (OUTBOX_MAX_ATTEMPTS); Celery must not stop it first.
    max_retries=None,
)
def deliver_message_task(self, message_id: str) -> str:
    """Deliver one outbox message. Safe to run twice: a message that is not pending is skipped."""
    delivery = outbound.deliver_message(message_id=message_id)
    if delivery.retry_in is not None:
        raise self.retry(countdown=delivery.retry_in)
    return delivery.outcome.value


@shared_task(name="conversations.sweep_outbox")
def sweep_outbox_task() -> dict[str, int]:
    """Periodic (beat): re-queue pending messages whose task was lost, settle interrupted sends."""
    result = outbound.sweep_outbox()
    return {"requeued": result.requeued, "uncertain": result.uncertain}


@shared_task(name="conversations.forget_early_statuses", ignore_result=True)
def forget_early_statuses_task() -> int:
    """Periodic (beat): drop statuses kept for a message that never arrived."""
    return inbound.forget_stale_early_statuses()
