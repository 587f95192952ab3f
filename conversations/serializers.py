"""Input and output serializers for conversations and tabulations (message ones live in
``conversations.message_serializers``).

``ConversationOutput`` gives the same keys and values as ``events.conversation_payload``, so that
the REST body and the realtime event never drift apart (a test compares them).
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from conversations.models import ChatStatus, Tabulation
from elsehub.api.fields import Timestamp

TABULATION_NAME_MAX_LENGTH = Tabulation._meta.get_field("name").max_length


class ConversationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    contactId = serializers.UUIDField(source="contact_id")
    contactName = serializers.CharField(source="contact.name")
    contactPhone = serializers.CharField(
        source="contact.phone",
        allow_null=True,
        help_text=_("E.164, e.g. +5514999999999; null for a customer who wrote in without showing a number."),
    )
    serviceInstanceId = serializers.UUIDField(source="service_instance_id")
    serviceInstanceName = serializers.CharField(source="service_instance.name")
    operatorId = serializers.UUIDField(source="operator_id", allow_null=True)
    operatorName = serializers.CharField(source="operator.name", allow_null=True)
    status = serializers.ChoiceField(choices=ChatStatus.choices)
    startTime = Timestamp(source="start_time")
    endTime = Timestamp(source="end_time", allow_null=True, help_text=_("Set when the conversation is closed."))
    tabulationId = serializers.UUIDField(
        source="tabulation_id", allow_null=True, help_text=_("The closing tabulation, once closed.")
    )
    messageCount = serializers.IntegerField(source="message_count")
    lastMessageAt = Timestamp(source="last_message_at", allow_null=True)


class ConversationCreateInput(serializers.Serializer):
    contactId = serializers.UUIDField()
    serviceInstanceId = serializers.UUIDField()
    operatorId = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text=_("Supervisors and admins only: open it assigned to this user instead of in the queue."),
    )


class ConversationListParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=ChatStatus.choices, required=False)
    operatorId = serializers.UUIDField(required=False)
    serviceInstanceId = serializers.UUIDField(required=False)
    search = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ConversationAssignInput(serializers.Serializer):
    operatorId = serializers.UUIDField()


class ConversationCloseInput(serializers.Serializer):
    tabulationId = serializers.UUIDField(help_text=_("The closing category."))


class TabulationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class TabulationCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=TABULATION_NAME_MAX_LENGTH)


class TabulationUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=TABULATION_NAME_MAX_LENGTH, required=False)
