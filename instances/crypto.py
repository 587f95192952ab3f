"""Credentials at rest: Fernet with the key(s) in FIELD_ENCRYPTION_KEY.

Several comma-separated keys rotate: the first encrypts, all decrypt. Without the variable a key
is derived from SECRET_KEY (documented: set FIELD_ENCRYPTION_KEY in production, so that rotating
SECRET_KEY never makes stored credentials unreadable).
"""

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=4)
def _fernet(keys: str, secret_key: str) -> MultiFernet:
    if keys:
        try:
            return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])
        except ValueError as exc:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY must be Fernet keys (urlsafe base64 of 32 bytes), comma-separated; make one "
                "with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from exc
    derived = base64.urlsafe_b64encode(hashlib.sha256(f"elsehub-credentials:{secret_key}".encode()).digest())
    return MultiFernet([Fernet(derived)])


def _current() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt_json(value: dict[str, Any]) -> str:
    return _current().encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(_current().decrypt(token.encode()))
    except InvalidToken:
        raise ImproperlyConfigured(
            "Stored credentials cannot be decrypted with FIELD_ENCRYPTION_KEY (was the key changed?)"
        ) from None


def secret_digest(secret: str) -> str:
    """Lookup key for a webhook secret: the secret itself is never stored in clear."""
    return hashlib.sha256(secret.encode()).hexdigest()


def mask(value: str) -> str:
    """``"xrgr4qjcxhZ3m5kn2Rc3DdN5qSnhS3cp"`` -> ``"••••S3cp"``."""
    value = str(value or "")
    return "••••" + value[-4:] if len(value) > 8 else "••••"
