"""Every write on service instances, and the only code that calls a provider for them.

Provider calls never run inside a database transaction: a lifecycle step calls the provider
first, then records the outcome with a short UPDATE of the fields it owns.
"""

import base64
import io
import logging
import secrets
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import qrcode
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.normalization import normalize_phone
from elsehub import realtime
from elsehub.api.errors import ApplicationError, ConflictError
from instances import crypto, events
from instances.models import ConnectionStatus, Provider, ServiceInstance, SyncJob, SyncStatus
from instances.providers.base import CredentialsError
from instances.providers.base import Provider as ProviderAdapter
from instances.providers.exceptions import ProviderError, ProviderNotFound
from instances.providers.registry import adapter_class
from instances.providers.types import ConnectionInfo, ConnectionState, ProviderInstance, QRCode

logger = logging.getLogger(__name__)

WEBHOOK_PATHS = {Provider.EVOLUTION_API: "/api/webhooks/evolution", Provider.OFFICIAL_META: "/api/webhooks/meta"}
_STATE_TO_STATUS = {
    ConnectionState.CONNECTED: ConnectionStatus.CONNECTED,
    ConnectionState.CONNECTING: ConnectionStatus.CONNECTING,
    ConnectionState.DISCONNECTED: ConnectionStatus.DISCONNECTED,
    ConnectionState.ERROR: ConnectionStatus.ERROR,
}


class CredentialsInvalid(ApplicationError):
    status_code = 422

    def __init__(self, messages: list[str]):
        super().__init__(messages, code="invalid_credentials")


def webhook_url(provider: str) -> str:
    return f"{settings.APP_URL}{WEBHOOK_PATHS[provider]}"


def adapter_for(instance: ServiceInstance, *, credentials: dict | None = None) -> ProviderAdapter:
    return adapter_class(instance.provider)(
        ProviderInstance(
            id=str(instance.id),
            name=instance.name,
            phone=instance.phone,
            credentials=credentials if credentials is not None else instance.credentials,
            webhook_url=webhook_url(instance.provider),
            webhook_secret=instance.webhook_secret,
        )
    )


def _clean_credentials(provider: str, credentials: dict[str, Any]) -> dict[str, Any]:
    try:
        return adapter_class(provider).clean_credentials(credentials)
    except CredentialsError as exc:
        raise CredentialsInvalid([f"credentials.{message}" for message in exc.messages]) from exc


def _clean_phone(phone: str, *, field: str = "phone") -> str:
    """Stored as the contract shows it: E.164 digits without the "+"."""
    try:
        return normalize_phone(phone).lstrip("+")
    except ValidationError as exc:
        raise ApplicationError([f"{field}: {exc.messages[0]}"], code="invalid_phone", status_code=422) from None


def qr_image(qr: QRCode) -> str:
    """The QR as a PNG data URI: the provider's image when it sent one, else drawn from the code."""
    if qr.image:
        return qr.image if qr.image.startswith("data:") else f"data:image/png;base64,{qr.image}"
    if not qr.code:
        return ""
    buffer = io.BytesIO()
    qrcode.make(qr.code).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _same_remote(provider: str, credentials: dict, *, exclude=None) -> bool:
    """Another live instance already uses this remote number (same server + name, or phone id)."""
    key = ("serverUrl", "instanceName") if provider == Provider.EVOLUTION_API else ("phoneId",)
    wanted = tuple(str(credentials.get(field, "")).rstrip("/").lower() for field in key)
    # remote_id (instanceName / phoneId, in clear) narrows it down without decrypting every row.
    remote_id = str(credentials.get("instanceName") or credentials.get("phoneId") or "")
    candidates = ServiceInstance.objects.alive().filter(provider=provider, remote_id__iexact=remote_id)
    if exclude is not None:
        candidates = candidates.exclude(pk=exclude.pk)
    for other in candidates:
        if tuple(str(other.credentials.get(field, "")).rstrip("/").lower() for field in key) == wanted:
            return True
    return False


# ------------------------------------------------------------------------------
# State recording (also used by the webhook side)
# ------------------------------------------------------------------------------


def _record(instance: ServiceInstance, *, only_if: Q | None = None, **fields: Any) -> bool:
    """Write ``fields`` to the row (and to ``instance``); with ``only_if``, only when the row matches it."""
    fields["updated_at"] = timezone.now()
    rows = ServiceInstance.objects.filter(pk=instance.pk)
    if not (rows.filter(only_if) if only_if is not None else rows).update(**fields):
        return False
    for name, value in fields.items():
        setattr(instance, name, value)
    return True


def _record_as_of(instance: ServiceInstance, as_of: datetime | None, **fields: Any) -> bool:
    """``_record`` unless the row holds a state the provider reported after ``as_of`` (default: now)."""
    as_of = as_of or timezone.now()
    newer = Q(state_as_of__isnull=True) | Q(state_as_of__lte=as_of)
    if _record(instance, only_if=newer, state_as_of=as_of, **fields):
        return True
    logger.info("instances.state.stale_report_ignored", extra={"instance": str(instance.pk)})
    return False


def apply_connection(
    *, instance: ServiceInstance, connection: ConnectionInfo, as_of: datetime | None = None
) -> ServiceInstance:
    """Record a connection state the provider reported at ``as_of``; publishes ``instance:status``
    only when it changed. Idempotent; a report older than the one held is ignored."""
    status = _STATE_TO_STATUS[connection.state]
    changed = status != instance.connection_status
    fields: dict[str, Any] = {"connection_status": status, "provider_state": connection.raw_state or status}
    if changed:
        fields["state_changed_at"] = timezone.now()
    if connection.profile_name:
        fields["profile_name"] = connection.profile_name[:255]
    if connection.profile_picture_url:
        fields["profile_picture_url"] = connection.profile_picture_url[:1000]
    if status == ConnectionStatus.CONNECTED:
        fields.update(qr_code="", qr_code_raw="", pairing_code="", last_error="")
    with transaction.atomic():
        if not _record_as_of(instance, as_of, **fields):
            return instance
        if changed:
            realtime.publish_on_commit(
                events.INSTANCE_STATUS,
                events.instance_status_payload(instance),
                [realtime.SUPERVISORS, realtime.instance_group(instance.id)],
            )
    return instance


def apply_qr(*, instance: ServiceInstance, qr: QRCode | None, as_of: datetime | None = None) -> ServiceInstance:
    """Keep the newest QR (or clear it) and tell the supervisors watching this number; a QR older
    than the state held is ignored."""
    fields = {
        "qr_code": qr_image(qr) if qr else "",
        "qr_code_raw": (qr.code or "") if qr else "",
        "pairing_code": (qr.pairing_code or "")[:16] if qr else "",
        "qr_updated_at": timezone.now(),
    }
    if qr and instance.connection_status != ConnectionStatus.CONNECTED:
        fields.update(connection_status=ConnectionStatus.CONNECTING, provider_state="connecting")
    with transaction.atomic():
        if not _record_as_of(instance, as_of, **fields):
            return instance
        realtime.publish_on_commit(
            events.QRCODE_UPDATED,
            events.qrcode_payload(instance),
            [realtime.SUPERVISORS, realtime.instance_group(instance.id)],
        )
    return instance


def _record_error(instance: ServiceInstance, error: ProviderError) -> None:
    _record(instance, last_error=str(error.message)[:500])


# ------------------------------------------------------------------------------
# CRUD
# ------------------------------------------------------------------------------


_PENDING_TOKENS_KEY = "instances:pending-verify-tokens"


@contextmanager
def expecting_verify_token(instance: ServiceInstance):
    """While a Meta number is being created, Meta checks our callback before the row exists:
    remember (a digest of) its verify token for the length of the call, so the check passes.
    """
    if instance.provider != Provider.OFFICIAL_META:
        yield
        return
    from instances.providers.meta.signature import verify_token_for

    key = (
        f"{_PENDING_TOKENS_KEY}:{crypto.secret_digest(verify_token_for(instance.credentials, instance.webhook_secret))}"
    )
    cache.set(key, True, 300)
    try:
        yield
    finally:
        cache.delete(key)


def is_pending_verify_token(token: str) -> bool:
    return bool(token) and bool(cache.get(f"{_PENDING_TOKENS_KEY}:{crypto.secret_digest(token)}"))


def create_instance(*, name: str, phone: str, provider: str, credentials: dict[str, Any]) -> ServiceInstance:
    """Create the number on the provider (Evolution) or verify it (Meta), then save it.

    Nothing is saved when the provider refuses. The row is written after the remote call, so a
    crash between the two leaves at most an orphan on the Evolution server (see ``list_orphans``).
    """
    phone = _clean_phone(phone)
    cleaned = _clean_credentials(provider, credentials)
    if _same_remote(provider, cleaned):
        raise ConflictError(
            _("Another service instance already uses this number on the provider"), code="instance_taken"
        )
    instance = ServiceInstance(name=name.strip(), phone=phone, provider=provider)
    instance.set_credentials(cleaned)
    instance.set_webhook_secret(secrets.token_urlsafe(32))

    with expecting_verify_token(instance):
        created = adapter_for(instance).create_remote()

    now = timezone.now()
    instance.connection_status = _STATE_TO_STATUS[created.connection.state]
    instance.provider_state = created.connection.raw_state or instance.connection_status
    instance.state_changed_at = now
    instance.profile_name = (created.connection.profile_name or "")[:255]
    instance.provider_token_encrypted = ServiceInstance.encrypted_provider_token(created.instance_token)
    if created.qr:
        instance.qr_code, instance.qr_code_raw = qr_image(created.qr), created.qr.code or ""
        instance.pairing_code, instance.qr_updated_at = (created.qr.pairing_code or "")[:16], now
    with transaction.atomic():
        instance.save()
        realtime.publish_on_commit(
            events.INSTANCE_STATUS, events.instance_status_payload(instance), [realtime.SUPERVISORS]
        )
    return instance


def update_instance(
    *,
    instance: ServiceInstance,
    name: str | None = None,
    phone: str | None = None,
    provider: str | None = None,
    credentials: dict[str, Any] | None = None,
    is_active: bool | None = None,
) -> ServiceInstance:
    """Credentials merge over the stored ones: omitted or masked ("••••") values are kept."""
    new_provider = provider or instance.provider
    new_credentials = None
    if credentials is not None or new_provider != instance.provider:
        given = {key: value for key, value in (credentials or {}).items() if not str(value).startswith("••••")}
        base = instance.credentials if new_provider == instance.provider else {}
        new_credentials = _clean_credentials(new_provider, {**base, **given})
        if _same_remote(new_provider, new_credentials, exclude=instance):
            raise ConflictError(
                _("Another service instance already uses this number on the provider"), code="instance_taken"
            )
    with transaction.atomic():
        locked = ServiceInstance.objects.select_for_update().get(pk=instance.pk)
        if name is not None:
            locked.name = name.strip()
        if phone is not None:
            locked.phone = _clean_phone(phone)
        locked.provider = new_provider
        if new_credentials is not None:
            locked.set_credentials(new_credentials)
        if is_active is not None:
            locked.is_active = is_active
        locked.save()
    return locked


def delete_instance(*, instance: ServiceInstance) -> None:
    """Soft delete; the remote instance on Evolution is left alone (contract section 9)."""
    ServiceInstance.objects.filter(pk=instance.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), is_active=False, updated_at=timezone.now()
    )


# ------------------------------------------------------------------------------
# Lifecycle
# ------------------------------------------------------------------------------


def _call(instance: ServiceInstance, operation):
    try:
        return operation(adapter_for(instance))
    except ProviderError as error:
        _record_error(instance, error)
        raise


def connect_instance(*, instance: ServiceInstance, phone_number: str | None = None) -> ServiceInstance:
    digits = None
    if phone_number:
        digits = _clean_phone(phone_number, field="phoneNumber")
    asked_at = timezone.now()
    result = _call(instance, lambda adapter: adapter.connect(phone_number=digits))
    if result.qr is not None:
        apply_qr(instance=instance, qr=result.qr, as_of=asked_at)
    return apply_connection(instance=instance, connection=result.connection, as_of=asked_at)


def current_qrcode(*, instance: ServiceInstance) -> ServiceInstance:
    """The QR to scan: the stored one while fresh (WhatsApp rotates it every ~45 s), else a new one."""
    adapter = adapter_for(instance)
    if not adapter.supports_qr:
        # Checked first: a Meta number is always "connected", which would hide the real reason.
        raise adapter.unsupported(_("QR code connection"))
    if instance.connection_status == ConnectionStatus.CONNECTED:
        raise ApplicationError(_("The instance is already connected"), code="already_connected")
    fresh = instance.qr_updated_at and (timezone.now() - instance.qr_updated_at).total_seconds() < 40
    if instance.qr_code and fresh:
        return instance
    instance = connect_instance(instance=instance)
    if not instance.qr_code:
        raise ApplicationError(_("The QR code is not available yet; try again in a few seconds"), code="qr_pending")
    return instance


def refresh_status(*, instance: ServiceInstance) -> ServiceInstance:
    asked_at = timezone.now()
    try:
        connection = adapter_for(instance).connection_state()
    except ProviderError as error:
        _record_error(instance, error)
        connection = ConnectionInfo(state=ConnectionState.ERROR, raw_state="error")
    return apply_connection(instance=instance, connection=connection, as_of=asked_at)


def disconnect_instance(*, instance: ServiceInstance) -> ServiceInstance:
    _call(instance, lambda adapter: adapter.logout())
    _record(instance, qr_code="", qr_code_raw="", pairing_code="")
    return apply_connection(
        instance=instance, connection=ConnectionInfo(state=ConnectionState.DISCONNECTED, raw_state="close")
    )


def restart_instance(*, instance: ServiceInstance) -> ServiceInstance:
    _call(instance, lambda adapter: adapter.restart())
    return refresh_status(instance=instance)


def recreate_instance(*, instance: ServiceInstance) -> ServiceInstance:
    """Delete the remote instance (if any) and create it again with our webhook: a fresh pairing."""
    adapter = adapter_for(instance)
    try:
        adapter.delete_remote()
    except ProviderNotFound:
        logger.info("instances.recreate.remote_missing", extra={"instance": str(instance.id)})
    except ProviderError as error:
        _record_error(instance, error)
        raise
    asked_at = timezone.now()
    created = _call(instance, lambda adapter: adapter.create_remote())
    _record(instance, provider_token_encrypted=ServiceInstance.encrypted_provider_token(created.instance_token))
    apply_connection(instance=instance, connection=created.connection, as_of=asked_at)
    apply_qr(instance=instance, qr=created.qr, as_of=asked_at)
    return instance


def fetch_profile(*, instance: ServiceInstance):
    profile = _call(instance, lambda adapter: adapter.get_profile())
    fields = {}
    if profile.name:
        fields["profile_name"] = profile.name[:255]
    if profile.picture_url:
        fields["profile_picture_url"] = profile.picture_url[:1000]
    if fields:
        _record(instance, **fields)
    return profile


def fetch_provider_contacts(*, instance: ServiceInstance):
    return _call(instance, lambda adapter: adapter.list_contacts())


def webhook_status(*, instance: ServiceInstance) -> dict[str, Any]:
    info = _call(instance, lambda adapter: adapter.get_webhook())
    expected = webhook_url(instance.provider)
    return {
        "webhookUrl": info.url,
        "expectedUrl": expected,
        "configured": bool(info.enabled and info.url),
        "matches": bool(info.enabled and info.url and info.url.rstrip("/") == expected.rstrip("/")),
        "events": list(info.events),
        "lastEventAt": instance.last_webhook_at,
    }


def reconfigure_webhook(*, instance: ServiceInstance) -> dict[str, Any]:
    _call(instance, lambda adapter: adapter.configure_webhook())
    return webhook_status(instance=instance)


def touch_webhook(*, instance: ServiceInstance) -> None:
    """Note that a webhook arrived for this number (for ``GET .../webhook``)."""
    ServiceInstance.objects.filter(pk=instance.pk).update(last_webhook_at=timezone.now())


# ------------------------------------------------------------------------------
# Orphans: instances on our Evolution servers that no live service instance owns
# ------------------------------------------------------------------------------


def _evolution_servers() -> dict[tuple[str, str], ServiceInstance]:
    servers: dict[tuple[str, str], ServiceInstance] = {}
    for instance in ServiceInstance.objects.alive().filter(provider=Provider.EVOLUTION_API):
        credentials = instance.credentials
        servers.setdefault((credentials["serverUrl"].rstrip("/"), credentials["apiToken"]), instance)
    return servers


def list_orphans() -> list[dict[str, Any]]:
    known = {
        (instance.credentials["serverUrl"].rstrip("/"), instance.credentials["instanceName"])
        for instance in ServiceInstance.objects.alive().filter(provider=Provider.EVOLUTION_API)
    }
    orphans = []
    for (server_url, _token), instance in _evolution_servers().items():
        for remote in _call(instance, lambda adapter: adapter.list_remote_instances()):
            if (server_url, remote.name) not in known:
                orphans.append(
                    {
                        "serverUrl": server_url,
                        "instanceName": remote.name,
                        "status": remote.state.value,
                        "phone": remote.phone,
                        "profileName": remote.profile_name,
                    }
                )
    return orphans


def delete_orphans(*, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Delete the listed orphans (all of them when ``names`` is None). Never touches a known instance."""
    deleted = []
    servers = _evolution_servers()
    for orphan in list_orphans():
        if names is not None and orphan["instanceName"] not in names:
            continue
        owner = next(inst for (url, _t), inst in servers.items() if url == orphan["serverUrl"])
        try:
            adapter_for(owner).delete_remote_instance(name=orphan["instanceName"])
        except ProviderNotFound:
            logger.info("instances.orphans.already_gone", extra={"name": orphan["instanceName"]})
        deleted.append(orphan)
    return deleted


# ------------------------------------------------------------------------------
# Sync
# ------------------------------------------------------------------------------


def start_sync(*, instance: ServiceInstance, full_sync: bool = False) -> SyncJob:
    from instances.tasks import run_sync_task

    if instance.provider == Provider.OFFICIAL_META:
        raise ApplicationError(
            _("The Meta Cloud API keeps no history to synchronise; conversations arrive through webhooks"),
            code="sync_unsupported",
        )
    if instance.connection_status != ConnectionStatus.CONNECTED:
        raise ApplicationError(_("Connect the instance before synchronising it"), code="not_connected")
    with transaction.atomic():
        job = SyncJob.objects.create(instance=instance, full_sync=full_sync)
        transaction.on_commit(lambda: run_sync_task.delay(str(job.id)))
    return job


def _publish_progress(job: SyncJob) -> None:
    with transaction.atomic():
        realtime.publish_on_commit(
            events.SYNC_PROGRESS,
            events.sync_progress_payload(job),
            [realtime.SUPERVISORS, realtime.instance_group(job.instance_id)],
        )


def run_sync(*, job_id) -> SyncJob:
    """Copy the number's contacts and chat partners from the provider into Contacts.

    Running it twice is harmless: a finished job is left alone, and every import is an upsert.
    Chats and their recent messages become conversations once the conversation store exists;
    until then the job counts the chats it saw.
    """
    from contacts.services import upsert_contacts_from_provider

    with transaction.atomic():
        job = SyncJob.objects.select_for_update().select_related("instance").get(pk=job_id)
        if job.status in (SyncStatus.COMPLETED, SyncStatus.RUNNING):
            return job
        job.status, job.started_at = SyncStatus.RUNNING, timezone.now()
        job.save(update_fields=["status", "started_at"])
    _publish_progress(job)
    adapter = adapter_for(job.instance)
    try:
        contacts = adapter.list_contacts()
        job.contacts_total = len(contacts)
        job.contacts_synced = upsert_contacts_from_provider(contacts=contacts)
        job.save(update_fields=["contacts_total", "contacts_synced"])
        _publish_progress(job)
        chats = adapter.list_chats()
        job.chats_total = job.chats_synced = len(chats)
        job.status = SyncStatus.COMPLETED
    except ProviderError as error:
        job.status, job.error = SyncStatus.FAILED, str(error.message)[:500]
        logger.warning("instances.sync.failed", extra={"job": str(job.id), "error": type(error).__name__})
    job.finished_at = timezone.now()
    job.save()
    _publish_progress(job)
    return job
