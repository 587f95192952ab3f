from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class EventState(models.TextChoices):
    PENDING = "pending", _("Pending")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    IGNORED = "ignored", _("Ignored")


class WebhookEvent(models.Model):
    """A provider call, stored before we answer it. Processing is a separate, repeatable step."""

    provider = models.CharField(max_length=20)
    service_instance = models.ForeignKey(
        "instances.ServiceInstance", on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_events"
    )
    event_type = models.CharField(max_length=64, blank=True)
    payload = models.JSONField()
    # sha256 of provider + instance + body: an identical re-delivery is stored once.
    dedupe_key = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    state = models.CharField(max_length=16, choices=EventState.choices, default=EventState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Events of one chat share a partition (a hash of the chat), so they are applied in arrival
    # order; the partitions of one number are drained in parallel.
    partition = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["state", "received_at"], name="webhook_state_received"),
            # The sweeper's "FAILED and due" scan.
            models.Index(fields=["state", "next_attempt_at"], name="webhook_state_next_attempt"),
            # A drain's "next PENDING events of this number and partition, oldest first".
            models.Index(
                fields=["service_instance", "partition", "id"],
                condition=Q(state="pending"),
                name="webhook_pending_partition",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} #{self.pk}"
