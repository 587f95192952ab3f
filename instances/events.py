"""Realtime payloads of the instance events (names from DESIGN.md)."""

from elsehub.api.fields import format_timestamp
from instances.models import ServiceInstance, SyncJob

INSTANCE_STATUS = "instance:status"
QRCODE_UPDATED = "qrcode:updated"
SYNC_PROGRESS = "sync:progress"


def instance_status_payload(instance: ServiceInstance) -> dict:
    return {
        "serviceInstanceId": str(instance.id),
        "status": instance.connection_status,
        "state": instance.provider_state,
        "profileName": instance.profile_name or None,
        "changedAt": format_timestamp(instance.state_changed_at),
    }


def qrcode_payload(instance: ServiceInstance) -> dict:
    return {
        "serviceInstanceId": str(instance.id),
        "qrcode": instance.qr_code or None,
        "pairingCode": instance.pairing_code or None,
        "updatedAt": format_timestamp(instance.qr_updated_at),
    }


def sync_progress_payload(job: SyncJob) -> dict:
    return {
        "syncId": str(job.id),
        "serviceInstanceId": str(job.instance_id),
        "status": job.status,
        "contacts": {"synced": job.contacts_synced, "total": job.contacts_total},
        "chats": {"synced": job.chats_synced, "total": job.chats_total},
        "error": job.error or None,
    }
