"""Validation of an Evolution instance's credentials (no network)."""

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from instances.providers.base import CredentialsError

INSTANCE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def valid_instance_name(name: Any) -> bool:
    # A name of dots only would turn ``/instance/delete/{name}`` into a relative path.
    return isinstance(name, str) and bool(INSTANCE_NAME.fullmatch(name)) and bool(name.strip("."))


def clean_server_url(value: Any) -> str | None:
    if not isinstance(value, str) or any(char.isspace() for char in value.strip()):
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        return None
    return url.rstrip("/")


def clean_credentials(credentials: Mapping[str, Any]) -> dict[str, Any]:
    """``{"serverUrl", "apiToken", "instanceName"}`` trimmed; one message per bad field."""
    credentials = credentials if isinstance(credentials, Mapping) else {}
    errors = []
    raw_url, token, name = (credentials.get(field) for field in ("serverUrl", "apiToken", "instanceName"))
    server_url = clean_server_url(raw_url)
    if raw_url is None or (isinstance(raw_url, str) and not raw_url.strip()):
        errors.append(_("serverUrl is required (the address of the Evolution API server)."))
    elif server_url is None:
        errors.append(_("serverUrl must be an http:// or https:// address without query or fragment."))
    token = token.strip() if isinstance(token, str) else token
    if not token:
        errors.append(_("apiToken is required (the Evolution API key)."))
    elif not isinstance(token, str) or any(char.isspace() or not char.isprintable() for char in token):
        errors.append(_("apiToken must not contain spaces or line breaks."))
    name = name.strip() if isinstance(name, str) else name
    if not name:
        errors.append(_("instanceName is required."))
    elif not isinstance(name, str) or not INSTANCE_NAME.fullmatch(name):
        errors.append(_("instanceName may only contain letters, digits, '-', '_' and '.' (up to 64 characters)."))
    elif not valid_instance_name(name):
        errors.append(_("instanceName cannot be made of dots only."))
    if errors:
        raise CredentialsError(errors)
    return {"serverUrl": server_url, "apiToken": token, "instanceName": name}
