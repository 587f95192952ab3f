import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from instances import crypto


class Provider(models.TextChoices):
    OFFICIAL_META = "OFFICIAL_META", _("Meta Cloud API (official)")
    EVOLUTION_API = "EVOLUTION_API", _("Evolution API")


class ConnectionStatus(models.TextChoices):
    DISCONNECTED = "disconnected", _("Disconnected")
    CONNECTING = "connecting", _("Connecting")
    CONNECTED = "connected", _("Connected")
    ERROR = "error", _("Error")


class ServiceInstanceQuerySet(models.QuerySet):
    def alive(self):
        return self.filter(deleted_at__isnull=True)


class ServiceInstance(models.Model):
    """One WhatsApp number connected through a provider.

    Credentials are a Fernet-encrypted JSON object; the webhook secret is kept encrypted (to
    configure the provider again) and as a SHA-256 digest (to find the instance on a webhook).
    Deletion is soft so that conversations keep their number.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=120)
    phone = models.CharField(_("phone"), max_length=20)
    provider = models.CharField(_("provider"), max_length=20, choices=Provider.choices)
    # The provider's own name for this number (Evolution instanceName, Meta phoneId), kept in
    # clear and indexed so that webhooks find the instance without decrypting credentials.
    remote_id = models.CharField(max_length=128, blank=True, db_index=True, editable=False)
    credentials_encrypted = models.TextField(editable=False)
    webhook_secret_encrypted = models.TextField(editable=False)
    webhook_secret_digest = models.CharField(max_length=64, unique=True, editable=False)
    # Evolution's own token for this instance ("hash" when created), which its webhooks carry as
    # ``apikey``: a second way to prove a call genuine when our header does not arrive.
    provider_token_encrypted = models.TextField(blank=True, default="", editable=False)
    is_active = models.BooleanField(_("active"), default=True)

    connection_status = models.CharField(
        _("connection"), max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.DISCONNECTED
    )
    provider_state = models.CharField(_("provider state"), max_length=32, blank=True)
    qr_code = models.TextField(_("QR code"), blank=True)  # data:image/png;base64,...
    qr_code_raw = models.TextField(blank=True)
    pairing_code = models.CharField(_("pairing code"), max_length=16, blank=True)
    qr_updated_at = models.DateTimeField(null=True, blank=True)
    profile_name = models.CharField(_("profile name"), max_length=255, blank=True)
    profile_picture_url = models.URLField(_("profile picture"), max_length=1000, blank=True)
    last_webhook_at = models.DateTimeField(_("last webhook received"), null=True, blank=True)
    state_changed_at = models.DateTimeField(_("last state change"), null=True, blank=True)
    # When the provider reported the connection state and QR we hold (a webhook's arrival, or when
    # we asked): an older report arriving later (a retried or replayed webhook) is not applied.
    state_as_of = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(_("last provider error"), max_length=500, blank=True)

    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ServiceInstanceQuerySet.as_manager()

    class Meta:
        verbose_name = _("service instance")
        verbose_name_plural = _("service instances")
        ordering = ["name", "created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> dict:
        return crypto.decrypt_json(self.credentials_encrypted)

    def set_credentials(self, credentials: dict) -> None:
        self.credentials_encrypted = crypto.encrypt_json(credentials)
        self.remote_id = str(credentials.get("instanceName") or credentials.get("phoneId") or "")

    @property
    def webhook_secret(self) -> str:
        return crypto.decrypt_json(self.webhook_secret_encrypted).get("secret", "")

    @property
    def provider_token(self) -> str:
        if not self.provider_token_encrypted:
            return ""
        return crypto.decrypt_json(self.provider_token_encrypted).get("token", "")

    @staticmethod
    def encrypted_provider_token(token: str | None) -> str:
        return crypto.encrypt_json({"token": token}) if token else ""

    def set_webhook_secret(self, secret: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt_json({"secret": secret})
        self.webhook_secret_digest = crypto.secret_digest(secret)


class SyncStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")


class SyncJob(models.Model):
    """A background copy of a number's contacts and chats from its provider."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(ServiceInstance, on_delete=models.CASCADE, related_name="sync_jobs")
    full_sync = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    contacts_total = models.PositiveIntegerField(default=0)
    contacts_synced = models.PositiveIntegerField(default=0)
    chats_total = models.PositiveIntegerField(default=0)
    chats_synced = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.instance} {self.created_at:%Y-%m-%d %H:%M} ({self.status})"
