"""One Evolution message record → a neutral ``InboundMessage`` (or an edit/revoke).

The same record shape (``{key, pushName, status, message, contextInfo, messageType,
messageTimestamp, ...}``, evolution.md §6.1) arrives in ``messages.upsert``, ``send.message``, the
answer of every send and ``findMessages``, so all of them go through ``parse_record``.
"""

import re
from datetime import UTC, datetime
from typing import Any

from instances.providers.evolution import jids
from instances.providers.evolution.protobuf import normalise, to_bytes, to_datetime, to_int
from instances.providers.types import (
    InboundMessage,
    Location,
    MediaRef,
    MessageEdited,
    MessageKind,
    MessageRevoked,
    SharedContact,
)

# Containers whose content sits at ``<wrapper>.message`` (evolution.md §6.1: not unwrapped by Evolution).
WRAPPERS = frozenset(
    {
        "ephemeralMessage",
        "viewOnceMessage",
        "viewOnceMessageV2",
        "viewOnceMessageV2Extension",
        "documentWithCaptionMessage",
        "editedMessage",
        "deviceSentMessage",
    }
)
MEDIA_KINDS = {
    "imageMessage": MessageKind.IMAGE,
    "videoMessage": MessageKind.VIDEO,
    "ptvMessage": MessageKind.VIDEO,
    "audioMessage": MessageKind.AUDIO,
    "documentMessage": MessageKind.DOCUMENT,
    "stickerMessage": MessageKind.STICKER,
}
POLL_TYPES = frozenset({"pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3", "pollUpdateMessage"})
# protocolMessage.type: enum names (toJSON) or numbers (2.3.6+), evolution.md §6.4 and §7.
REVOKE_TYPES = frozenset({"REVOKE", 0, "0"})
EDIT_TYPES = frozenset({"MESSAGE_EDIT", 14, "14"})
_IGNORED_KEYS = frozenset({"messageContextInfo", "senderKeyDistributionMessage", "base64", "mediaUrl"})
_VCARD_TEL = re.compile(r"^(?:item\d+\.)?TEL[^:]*:(.+)$", re.IGNORECASE | re.MULTILINE)
_VCARD_WAID = re.compile(r"waid=(\d+)", re.IGNORECASE)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def content_type(message: dict[str, Any]) -> str | None:
    """Baileys ``getContentType``: the first ``conversation`` or ``…Message`` key."""
    for key, value in message.items():
        if key in _IGNORED_KEYS or value is None:
            continue
        if key == "conversation" or key.endswith("Message"):
            return key
    return None


def unwrap(message: dict[str, Any], hint: Any = None) -> tuple[str | None, Any, dict[str, Any]]:
    """``(type, content, message)`` after opening ephemeral/view-once/edited/… wrappers."""
    kind = hint if isinstance(hint, str) and message.get(hint) is not None else content_type(message)
    for _depth in range(4):
        if kind not in WRAPPERS:
            break
        inner = as_dict(as_dict(message.get(kind)).get("message"))
        if not inner:
            break
        message = inner
        kind = content_type(message)
    return kind, message.get(kind) if kind else None, message


def text_of(message: dict[str, Any]) -> str | None:
    """The text (or caption) of a message body, whatever its type."""
    kind, content, _message = unwrap(message)
    if kind == "conversation":
        return content if isinstance(content, str) else None
    content = as_dict(content)
    if kind == "protocolMessage":
        return text_of(as_dict(content.get("editedMessage")))
    return as_str(content.get("text")) or as_str(content.get("caption"))


def timestamp_of(record: dict[str, Any]) -> datetime:
    return to_datetime(record.get("messageTimestamp")) or datetime.now(tz=UTC)


def _context(content: Any, record: dict[str, Any]) -> dict[str, Any]:
    # Evolution moves an extendedTextMessage's contextInfo to the record's top level.
    return as_dict(as_dict(content).get("contextInfo")) or as_dict(record.get("contextInfo"))


def _media(kind: str, content: dict[str, Any], key: dict[str, Any], message: dict[str, Any]) -> MediaRef:
    digest = to_bytes(content.get("fileSha256"))
    # Only what a download needs: quotes and thumbnails would bloat every stored payload.
    stored = {name: value for name, value in content.items() if name not in {"contextInfo", "jpegThumbnail"}}
    payload_key = {
        name: key[name] for name in ("remoteJid", "fromMe", "id", "participant") if key.get(name) is not None
    }
    return MediaRef(
        provider_media_id=as_str(key.get("id")),
        url=as_str(content.get("url")),
        mime_type=as_str(content.get("mimetype")),
        file_name=as_str(content.get("fileName")),
        size=to_int(content.get("fileLength")),
        sha256=digest.hex() if digest else None,
        voice=kind == "audioMessage" and content.get("ptt") is True,
        animated=content.get("isAnimated") is True or content.get("gifPlayback") is True,
        inline_base64=as_str(message.get("base64")),
        provider_payload={"key": payload_key, "message": {kind: normalise(stored)}},
        width=to_int(content.get("width")),
        height=to_int(content.get("height")),
        seconds=to_int(content.get("seconds")),
    )


def _shared_contact(content: dict[str, Any]) -> SharedContact | None:
    vcard = as_str(content.get("vcard"))
    name = as_str(content.get("displayName"))
    phones: list[str] = []
    for line in _VCARD_TEL.findall(vcard or ""):
        waid = _VCARD_WAID.search(line)
        number = jids.digits(waid.group(1) if waid else line.rsplit(":", 1)[-1])
        if number and f"+{number}" not in phones:
            phones.append(f"+{number}")
    if not name and not phones:
        return None
    return SharedContact(name=name or phones[0], phones=tuple(phones), vcard=vcard)


def _content_fields(kind: str | None, content: Any, key: dict, message: dict) -> dict[str, Any]:
    """The kind-specific fields of an ``InboundMessage``."""
    body = as_dict(content)
    if kind == "conversation":
        return {"kind": MessageKind.TEXT, "text": content if isinstance(content, str) else ""}
    if kind == "extendedTextMessage":
        return {"kind": MessageKind.TEXT, "text": as_str(body.get("text")) or ""}
    if kind in MEDIA_KINDS:
        return {
            "kind": MEDIA_KINDS[kind],
            "text": as_str(body.get("caption")),
            "media": _media(kind, body, key, message),
        }
    if kind in {"locationMessage", "liveLocationMessage"}:
        latitude, longitude = body.get("degreesLatitude"), body.get("degreesLongitude")
        if isinstance(latitude, int | float) and isinstance(longitude, int | float):
            location = Location(
                latitude=float(latitude),
                longitude=float(longitude),
                name=as_str(body.get("name")),
                address=as_str(body.get("address")),
                url=as_str(body.get("url")),
            )
            return {"kind": MessageKind.LOCATION, "location": location, "text": as_str(body.get("caption"))}
        return {"kind": MessageKind.UNSUPPORTED, "unsupported_reason": "location_without_coordinates"}
    if kind in {"contactMessage", "contactsArrayMessage"}:
        entries = body.get("contacts") if kind == "contactsArrayMessage" else [body]
        contacts = tuple(
            contact
            for entry in (entries if isinstance(entries, list) else [])
            if (contact := _shared_contact(as_dict(entry)))
        )
        return {"kind": MessageKind.CONTACTS, "contacts": contacts}
    if kind == "reactionMessage":
        # A missing or empty ``text`` removes the reaction.
        text = body.get("text")
        return {
            "kind": MessageKind.REACTION,
            "reaction_to": as_str(as_dict(body.get("key")).get("id")),
            "reaction_emoji": text if isinstance(text, str) else "",
        }
    if kind == "buttonsResponseMessage":
        text = as_str(body.get("selectedDisplayText")) or as_str(body.get("selectedButtonId"))
        return {"kind": MessageKind.INTERACTIVE, "text": text}
    if kind == "templateButtonReplyMessage":
        return {"kind": MessageKind.INTERACTIVE, "text": as_str(body.get("selectedDisplayText"))}
    if kind == "listResponseMessage":
        reply = as_dict(body.get("singleSelectReply"))
        return {
            "kind": MessageKind.INTERACTIVE,
            "text": as_str(body.get("title")) or as_str(reply.get("selectedRowId")),
        }
    if kind in POLL_TYPES:
        return {"kind": MessageKind.UNSUPPORTED, "unsupported_reason": "poll"}
    return {"kind": MessageKind.UNSUPPORTED, "unsupported_reason": "unknown_message_type"}


def parse_record(record: Any, *, from_me: bool | None = None) -> InboundMessage | MessageEdited | MessageRevoked | None:
    """A message record → neutral event; ``None`` for records that are no chat message.

    ``from_me`` forces the direction (``send.message`` is always ours). Records without an id or a
    chat, status broadcasts and bodiless records (view-once media withheld from linked devices)
    give ``None``. A ``protocolMessage`` (Evolution normally sends these as ``messages.edited``)
    gives ``MessageEdited``/``MessageRevoked`` for edits and revokes and ``None`` otherwise.
    """
    record = as_dict(record)
    key = as_dict(record.get("key"))
    message_id = as_str(key.get("id"))
    participant = key.get("participant") or record.get("participant")
    chat_id = jids.preferred(key.get("remoteJid"), key.get("remoteJidAlt"))
    if not message_id or not chat_id or chat_id == "status@broadcast":
        return None
    message = as_dict(record.get("message"))
    kind, content, inner = unwrap(message, record.get("messageType"))
    if kind is None:
        return None
    timestamp = timestamp_of(record)
    if kind == "protocolMessage":
        return _protocol(as_dict(content), chat_id=chat_id, timestamp=timestamp)

    mine = bool(key.get("fromMe")) if from_me is None else from_me
    is_group = jids.is_group(chat_id)
    push_name = None if mine else as_str(record.get("pushName"))
    context = _context(content, record)
    sender = jids.preferred(participant, key.get("participantAlt")) if is_group else None
    fields = _content_fields(kind, content, key, inner | {"base64": message.get("base64")})
    return InboundMessage(
        provider_message_id=message_id,
        chat_id=chat_id,
        phone=None if is_group else jids.phone_from_jid(chat_id),
        contact_name=None if is_group else jids.display_name(push_name, chat_id),
        timestamp=timestamp,
        from_me=mine,
        quoted_provider_id=as_str(context.get("stanzaId")),
        is_group=is_group,
        participant_phone=jids.phone_from_jid(sender) if sender else None,
        participant_name=push_name if is_group else None,
        forwarded=context.get("isForwarded") is True or (to_int(context.get("forwardingScore")) or 0) > 0,
        raw_type=kind,
        user_id=None if is_group else jids.lid_of(key.get("remoteJid"), key.get("remoteJidAlt")),
        **fields,
    )


def _protocol(content: dict[str, Any], *, chat_id: str | None, timestamp: datetime | None):
    target = as_str(as_dict(content.get("key")).get("id"))
    if not target:
        return None
    when = to_datetime(content.get("timestampMs")) or timestamp
    kind = content.get("type")
    if isinstance(kind, bool) or not isinstance(kind, str | int):
        return None
    if kind in REVOKE_TYPES:
        return MessageRevoked(provider_message_id=target, chat_id=chat_id, timestamp=when)
    if kind in EDIT_TYPES:
        edited = as_dict(content.get("editedMessage"))
        return MessageEdited(provider_message_id=target, chat_id=chat_id, text=text_of(edited), timestamp=when)
    return None


def parse_protocol(content: Any, *, chat_id: str | None = None, timestamp: datetime | None = None):
    """A bare ``protocolMessage`` (the ``messages.edited`` payload) → edit, revoke or ``None``."""
    return _protocol(as_dict(content), chat_id=chat_id, timestamp=timestamp)
