from celery import shared_task

from instances import services


@shared_task(name="instances.run_sync")
def run_sync_task(job_id: str) -> None:
    services.run_sync(job_id=job_id)
