"""What a message shows: its kind, its text or a placeholder in the site's language, and its media columns."""

import dataclasses
import json

from django.utils.translation import gettext as _

from conversations.models import Message
from instances.providers.types import InboundMessage, MediaRef, MessageKind

MEDIA_KINDS = frozenset(
    {MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.DOCUMENT, MessageKind.STICKER}
)
_FILE_NAME_MAX = Message._meta.get_field("media_file_name").max_length
_MIME_MAX = Message._meta.get_field("media_mime_type").max_length
_EXTERNAL_ID_MAX = Message._meta.get_field("quoted_external_id").max_length


def message_fields(event: InboundMessage) -> dict:
    """``kind``, ``content`` and the media columns of a message: text as sent, a placeholder otherwise."""
    kind = MessageKind(event.kind)
    fields: dict = {"kind": kind.value, "content": ""}
    caption = (event.text or "").strip()
    if kind == MessageKind.TEXT:
        fields["content"] = event.text or ""
    elif kind in MEDIA_KINDS:
        fields["content"] = _media_placeholder(kind, event.media)
        fields["media_caption"] = caption
        if event.media is not None:
            fields.update(_media_columns(kind, event.media))
    elif kind == MessageKind.LOCATION and event.location is not None:
        location = event.location
        place = f"{_coordinate(location.latitude)},{_coordinate(location.longitude)}"
        if location.name:
            place = f"{location.name} ({place})"
        placeholder = _("[Location: %(place)s]") % {"place": place}
        fields["content"] = f"{placeholder} {caption}" if caption else placeholder
    elif kind == MessageKind.CONTACTS and event.contacts:
        cards = [
            f"{card.name} ({card.phones[0]})" if card.phones and card.phones[0] != card.name else card.name
            for card in event.contacts
        ]
        template = _("[Contact: %(names)s]") if len(cards) == 1 else _("[Contacts: %(names)s]")
        fields["content"] = template % {"names": ", ".join(cards)}
    elif kind == MessageKind.CONTACTS:
        fields["content"] = _("[Contact]")
    elif kind == MessageKind.REACTION:
        emoji = event.reaction_emoji or ""
        fields["content"] = _("[Reaction %(emoji)s]") % {"emoji": emoji} if emoji else _("[Reaction removed]")
    elif kind == MessageKind.INTERACTIVE:
        fields["content"] = _("[Reply: %(choice)s]") % {"choice": caption} if caption else _("[Interactive reply]")
    else:
        # Unsupported kinds (polls, orders, system notices, locations without coordinates...).
        placeholder = _("[Unsupported message]")
        fields["content"] = f"{placeholder} {caption}" if caption else placeholder
    quoted = event.reaction_to if kind == MessageKind.REACTION else event.quoted_provider_id
    fields["quoted_external_id"] = (quoted or "")[:_EXTERNAL_ID_MAX]
    return fields


def _media_placeholder(kind: MessageKind, media: MediaRef | None) -> str:
    if kind == MessageKind.AUDIO:
        return _("[Voice message]") if media is not None and media.voice else _("[Audio]")
    if kind == MessageKind.DOCUMENT and media is not None and media.file_name:
        return _("[Document: %(name)s]") % {"name": media.file_name}
    return {
        MessageKind.IMAGE: _("[Image]"),
        MessageKind.VIDEO: _("[Video]"),
        MessageKind.DOCUMENT: _("[Document]"),
        MessageKind.STICKER: _("[Sticker]"),
    }[kind]


def _media_columns(kind: MessageKind, media: MediaRef) -> dict:
    ref = {name: value for name, value in dataclasses.asdict(media).items() if name != "inline_base64"}
    return {
        "media_type": kind.value,
        "media_mime_type": (media.mime_type or "")[:_MIME_MAX],
        "media_file_name": (media.file_name or "")[:_FILE_NAME_MAX],
        "media_size": media.size if media.size is not None and media.size >= 0 else None,
        # Bytes the provider sent inline are dropped: the reference is enough to download them again.
        "media_ref": json.loads(json.dumps(ref, default=str)),
    }


def _coordinate(value: float) -> str:
    return str(round(value, 6))
