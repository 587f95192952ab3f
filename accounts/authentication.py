"""Bearer access tokens, with the contract's Portuguese messages for every failure."""

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.models import User

INVALID_TOKEN = _("Invalid or missing token")
EXPIRED_TOKEN = _("Token expired")


class BearerTokenAuthentication(JWTAuthentication):
    www_authenticate_realm = "api"

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            return AccessToken(raw_token)
        except ExpiredTokenError:
            raise exceptions.AuthenticationFailed(EXPIRED_TOKEN, code="token_expired") from None
        except TokenError:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN, code="token_invalid") from None

    def get_user(self, validated_token: AccessToken) -> User:
        user = User.objects.filter(pk=validated_token.get(api_settings.USER_ID_CLAIM)).first()
        if user is None or not user.is_active or user.deleted_at is not None:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN, code="user_inactive")
        # A password change (or reset) ends every session issued before it.
        if validated_token.get(api_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
            raise exceptions.AuthenticationFailed(INVALID_TOKEN, code="password_changed")
        return user

    def get_raw_token(self, header: bytes) -> bytes | None:
        parts = header.split()
        if len(parts) != 2 or parts[0].decode(errors="replace").lower() != "bearer":
            # Treated as no credentials: the endpoint then answers "Invalid or missing token".
            return None
        return parts[1]
