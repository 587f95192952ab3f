from django.db.models import QuerySet
from django.http import Http404

from instances.models import ServiceInstance, SyncJob


def list_instances(*, include_inactive: bool = False) -> QuerySet[ServiceInstance]:
    instances = ServiceInstance.objects.alive()
    if not include_inactive:
        instances = instances.filter(is_active=True)
    return instances.order_by("name", "created_at")


def get_instance(*, instance_id) -> ServiceInstance:
    instance = ServiceInstance.objects.alive().filter(pk=instance_id).first()
    if instance is None:
        raise Http404
    return instance


def get_sync_job(*, instance: ServiceInstance, sync_id) -> SyncJob:
    job = SyncJob.objects.filter(instance=instance, pk=sync_id).first()
    if job is None:
        raise Http404
    return job
