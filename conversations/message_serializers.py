from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from conversations import events
from conversations.models import Direction, MessageStatus, Via
from conversations.services import outbound


class MessageSendInput(serializers.Serializer):
    conversationId = serializers.UUIDField()
    # Kept as typed (no trimming): leading spaces or line breaks may be meant.
    content = serializers.CharField(
        trim_whitespace=False,
        help_text=_("The text to send: not empty, at most 4096 characters."),
    )
    via = serializers.ChoiceField(
        choices=Via.choices,
        required=False,
        default=Via.CHAT_MANUAL,
        help_text=_("CHAT_MANUAL (default) or CAMPAIGN; operators may only use CHAT_MANUAL."),
    )
    quotedMessageId = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text=_("A message of the same conversation to reply to (it must already have reached WhatsApp)."),
    )

    def validate_content(self, value: str) -> str:
        errors = outbound.content_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_via(self, value: str) -> str:
        error = outbound.via_error(value)
        if error:
            raise serializers.ValidationError(error)
        return value


class MessageOutput(serializers.Serializer):
    """The contract's message body (section 8): the same dict the realtime events carry."""

    id = serializers.UUIDField()
    conversationId = serializers.UUIDField()
    senderId = serializers.UUIDField(allow_null=True)
    senderName = serializers.CharField(allow_null=True)
    content = serializers.CharField()
    kind = serializers.CharField(help_text=_("text, image, video, audio, document, sticker..."))
    hasMedia = serializers.BooleanField()
    mediaType = serializers.CharField(allow_null=True)
    mediaFileName = serializers.CharField(allow_null=True)
    mediaMimeType = serializers.CharField(allow_null=True)
    mediaSize = serializers.IntegerField(allow_null=True)
    mediaCaption = serializers.CharField(allow_null=True)
    mediaStoragePath = serializers.CharField(allow_null=True)
    mediaPublicUrl = serializers.CharField(allow_null=True)
    mediaDownloadPath = serializers.CharField(allow_null=True)
    direction = serializers.ChoiceField(choices=Direction.choices)
    via = serializers.ChoiceField(choices=Via.choices)
    externalId = serializers.CharField(allow_null=True, help_text=_("The provider's message id, once sent."))
    status = serializers.ChoiceField(
        choices=MessageStatus.choices,
        help_text=_("pending when accepted; later changes arrive as message:status events."),
    )
    statusCode = serializers.CharField(allow_null=True)
    statusReason = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField(help_text=_("The message's time (ISO 8601, UTC)."))

    def to_representation(self, instance):
        return events.message_payload(instance)
