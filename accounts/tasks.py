from celery import shared_task
from django.core.management import call_command


@shared_task(name="accounts.flush_expired_tokens")
def flush_expired_tokens_task() -> None:
    """Drop expired refresh tokens from the outstanding and blacklist tables. Idempotent."""
    call_command("flushexpiredtokens")
