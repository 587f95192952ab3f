"""Evolution API answers → neutral types, and media encodings for requests (no network)."""

import base64
import binascii
from typing import Any

from django.utils.translation import gettext_lazy as _

from instances.providers.evolution import jids
from instances.providers.evolution.messages import as_dict, as_str
from instances.providers.evolution.parsing import MESSAGE_STATUSES, connection_state, status_name
from instances.providers.evolution.protobuf import parse_iso, to_datetime, to_int
from instances.providers.exceptions import ProviderBadResponse, ProviderRejected
from instances.providers.types import (
    DeliveryStatus,
    MediaInput,
    Profile,
    RemoteChat,
    RemoteContact,
    RemoteInstance,
    SentMessage,
    WebhookInfo,
)

MEDIA_WITHOUT_SOURCE = _("The media to send needs a URL or a file")
UNREADABLE_MEDIA = _("The Evolution API sent media that could not be decoded")

# A send returns once Baileys handed the message to WhatsApp's server, still marked PENDING (§3).
SEND_STATUSES = {**MESSAGE_STATUSES, "PENDING": DeliveryStatus.SENT, "SERVER_ACK": DeliveryStatus.SENT}


def sent_message(answer: dict[str, Any], *, action: str) -> SentMessage:
    message_id = as_str(as_dict(answer.get("key")).get("id"))
    if not message_id:
        raise ProviderBadResponse(details=f"{action} answer without key.id")
    return SentMessage(
        provider_message_id=message_id,
        status=SEND_STATUSES.get(status_name(answer.get("status")) or "", DeliveryStatus.SENT),
        timestamp=to_datetime(answer.get("messageTimestamp")),
    )


def media_source(media: MediaInput) -> str:
    """What ``media``/``audio``/``sticker`` get: the public URL, or the bytes in plain base64."""
    if media.url:
        return media.url
    if media.content:
        return base64.b64encode(media.content).decode("ascii")
    raise ProviderRejected(MEDIA_WITHOUT_SOURCE)


def decode_base64(value: Any) -> bytes:
    if isinstance(value, str) and value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    if isinstance(value, str) and value:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise ProviderBadResponse(UNREADABLE_MEDIA)


def remote_instance(row: Any) -> RemoteInstance | None:
    row = as_dict(row)
    if "name" not in row and isinstance(row.get("instance"), dict):  # v1 rows: [{"instance": {...}}]
        legacy = row["instance"]
        row = {
            "name": legacy.get("instanceName"),
            "connectionStatus": legacy.get("status"),
            "ownerJid": legacy.get("owner"),
            "profileName": legacy.get("profileName"),
        }
    name = as_str(row.get("name"))
    if not name:
        return None
    return RemoteInstance(
        name=name,
        state=connection_state(row.get("connectionStatus")),
        phone=jids.phone_from_jid(row.get("ownerJid")),
        profile_name=as_str(row.get("profileName")),
    )


def profile(answer: dict[str, Any], instance_row: dict[str, Any]) -> Profile:
    """``fetchProfile``'s answer, completed from the instance's ``fetchInstances`` row."""
    about = answer.get("status")
    if isinstance(about, dict):  # Baileys 7: {"status": "<about text>", "setAt": ...}
        about = about.get("status")
    is_business = answer.get("isBusiness")
    return Profile(
        phone=jids.phone_from_jid(answer.get("wuid")) or jids.phone_from_jid(instance_row.get("ownerJid")),
        name=as_str(answer.get("name")) or as_str(instance_row.get("profileName")),
        picture_url=as_str(answer.get("picture")) or as_str(instance_row.get("profilePicUrl")),
        about=as_str(about),
        is_business=is_business if isinstance(is_business, bool) else None,
        extra={field: answer[field] for field in ("email", "description", "website") if answer.get(field)},
    )


def _listed_jid(row: Any) -> str | None:
    chat_id = as_str(as_dict(row).get("remoteJid"))
    if not jids.is_jid(chat_id) or not jids.user(chat_id) or jids.is_broadcast(chat_id):
        return None
    return chat_id


def remote_contact(row: Any) -> RemoteContact | None:
    chat_id = _listed_jid(row)
    if chat_id is None:
        return None
    return RemoteContact(
        chat_id=chat_id,
        phone=jids.phone_from_jid(chat_id),
        name=jids.display_name(row.get("pushName"), chat_id),
        picture_url=as_str(row.get("profilePicUrl")),
        is_group=jids.is_group(chat_id) or row.get("isGroup") is True,
    )


def remote_chat(row: Any) -> RemoteChat | None:
    chat_id = _listed_jid(row)
    if chat_id is None:
        return None
    last_message_at = to_datetime(as_dict(row.get("lastMessage")).get("messageTimestamp"))
    return RemoteChat(
        chat_id=chat_id,
        phone=jids.phone_from_jid(chat_id),
        name=jids.display_name(row.get("pushName"), chat_id),
        unread_count=max(0, to_int(row.get("unreadCount")) or 0),
        last_message_at=last_message_at or parse_iso(row.get("updatedAt")),
        is_group=jids.is_group(chat_id),
        picture_url=as_str(row.get("profilePicUrl")),
    )


def webhook_info(answer: Any, *, secret: str, header: str) -> WebhookInfo:
    """``webhook/find`` or ``webhook/set``: the stored row, or ``null`` when none is set."""
    if not isinstance(answer, dict):
        return WebhookInfo(url=None, enabled=False)
    headers = as_dict(answer.get("headers"))
    events = answer.get("events")
    return WebhookInfo(
        url=as_str(answer.get("url")),
        enabled=answer.get("enabled") is True,
        events=tuple(event for event in events if isinstance(event, str)) if isinstance(events, list) else (),
        # True only when Evolution will send the secret this instance currently expects.
        headers_configured=headers.get(header) == secret if secret else bool(headers),
    )
