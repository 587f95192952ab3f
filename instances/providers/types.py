"""Provider-neutral data: what adapters return and what parse_webhook produces.

Nothing outside ``instances/providers/`` sees a provider's JSON; it sees these.
Phones are E.164 with ``+`` when known; ``chat_id`` is the provider's own chat address
(an Evolution JID such as ``5511...@s.whatsapp.net`` or ``...@g.us``, or a Meta ``wa_id``).
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ERROR = "error"


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"  # voice notes are AUDIO with MediaRef.voice = True
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    INTERACTIVE = "interactive"  # button / list replies
    UNSUPPORTED = "unsupported"


class DeliveryStatus(StrEnum):
    """Ordered: a status only ever moves forward (FAILED is terminal)."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"


class Presence(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    COMPOSING = "composing"
    RECORDING = "recording"
    PAUSED = "paused"


@dataclass(frozen=True)
class ProviderInstance:
    """What an adapter needs to know about one WhatsApp number."""

    id: str
    name: str
    phone: str
    credentials: dict[str, Any]
    webhook_url: str = ""
    webhook_secret: str = ""


@dataclass(frozen=True)
class QRCode:
    code: str | None = None  # the raw QR string, when the provider gives it
    image: str | None = None  # data:image/png;base64,...
    pairing_code: str | None = None


@dataclass(frozen=True)
class ConnectionInfo:
    state: ConnectionState
    raw_state: str = ""
    phone: str | None = None
    profile_name: str | None = None
    profile_picture_url: str | None = None
    reason_code: int | None = None


@dataclass(frozen=True)
class ConnectResult:
    """``connect``: either already connected, or a QR (and pairing code) to scan."""

    connection: ConnectionInfo
    qr: QRCode | None = None


@dataclass(frozen=True)
class CreatedInstance:
    connection: ConnectionInfo
    qr: QRCode | None = None
    instance_token: str | None = None  # Evolution's per-instance apikey ("hash")


@dataclass(frozen=True)
class Profile:
    phone: str | None
    name: str | None
    picture_url: str | None = None
    about: str | None = None
    is_business: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteContact:
    chat_id: str
    phone: str | None
    name: str | None
    picture_url: str | None = None
    is_group: bool = False


@dataclass(frozen=True)
class RemoteChat:
    chat_id: str
    phone: str | None
    name: str | None
    unread_count: int = 0
    last_message_at: datetime | None = None
    is_group: bool = False
    picture_url: str | None = None


@dataclass(frozen=True)
class WebhookInfo:
    url: str | None
    enabled: bool
    events: tuple[str, ...] = ()
    headers_configured: bool = False


@dataclass(frozen=True)
class RemoteInstance:
    """An instance as the provider server lists it (Evolution's fetchInstances)."""

    name: str
    state: ConnectionState
    phone: str | None = None
    profile_name: str | None = None


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str
    status: DeliveryStatus = DeliveryStatus.SENT
    timestamp: datetime | None = None


@dataclass(frozen=True)
class MediaInput:
    """Media to send: a public URL, or bytes to upload (with their MIME type and file name)."""

    url: str | None = None
    content: bytes | None = None
    mime_type: str | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class MediaRef:
    """Media attached to an inbound message, enough for ``download_media`` later."""

    provider_media_id: str | None = None  # Meta media id, or Evolution message key id
    url: str | None = None
    mime_type: str | None = None
    file_name: str | None = None
    size: int | None = None
    sha256: str | None = None
    voice: bool = False
    animated: bool = False
    inline_base64: str | None = None  # when the provider already sent the bytes
    # What the provider needs to fetch the bytes again (Evolution: the message key and body).
    provider_payload: dict[str, Any] | None = None
    width: int | None = None
    height: int | None = None
    seconds: int | None = None


@dataclass(frozen=True)
class MediaFile:
    content: bytes
    mime_type: str
    file_name: str | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class SharedContact:
    name: str
    phones: tuple[str, ...] = ()
    vcard: str | None = None


# ------------------------------------------------------------------------------
# Events parsed from webhooks
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    """A message in a chat: from the customer, or typed on the phone by us (``from_me``)."""

    provider_message_id: str
    chat_id: str
    phone: str | None  # the customer's phone (the chat's other side); None for groups
    contact_name: str | None
    kind: MessageKind
    timestamp: datetime
    from_me: bool = False
    text: str | None = None  # body for text; caption for media
    media: MediaRef | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction_to: str | None = None  # provider id of the message reacted to
    reaction_emoji: str | None = None  # "" removes a reaction
    quoted_provider_id: str | None = None
    is_group: bool = False
    participant_phone: str | None = None  # sender inside a group
    participant_name: str | None = None
    forwarded: bool = False
    referral: dict[str, Any] | None = None
    unsupported_reason: str | None = None
    raw_type: str = ""
    # WhatsApp's own id for the customer, which is all there is when it hides the phone: a Meta
    # business-scoped user id ("BR.1349...") or an Evolution LID ("1844...@lid"). None for groups.
    user_id: str | None = None


@dataclass(frozen=True)
class MessageEdited:
    provider_message_id: str
    chat_id: str | None
    text: str | None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class MessageRevoked:
    provider_message_id: str
    chat_id: str | None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: DeliveryStatus
    timestamp: datetime | None = None
    chat_id: str | None = None
    recipient_phone: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    pricing: dict[str, Any] | None = None


@dataclass(frozen=True)
class ConnectionUpdate:
    connection: ConnectionInfo


@dataclass(frozen=True)
class QRCodeUpdate:
    qr: QRCode | None  # None when the provider gave up (QR limit reached)
    message: str | None = None


@dataclass(frozen=True)
class ContactUpdate:
    chat_id: str
    phone: str | None
    name: str | None
    picture_url: str | None = None
    user_id: str | None = None  # WhatsApp's own id for the contact (see InboundMessage.user_id)


@dataclass(frozen=True)
class PresenceUpdate:
    chat_id: str
    presence: Presence


ProviderEvent = (
    InboundMessage
    | MessageEdited
    | MessageRevoked
    | StatusUpdate
    | ConnectionUpdate
    | QRCodeUpdate
    | ContactUpdate
    | PresenceUpdate
)
