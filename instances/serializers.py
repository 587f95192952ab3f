from rest_framework import serializers

from elsehub.api.fields import Timestamp
from instances.crypto import mask
from instances.models import ConnectionStatus, Provider

SECRET_CREDENTIALS = frozenset({"apiToken", "accessToken", "appSecret", "verifyToken"})


def masked_credentials(credentials: dict) -> dict:
    return {key: mask(value) if key in SECRET_CREDENTIALS and value else value for key, value in credentials.items()}


class QRCodeOutput(serializers.Serializer):
    qrcode = serializers.CharField(help_text="data:image/png;base64,...")
    base64 = serializers.CharField()
    pairingCode = serializers.CharField(allow_null=True)


def qrcode_body(instance) -> dict | None:
    if not instance.qr_code:
        return None
    return {
        "qrcode": instance.qr_code,
        "base64": instance.qr_code.split(",", 1)[-1],
        "pairingCode": instance.pairing_code or None,
    }


class ServiceInstanceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    phone = serializers.CharField()
    provider = serializers.ChoiceField(choices=Provider.choices)
    credentials = serializers.SerializerMethodField(help_text="Secrets are masked: only the last 4 characters.")
    isActive = serializers.BooleanField(source="is_active")
    status = serializers.ChoiceField(source="connection_status", choices=ConnectionStatus.choices)
    state = serializers.CharField(source="provider_state")
    profileName = serializers.CharField(source="profile_name", allow_null=True)
    profilePictureUrl = serializers.CharField(source="profile_picture_url", allow_null=True)
    lastWebhookAt = Timestamp(source="last_webhook_at", allow_null=True)
    stateChangedAt = Timestamp(source="state_changed_at", allow_null=True)
    lastError = serializers.CharField(source="last_error", allow_null=True)
    createdAt = Timestamp(source="created_at")
    updatedAt = Timestamp(source="updated_at")

    def get_credentials(self, instance) -> dict:
        return masked_credentials(instance.credentials)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for key in ("profileName", "profilePictureUrl", "lastError"):
            data[key] = data[key] or None
        return data


class ServiceInstanceCreatedOutput(ServiceInstanceOutput):
    qrcode = serializers.SerializerMethodField()

    def get_qrcode(self, instance) -> dict | None:
        return qrcode_body(instance)


class ServiceInstanceCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    phone = serializers.CharField(max_length=32)
    provider = serializers.ChoiceField(choices=Provider.choices)
    credentials = serializers.DictField()


class ServiceInstanceUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    phone = serializers.CharField(max_length=32, required=False)
    provider = serializers.ChoiceField(choices=Provider.choices, required=False)
    credentials = serializers.DictField(required=False)
    isActive = serializers.BooleanField(required=False)


class ConnectInput(serializers.Serializer):
    phoneNumber = serializers.CharField(
        max_length=32, required=False, help_text="Number to receive a pairing code instead of scanning."
    )


class ConnectOutput(serializers.Serializer):
    message = serializers.CharField()
    status = serializers.CharField()
    qrcode = QRCodeOutput(allow_null=True)


class StatusOutput(serializers.Serializer):
    state = serializers.CharField()
    status = serializers.ChoiceField(choices=ConnectionStatus.choices)


class MessageStatusOutput(serializers.Serializer):
    message = serializers.CharField()
    status = serializers.CharField()


class ProfileOutput(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    number = serializers.CharField(allow_null=True)
    profilePictureUrl = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    isBusiness = serializers.BooleanField(allow_null=True)


class RemoteContactOutput(serializers.Serializer):
    id = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    profilePictureUrl = serializers.CharField(allow_null=True)
    isGroup = serializers.BooleanField()


class WebhookOutput(serializers.Serializer):
    webhookUrl = serializers.CharField(allow_null=True)
    expectedUrl = serializers.CharField()
    configured = serializers.BooleanField()
    matches = serializers.BooleanField()
    events = serializers.ListField(child=serializers.CharField())
    lastEventAt = Timestamp(allow_null=True)


class SyncInput(serializers.Serializer):
    fullSync = serializers.BooleanField(required=False, default=False)


class SyncStartedOutput(serializers.Serializer):
    message = serializers.CharField()
    syncId = serializers.UUIDField()


class SyncJobOutput(serializers.Serializer):
    syncId = serializers.UUIDField(source="id")
    serviceInstanceId = serializers.UUIDField(source="instance_id")
    status = serializers.CharField()
    fullSync = serializers.BooleanField(source="full_sync")
    contactsTotal = serializers.IntegerField(source="contacts_total")
    contactsSynced = serializers.IntegerField(source="contacts_synced")
    chatsTotal = serializers.IntegerField(source="chats_total")
    chatsSynced = serializers.IntegerField(source="chats_synced")
    error = serializers.CharField(allow_blank=True)
    startedAt = Timestamp(source="started_at", allow_null=True)
    finishedAt = Timestamp(source="finished_at", allow_null=True)
    createdAt = Timestamp(source="created_at")


class OrphanOutput(serializers.Serializer):
    serverUrl = serializers.CharField()
    instanceName = serializers.CharField()
    status = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    profileName = serializers.CharField(allow_null=True)


class OrphansDeleteInput(serializers.Serializer):
    instanceNames = serializers.ListField(child=serializers.CharField(max_length=128), required=False, min_length=1)


class OrphansDeletedOutput(serializers.Serializer):
    deleted = OrphanOutput(many=True)
    count = serializers.IntegerField()
