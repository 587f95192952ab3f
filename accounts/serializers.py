from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Role
from elsehub.api.fields import Timestamp


class UserOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    isActive = serializers.BooleanField(source="is_active")
    isOnline = serializers.BooleanField(source="is_online")
    onlineSince = Timestamp(source="online_since", allow_null=True)
    lastConversationAssignedAt = Timestamp(source="last_conversation_assigned_at", allow_null=True)
    createdAt = Timestamp(source="created_at")
    updatedAt = Timestamp(source="updated_at")


class TokensOutput(serializers.Serializer):
    accessToken = serializers.CharField()
    refreshToken = serializers.CharField()
    accessTokenExpiresIn = serializers.CharField(help_text=_('Access token lifetime, e.g. "900s".'))
    refreshTokenExpiresIn = serializers.CharField(help_text=_('Refresh token lifetime, e.g. "7d".'))


class SessionOutput(serializers.Serializer):
    user = UserOutput()
    tokens = TokensOutput()


class LoginInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(min_length=6, max_length=128, trim_whitespace=False)


class RefreshInput(serializers.Serializer):
    refreshToken = serializers.CharField(max_length=4096)


class PasswordField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_length", 8)
        kwargs.setdefault("max_length", 128)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("error_messages", {"min_length": _("must be at least {min_length} characters long")})
        super().__init__(**kwargs)


class NameField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 150)
        kwargs.setdefault("allow_blank", False)
        super().__init__(**kwargs)


class RegisterInput(serializers.Serializer):
    name = NameField()
    email = serializers.EmailField(max_length=254)
    password = PasswordField()


class ChangePasswordInput(serializers.Serializer):
    currentPassword = serializers.CharField(max_length=128, trim_whitespace=False)
    newPassword = PasswordField()


class UserCreateInput(serializers.Serializer):
    name = NameField()
    email = serializers.EmailField(max_length=254)
    password = PasswordField()
    role = serializers.ChoiceField(choices=Role.choices)
    isActive = serializers.BooleanField(required=False, default=True)


class UserUpdateInput(serializers.Serializer):
    name = NameField(required=False)
    email = serializers.EmailField(max_length=254, required=False)
    password = PasswordField(required=False)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    isActive = serializers.BooleanField(required=False)


class ToggleOnlineInput(serializers.Serializer):
    isOnline = serializers.BooleanField()


class RegistrationStatusOutput(serializers.Serializer):
    enabled = serializers.BooleanField()
