"""Meta webhook bodies -> neutral events.

Envelope (meta_cloud.md §3): ``object`` / ``entry[]`` / ``changes[]`` / ``value`` with ``messages[]``,
``statuses[]`` or ``errors[]``. Every level is a list and one POST may carry several of each, so
everything is walked. Only the ``messages`` field is read; other fields (``account_update``,
template updates, calls...) give no event. Odd elements are skipped, never a ``KeyError``: Meta adds
fields and types over time (BSUIDs, groups, edits) and an exception here would make Meta redeliver
the same body for days.
"""

import copy
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from instances.providers.exceptions import InvalidWebhookPayload
from instances.providers.types import (
    DeliveryStatus,
    InboundMessage,
    Location,
    MediaRef,
    MessageEdited,
    MessageKind,
    MessageRevoked,
    ProviderEvent,
    SharedContact,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

WEBHOOK_OBJECT = "whatsapp_business_account"
MESSAGES_FIELD = "messages"

_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.PLAYED,
    "failed": DeliveryStatus.FAILED,
}
_MEDIA_KINDS = {
    "image": MessageKind.IMAGE,
    "video": MessageKind.VIDEO,
    "audio": MessageKind.AUDIO,
    "document": MessageKind.DOCUMENT,
    "sticker": MessageKind.STICKER,
}
_CAPTIONED = frozenset({"image", "video", "document"})
_DIGITS = re.compile(r"\+?([0-9]{5,20})")


def parse_webhook(payload: Any) -> list[ProviderEvent]:
    if (
        not isinstance(payload, Mapping)
        or not isinstance(payload.get("object"), str)
        or not isinstance(payload.get("entry"), list)
    ):
        raise InvalidWebhookPayload(details="expected a JSON object with 'object' and an 'entry' list")
    if payload["object"] != WEBHOOK_OBJECT:
        logger.info("providers.meta.webhook.ignored_object", extra={"object": payload["object"][:64]})
        return []
    events: list[ProviderEvent] = []
    for entry in _mappings(payload["entry"]):
        for change in _mappings(entry.get("changes")):
            if change.get("field") != MESSAGES_FIELD:
                continue
            value = change.get("value")
            if isinstance(value, Mapping):
                events.extend(_parse_value(value))
    return events


def _parse_value(value: Mapping[str, Any]) -> list[ProviderEvent]:
    contacts = _ContactIndex(value.get("contacts"))
    events: list[ProviderEvent] = []
    for message in _mappings(value.get("messages")):
        event = _parse_message(message, contacts)
        if event is not None:
            events.append(event)
    for status in _mappings(value.get("statuses")):
        update = _parse_status(status)
        if update is not None:
            events.append(update)
    # Out-of-band errors (e.g. "Unsupported webhook payload"): nothing to store, only to notice.
    for error in _mappings(value.get("errors")):
        logger.warning(
            "providers.meta.webhook.error",
            extra={"code": error.get("code"), "title": _text(error.get("title")), "details": _error_details(error)},
        )
    return events


class _ContactIndex:
    """``value.contacts[]``: the sender's profile, keyed by ``wa_id`` and by BSUID ``user_id``."""

    def __init__(self, contacts: Any):
        self.items = list(_mappings(contacts))
        self.by_id: dict[str, Mapping[str, Any]] = {}
        for contact in self.items:
            for key in ("wa_id", "user_id"):
                if _text(contact.get(key)):
                    self.by_id.setdefault(_text(contact.get(key)), contact)

    def user_id_for(self, wa_id: str | None) -> str | None:
        """The business-scoped user id listed next to ``wa_id`` (2026 webhooks carry both)."""
        contact = self.by_id.get(wa_id) if wa_id else None
        return (_text(contact.get("user_id")) or None) if contact else None

    def name_for(self, *ids: str | None) -> str | None:
        contact = next((self.by_id[i] for i in ids if i and i in self.by_id), None)
        if contact is None and len(self.items) == 1:
            contact = self.items[0]
        profile = contact.get("profile") if contact else None
        return (_text(profile.get("name")) or None) if isinstance(profile, Mapping) else None


def _parse_message(message: Mapping[str, Any], contacts: _ContactIndex) -> ProviderEvent | None:
    message_id = _text(message.get("id"))
    msg_type = _text(message.get("type"))
    sender = _text(message.get("from"))
    wa_id = _digits(sender)
    user_id = _text(message.get("from_user_id"))
    group_id = _text(message.get("group_id"))
    timestamp = _timestamp(message.get("timestamp"))
    body = _mapping(message.get(msg_type)) if msg_type else {}

    chat_id = group_id or wa_id or user_id or sender
    if not chat_id and msg_type == "system":
        # user_changed_user_id carries no "from": the chat is the user's previous BSUID.
        chat_id = _text(body.get("previous_user_id")) or _text(body.get("user_id"))
    if not message_id or not chat_id:
        logger.warning("providers.meta.webhook.message_skipped", extra={"type": msg_type, "has_id": bool(message_id)})
        return None

    if msg_type == "edit":
        original = _text(body.get("original_message_id"))
        if not original:
            return None
        return MessageEdited(
            provider_message_id=original,
            chat_id=chat_id,
            text=_content_text(_mapping(body.get("message"))),
            timestamp=timestamp,
        )
    if msg_type == "revoke":
        original = _text(body.get("original_message_id"))
        return MessageRevoked(provider_message_id=original, chat_id=chat_id, timestamp=timestamp) if original else None

    name = contacts.name_for(sender, wa_id, user_id)
    context = _mapping(message.get("context"))
    common: dict[str, Any] = {
        "provider_message_id": message_id,
        "chat_id": chat_id,
        "phone": None if group_id else _phone(wa_id),
        "contact_name": None if group_id else name,
        "timestamp": timestamp or timezone.now(),
        "quoted_provider_id": _text(context.get("id")) or None,
        "is_group": bool(group_id),
        "participant_phone": _phone(wa_id) if group_id else None,
        "participant_name": name if group_id else None,
        "forwarded": bool(context.get("forwarded") or context.get("frequently_forwarded")),
        "referral": _plain(message.get("referral")) if isinstance(message.get("referral"), Mapping) else None,
        "raw_type": msg_type,
        "user_id": None if group_id else (user_id or contacts.user_id_for(wa_id)),
    }
    return InboundMessage(**common, **_content(msg_type, body, message))


def _content(msg_type: str, body: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
    """The kind-specific fields of an ``InboundMessage``."""
    if msg_type == "text":
        return {"kind": MessageKind.TEXT, "text": _text(body.get("body"))}
    if msg_type in _MEDIA_KINDS:
        return {
            "kind": _MEDIA_KINDS[msg_type],
            "text": (_text(body.get("caption")) or None) if msg_type in _CAPTIONED else None,
            "media": _media_ref(msg_type, body),
        }
    if msg_type == "location":
        latitude, longitude = _float(body.get("latitude")), _float(body.get("longitude"))
        if latitude is None or longitude is None:
            return _unsupported("location without coordinates", message)
        location = Location(
            latitude=latitude,
            longitude=longitude,
            name=_text(body.get("name")) or None,
            address=_text(body.get("address")) or None,
            url=_text(body.get("url")) or None,
        )
        return {"kind": MessageKind.LOCATION, "location": location}
    if msg_type == "contacts":
        shared = tuple(_shared_contact(card) for card in _mappings(message.get("contacts")))
        return {"kind": MessageKind.CONTACTS, "contacts": shared}
    if msg_type == "interactive":
        reply_type = _text(body.get("type"))
        reply = _mapping(body.get(reply_type)) if reply_type else {}
        if reply_type in ("button_reply", "list_reply"):
            return {"kind": MessageKind.INTERACTIVE, "text": _text(reply.get("title")) or None}
        if reply_type == "nfm_reply":  # a WhatsApp Flow answer: its body is a short label such as "Sent"
            return {
                "kind": MessageKind.INTERACTIVE,
                "text": _text(reply.get("body")) or _text(reply.get("name")) or None,
            }
        return _unsupported(f"interactive {reply_type or 'without content'}", message)
    if msg_type == "button":  # quick-reply button of a template
        return {"kind": MessageKind.INTERACTIVE, "text": _text(body.get("text")) or _text(body.get("payload")) or None}
    if msg_type == "reaction":
        target = _text(body.get("message_id"))
        if not target:
            return _unsupported("reaction without message id", message)
        # An empty or absent emoji removes the reaction.
        return {"kind": MessageKind.REACTION, "reaction_to": target, "reaction_emoji": _text(body.get("emoji"))}
    if msg_type == "system":
        return _unsupported(f"system {_text(body.get('type')) or 'notice'}", message, text=_text(body.get("body")))
    if msg_type == "order":
        items = len(list(_mappings(body.get("product_items"))))
        return _unsupported(f"order with {items} item(s)", message, text=_text(body.get("text")))
    if msg_type == "unsupported":
        inner = _text(body.get("type"))
        return _unsupported(f"unsupported {inner}" if inner else "unsupported", message)
    if msg_type == "request_welcome":
        return _unsupported("request_welcome", message)
    return _unsupported(f"unknown type {msg_type or '(none)'}", message)


def _unsupported(reason: str, message: Mapping[str, Any], *, text: str = "") -> dict[str, Any]:
    errors = [f"{error.get('code')}: {_error_details(error)}" for error in _mappings(message.get("errors"))]
    if errors:
        reason = f"{reason} ({'; '.join(errors)})"
    return {"kind": MessageKind.UNSUPPORTED, "unsupported_reason": reason, "text": text or None}


def _media_ref(msg_type: str, body: Mapping[str, Any]) -> MediaRef:
    return MediaRef(
        provider_media_id=_text(body.get("id")) or None,
        url=_text(body.get("url")) or None,
        mime_type=_text(body.get("mime_type")) or None,
        file_name=(_text(body.get("filename")) or None) if msg_type == "document" else None,
        sha256=_text(body.get("sha256")) or None,
        voice=msg_type == "audio" and body.get("voice") is True,
        animated=msg_type == "sticker" and body.get("animated") is True,
    )


def _content_text(inner: Mapping[str, Any]) -> str | None:
    """The new text of an edited message: a text body or a media caption."""
    inner_type = _text(inner.get("type"))
    content = _mapping(inner.get(inner_type)) if inner_type else {}
    return _text(content.get("body")) or _text(content.get("caption")) or None


def _shared_contact(card: Mapping[str, Any]) -> SharedContact:
    name = _mapping(card.get("name"))
    full_name = _text(name.get("formatted_name")) or " ".join(
        part for part in (_text(name.get("first_name")), _text(name.get("last_name"))) if part
    )
    phones = []
    for entry in _mappings(card.get("phones")):
        phone = _phone(_digits(_text(entry.get("wa_id")))) or _text(entry.get("phone"))
        if phone:
            phones.append(phone)
    return SharedContact(name=full_name, phones=tuple(phones), vcard=_text(card.get("vcard")) or None)


def _parse_status(status: Mapping[str, Any]) -> StatusUpdate | None:
    message_id = _text(status.get("id"))
    state = _STATUSES.get(_text(status.get("status")).lower())
    if not message_id or state is None:
        logger.info("providers.meta.webhook.status_skipped", extra={"status": _text(status.get("status"))[:32]})
        return None
    recipient = _text(status.get("recipient_id"))
    if status.get("recipient_type") == "group":
        chat_id, phone = recipient, _phone(_digits(_text(status.get("recipient_participant_id"))))
    else:
        chat_id = _digits(recipient) or _text(status.get("recipient_user_id")) or recipient
        phone = _phone(_digits(recipient))
    error = next(iter(_mappings(status.get("errors"))), None)
    error_code = error_message = None
    if error is not None:
        error_code = None if error.get("code") is None else str(error.get("code"))
        title, details = _text(error.get("title")) or _text(error.get("message")), _error_details(error)
        error_message = ": ".join(dict.fromkeys(part for part in (title, details) if part)) or None
    pricing = status.get("pricing")
    return StatusUpdate(
        provider_message_id=message_id,
        status=state,
        timestamp=_timestamp(status.get("timestamp")),
        chat_id=chat_id or None,
        recipient_phone=phone,
        error_code=error_code,
        error_message=error_message,
        pricing=_plain(pricing) if isinstance(pricing, Mapping) else None,
    )


# -- small defensive readers -------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any):
    """The objects of a JSON list; anything else in it (or a non-list) is skipped."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _digits(value: str | None) -> str | None:
    match = _DIGITS.fullmatch(value or "")
    return match.group(1) if match else None


def _phone(digits: str | None) -> str | None:
    return f"+{digits}" if digits else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> datetime | None:
    """Meta's timestamps are strings of Unix seconds."""
    seconds = _float(value) if isinstance(value, str | int | float) else None
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(int(seconds), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _error_details(error: Mapping[str, Any]) -> str:
    data = error.get("error_data")
    details = _text(data.get("details")) if isinstance(data, Mapping) else ""
    return details or _text(error.get("message")) or _text(error.get("title"))


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy, so that events never share structure with the parsed body."""
    return copy.deepcopy(dict(value))
