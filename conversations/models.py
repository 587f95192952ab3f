"""Conversations, their messages, and the tabulations that close them.

Exactly-once is the database's job here: one message per (instance, provider message id), one
OPEN conversation per (contact, instance), both as unique constraints.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class ChatStatus(models.TextChoices):
    OPEN = "OPEN", _("Open")
    CLOSED = "CLOSED", _("Closed")


class Direction(models.TextChoices):
    INBOUND = "INBOUND", _("Inbound")
    OUTBOUND = "OUTBOUND", _("Outbound")


class Via(models.TextChoices):
    INBOUND = "INBOUND", _("Received by webhook")
    CAMPAIGN = "CAMPAIGN", _("Sent by a campaign")
    CHAT_MANUAL = "CHAT_MANUAL", _("Sent by an operator")


class MessageStatus(models.TextChoices):
    """Outbound statuses move forward only (see ``STATUS_RANK``); inbound messages are ``received``."""

    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    UNCERTAIN = "uncertain", _("Uncertain (the provider did not answer)")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    PLAYED = "played", _("Played")
    FAILED = "failed", _("Failed")
    RECEIVED = "received", _("Received")


# A status update applies only when it ranks higher than the current one; FAILED is terminal
# but never overrides a confirmed delivery.
STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNCERTAIN: 2,
    MessageStatus.SENT: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.READ: 5,
    MessageStatus.PLAYED: 6,
    MessageStatus.FAILED: 3,
    MessageStatus.RECEIVED: 0,
}


class Tabulation(models.Model):
    """A closing category. Deleting one hides it; conversations it closed keep pointing at it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=120)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("tabulation")
        verbose_name_plural = _("tabulations")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"), condition=Q(deleted_at__isnull=True), name="conversations_tabulation_name_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.PROTECT, related_name="conversations")
    service_instance = models.ForeignKey(
        "instances.ServiceInstance", on_delete=models.PROTECT, related_name="conversations"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="conversations"
    )
    status = models.CharField(max_length=8, choices=ChatStatus.choices, default=ChatStatus.OPEN)
    start_time = models.DateTimeField(_("start time"))
    end_time = models.DateTimeField(_("end time"), null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    tabulation = models.ForeignKey(Tabulation, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    message_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-start_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "service_instance"],
                condition=Q(status="OPEN"),
                name="conversations_one_open_per_contact_instance",
            )
        ]
        indexes = [
            models.Index(fields=["status", "operator", "start_time"], name="conv_status_operator_start"),
            models.Index(fields=["service_instance", "status"], name="conv_instance_status"),
        ]

    def __str__(self) -> str:
        return f"{self.contact} @ {self.service_instance} ({self.status})"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # Denormalised from the conversation so that the provider id can be unique per number.
    service_instance = models.ForeignKey("instances.ServiceInstance", on_delete=models.PROTECT, related_name="+")
    # Null (not "") until the provider names it: the unique constraint ignores nulls.
    external_id = models.CharField(_("provider message id"), max_length=255, null=True, blank=True)  # noqa: DJ001
    direction = models.CharField(max_length=8, choices=Direction.choices)
    via = models.CharField(max_length=16, choices=Via.choices)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16, default="text")  # instances.providers.types.MessageKind
    content = models.TextField(blank=True)
    media_type = models.CharField(max_length=16, blank=True)
    media_file_name = models.CharField(max_length=255, blank=True)
    media_mime_type = models.CharField(max_length=127, blank=True)
    media_size = models.PositiveBigIntegerField(null=True, blank=True)
    media_caption = models.TextField(blank=True)
    # What the provider needs to hand the bytes over later (neutral MediaRef fields).
    media_ref = models.JSONField(null=True, blank=True)
    quoted_external_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    status_code = models.CharField(max_length=64, blank=True)
    status_reason = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The provider's time for the message (ordering); created_at is when we stored it.
    timestamp = models.DateTimeField(db_index=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["timestamp", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["service_instance", "external_id"],
                condition=Q(external_id__isnull=False),
                name="conversations_message_external_id_unique",
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "timestamp"], name="msg_conversation_time"),
            models.Index(fields=["status", "updated_at"], name="msg_status_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.kind} {self.external_id or self.id}"


class EarlyStatus(models.Model):
    """A status that arrived before the message it names; applied when the message lands."""

    service_instance = models.ForeignKey("instances.ServiceInstance", on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    timestamp = models.DateTimeField(null=True, blank=True)
    status_code = models.CharField(max_length=64, blank=True)
    status_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service_instance", "external_id", "status"], name="conversations_early_status_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.status}"


class ConversationClosure(models.Model):
    """What the reports read about a closed conversation, computed once when it closes."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="closure")
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    tabulation = models.ForeignKey(Tabulation, on_delete=models.PROTECT, related_name="closures")
    service_instance = models.ForeignKey("instances.ServiceInstance", on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration_seconds = models.PositiveIntegerField()
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    avg_operator_response_seconds = models.FloatField(null=True, blank=True)
    avg_customer_response_seconds = models.FloatField(null=True, blank=True)
    inbound_count = models.PositiveIntegerField(default=0)
    outbound_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["ended_at"], name="closure_ended_at")]

    def __str__(self) -> str:
        return f"closure of {self.conversation_id}"
