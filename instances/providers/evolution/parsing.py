"""Evolution webhook bodies → neutral events (evolution.md §5 envelope, §6 payloads).

Every handler takes the envelope's ``data`` and returns a list; shapes that differ from what a
handler expects give ``[]`` rather than an exception, because Evolution retries a failed delivery
and the same body would fail again.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.utils.translation import gettext_lazy as _

from instances.providers.evolution import jids
from instances.providers.evolution.messages import as_dict, as_str, parse_protocol, parse_record, text_of
from instances.providers.evolution.protobuf import to_datetime, to_int
from instances.providers.exceptions import InvalidWebhookPayload
from instances.providers.types import (
    ConnectionInfo,
    ConnectionState,
    ConnectionUpdate,
    ContactUpdate,
    DeliveryStatus,
    MessageEdited,
    MessageRevoked,
    Presence,
    PresenceUpdate,
    ProviderEvent,
    QRCode,
    QRCodeUpdate,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

CONNECTION_STATES = {
    "open": ConnectionState.CONNECTED,
    "connecting": ConnectionState.CONNECTING,
    "close": ConnectionState.DISCONNECTED,
    "refused": ConnectionState.ERROR,
}
# wa.types StatusMessage; the numbers are Baileys' WAMessageStatus (utils/renderStatus.ts).
MESSAGE_STATUSES = {
    "ERROR": DeliveryStatus.FAILED,
    "PENDING": DeliveryStatus.PENDING,
    "SERVER_ACK": DeliveryStatus.SENT,
    "DELIVERY_ACK": DeliveryStatus.DELIVERED,
    "READ": DeliveryStatus.READ,
    "PLAYED": DeliveryStatus.PLAYED,
}
_STATUS_NUMBERS = {0: "ERROR", 1: "PENDING", 2: "SERVER_ACK", 3: "DELIVERY_ACK", 4: "READ", 5: "PLAYED"}
# When several people in a group show a presence, the chat shows the liveliest one.
_PRESENCE_RANK = [Presence.RECORDING, Presence.COMPOSING, Presence.AVAILABLE, Presence.PAUSED, Presence.UNAVAILABLE]

QR_LIMIT_REACHED = _("The QR code expired too many times; start the connection again")


def connection_state(raw: Any) -> ConnectionState:
    if not isinstance(raw, str) or not raw:
        return ConnectionState.DISCONNECTED
    return CONNECTION_STATES.get(raw.lower(), ConnectionState.ERROR)


def status_name(raw: Any) -> str | None:
    number = to_int(raw)
    if number is not None:
        return _STATUS_NUMBERS.get(number)
    return raw.upper() if isinstance(raw, str) else None


def _items(data: Any) -> Iterable[dict[str, Any]]:
    """Evolution sends some events as one object and others (or other versions) as an array."""
    entries = data if isinstance(data, list) else [data]
    return (entry for entry in entries if isinstance(entry, dict))


def _messages(data: Any, *, from_me: bool | None = None) -> list[ProviderEvent]:
    events = []
    for record in _items(data):
        event = parse_record(record, from_me=from_me)
        if event is not None:
            events.append(event)
    return events


def _message_update(data: Any) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for entry in _items(data):
        key = as_dict(entry.get("key"))
        message_id = as_str(entry.get("keyId")) or as_str(key.get("id"))
        if not message_id:
            continue
        chat_id = jids.preferred(entry.get("remoteJid") or key.get("remoteJid"), key.get("remoteJidAlt"))
        update = as_dict(entry.get("update"))
        edited = as_dict(as_dict(entry.get("message") or update.get("message")).get("editedMessage"))
        if edited:
            # 2.3.7 reports an edit as an update carrying the new body (evolution.md §6.3).
            text = text_of(as_dict(edited.get("message")))
            events.append(MessageEdited(provider_message_id=message_id, chat_id=chat_id, text=text))
            continue
        name = status_name(entry.get("status") if "status" in entry else update.get("status"))
        if name == "DELETED":
            # Up to 2.3.6 an update without a status (a revoke) is reported as DELETED.
            events.append(MessageRevoked(provider_message_id=message_id, chat_id=chat_id))
        elif name in MESSAGE_STATUSES:
            events.append(
                StatusUpdate(
                    provider_message_id=message_id,
                    status=MESSAGE_STATUSES[name],
                    chat_id=chat_id,
                    recipient_phone=jids.phone_from_jid(chat_id),
                    timestamp=to_datetime(entry.get("messageTimestamp")),
                )
            )
    return events


def _message_edited(data: Any) -> list[ProviderEvent]:
    # ``data.key`` is in the editor's perspective, so its remoteJid is not the chat (evolution.md §6.4).
    return [event for entry in _items(data) if (event := parse_protocol(entry)) is not None]


def _message_delete(data: Any) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for entry in _items(data):
        # Either the deleted message's key, or the stored row whose ``id`` is Evolution's row id.
        key = as_dict(entry.get("key")) or entry
        message_id = as_str(key.get("id"))
        if message_id:
            chat_id = jids.preferred(key.get("remoteJid"), key.get("remoteJidAlt"))
            events.append(MessageRevoked(provider_message_id=message_id, chat_id=chat_id))
    return events


def connection_info(data: dict[str, Any]) -> ConnectionInfo:
    raw = as_str(data.get("state")) or ""
    state = connection_state(raw)
    return ConnectionInfo(
        state=state,
        raw_state=raw,
        phone=jids.phone_from_jid(data.get("wuid")),
        profile_name=as_str(data.get("profileName")),
        profile_picture_url=as_str(data.get("profilePictureUrl")),
        reason_code=to_int(data.get("statusReason")),
    )


def _connection_update(data: Any) -> list[ProviderEvent]:
    data = as_dict(data)
    if not data.get("state"):
        return []
    return [ConnectionUpdate(connection=connection_info(data))]


def qr_code(data: Any) -> QRCode | None:
    data = as_dict(data)
    code, image = as_str(data.get("code")), as_str(data.get("base64"))
    if not code and not image:
        return None
    return QRCode(code=code, image=image, pairing_code=as_str(data.get("pairingCode")))


def _qrcode_updated(data: Any) -> list[ProviderEvent]:
    data = as_dict(data)
    qr = qr_code(data.get("qrcode"))
    if qr is not None:
        return [QRCodeUpdate(qr=qr)]
    if data.get("message") or data.get("statusCode"):
        # "QR code limit reached, please login again": Evolution gave up on this pairing.
        return [QRCodeUpdate(qr=None, message=str(QR_LIMIT_REACHED))]
    return []


def _contacts(data: Any) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for entry in _items(data):
        chat_id = as_str(entry.get("remoteJid")) or as_str(entry.get("id"))
        if not chat_id or not jids.is_jid(chat_id) or jids.is_broadcast(chat_id):
            continue
        events.append(
            ContactUpdate(
                chat_id=chat_id,
                phone=jids.phone_from_jid(chat_id),
                name=jids.display_name(entry.get("pushName"), chat_id),
                picture_url=as_str(entry.get("profilePicUrl")),
                user_id=chat_id if jids.is_lid(chat_id) else None,
            )
        )
    return events


def _presence(data: Any) -> list[ProviderEvent]:
    data = as_dict(data)
    chat_id = as_str(data.get("id"))
    if not chat_id:
        return []
    seen = set()
    for value in as_dict(data.get("presences")).values():
        raw = as_dict(value).get("lastKnownPresence")
        if isinstance(raw, str) and raw in Presence._value2member_map_:
            seen.add(Presence(raw))
    for presence in _PRESENCE_RANK:
        if presence in seen:
            return [PresenceUpdate(chat_id=chat_id, presence=presence)]
    return []


def _gone(raw_state: str) -> Callable[[Any], list[ProviderEvent]]:
    def handler(data: Any) -> list[ProviderEvent]:
        return [ConnectionUpdate(connection=ConnectionInfo(state=ConnectionState.DISCONNECTED, raw_state=raw_state))]

    return handler


HANDLERS: dict[str, Callable[[Any], list[ProviderEvent]]] = {
    "messages.upsert": _messages,
    "send.message": lambda data: _messages(data, from_me=True),
    "messages.update": _message_update,
    "messages.edited": _message_edited,
    "messages.delete": _message_delete,
    "connection.update": _connection_update,
    "qrcode.updated": _qrcode_updated,
    "contacts.upsert": _contacts,
    "contacts.update": _contacts,
    "presence.update": _presence,
    "logout.instance": _gone("logout"),
    "remove.instance": _gone("removed"),
}


def event_name(payload: Any) -> str:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("event"), str) or not payload["event"]:
        raise InvalidWebhookPayload(details="not an Evolution webhook envelope")
    # Delivered as "messages.upsert"; the subscription spelling MESSAGES_UPSERT is accepted too.
    return payload["event"].strip().lower().replace("_", ".")


def parse_webhook(payload: Any) -> list[ProviderEvent]:
    name = event_name(payload)
    handler = HANDLERS.get(name)
    if handler is None:
        logger.debug("providers.evolution.webhook_ignored", extra={"event": name})
        return []
    return handler(payload.get("data"))


__all__ = ["connection_info", "connection_state", "parse_webhook", "qr_code"]
