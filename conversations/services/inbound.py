"""Apply the provider-neutral webhook events to conversations: messages, statuses, edits, contacts.

``apply_provider_event`` is what the webhook processor calls for every parsed event. Running it
twice, or concurrently, with the same event changes nothing the second time:

- one message per (number, provider id) is the unique constraint's job: the insert runs in a
  savepoint and an ``IntegrityError`` there means "already stored";
- two first messages of the same contact on the same number are serialised by a row lock on the
  ``Contact`` (taken right after get-or-create), so they find or open the same conversation; the
  partial unique index "one OPEN per contact and number" catches anyone who opens one without
  that lock, and we then re-read;
- a status that names a message we do not have yet is kept as ``EarlyStatus`` and applied when the
  message lands. Both sides take a transaction-scoped advisory lock on (number, provider id) so
  that neither can miss the other (SQLite runs one write transaction at a time, so there it is a
  no-op). Lock order: contact, conversation or message rows first, the id's advisory lock last
  (``outbound`` does the same when it records a provider id).

Realtime events leave only after commit (``conversations.events`` → ``publish_on_commit``).
"""

import dataclasses
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from contacts.models import NAME_MAX_LENGTH, Contact
from contacts.normalization import normalize_phone, phone_query_digits, search_key
from conversations import events
from conversations.models import (
    STATUS_RANK,
    ChatStatus,
    Conversation,
    Direction,
    EarlyStatus,
    Message,
    MessageStatus,
    Via,
)
from instances.models import Provider, ServiceInstance
from instances.providers.types import (
    ContactUpdate,
    DeliveryStatus,
    InboundMessage,
    MediaRef,
    MessageEdited,
    MessageKind,
    MessageRevoked,
    ProviderEvent,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

# A message typed on the phone is taken for an Elsehub send still waiting for its provider id
# when it has the same content and arrived within this window.
ECHO_MATCH_WINDOW = timedelta(minutes=10)
ECHO_MATCH_CANDIDATES = 20
PRE_SEND_STATUSES = (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.UNCERTAIN)

DELIVERY_STATUSES = {
    DeliveryStatus.PENDING: MessageStatus.PENDING,
    DeliveryStatus.SENT: MessageStatus.SENT,
    DeliveryStatus.DELIVERED: MessageStatus.DELIVERED,
    DeliveryStatus.READ: MessageStatus.READ,
    DeliveryStatus.PLAYED: MessageStatus.PLAYED,
    DeliveryStatus.FAILED: MessageStatus.FAILED,
}
MEDIA_KINDS = frozenset(
    {MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.DOCUMENT, MessageKind.STICKER}
)
EVOLUTION_ERROR_CODE = "ERROR"
SKIP_GROUP = "group_skipped"
SKIP_NO_PHONE = "no_phone"

# First key of pg_advisory_xact_lock(int, int): keeps our keys apart from other advisory locks.
_EARLY_STATUS_LOCK_SPACE = 0x45485553
_STATUS_FIELDS = ["status", "status_code", "status_reason", "status_changed_at", "updated_at"]
_REASON_MAX = Message._meta.get_field("status_reason").max_length
_FILE_NAME_MAX = Message._meta.get_field("media_file_name").max_length
_MIME_MAX = Message._meta.get_field("media_mime_type").max_length
_EXTERNAL_ID_MAX = Message._meta.get_field("quoted_external_id").max_length


def _failure_reasons() -> dict[str, str]:
    # Meta error codes that reach us as asynchronous ``failed`` statuses (meta_cloud.md §5 and §8).
    return {
        "131047": _(
            "More than 24 hours have passed since the customer's last message; "
            "only an approved template can be sent now."
        ),
        "131026": _(
            "Message undeliverable: the number may not use WhatsApp, may have blocked this business "
            "or may have an outdated app."
        ),
        "131049": _(
            "WhatsApp held this message back to protect the customer's experience "
            "(too many marketing messages); try again later."
        ),
        "131050": _("The customer has stopped receiving marketing messages from this business."),
        "130429": _("This number reached its sending rate limit; try again in a moment."),
        "131056": _("Too many messages to this customer in a short time; wait a little before sending again."),
        EVOLUTION_ERROR_CODE: _("WhatsApp reported an error sending this message."),
    }


# ------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------


def apply_provider_event(*, instance: ServiceInstance, event: ProviderEvent) -> None:
    """Apply one neutral event of ``instance``; safe to run again (and concurrently) for the same event.

    Connection, QR and presence events are not ours and are ignored. Placeholders and failure
    reasons are stored in the site's language (``LANGUAGE_CODE``), whatever language is active.
    """
    with translation.override(settings.LANGUAGE_CODE):
        if isinstance(event, InboundMessage):
            apply_inbound_message(instance=instance, event=event)
        elif isinstance(event, StatusUpdate):
            apply_status_update(instance=instance, event=event)
        elif isinstance(event, MessageEdited):
            apply_message_edited(instance=instance, event=event)
        elif isinstance(event, MessageRevoked):
            apply_message_revoked(instance=instance, event=event)
        elif isinstance(event, ContactUpdate):
            apply_contact_update(event=event)
        # PresenceUpdate (typing, online) has no consumer until the WebSocket layer exists.


# ------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------


def apply_inbound_message(*, instance: ServiceInstance, event: InboundMessage) -> Message | None:
    """Store a message of a chat once; returns the stored or matched row, ``None`` if skipped or known.

    Group messages and senders without a usable phone are skipped (logged and counted): a
    conversation belongs to one contact, and contacts are E.164 phones.
    """
    if event.is_group:
        _skip(SKIP_GROUP, instance=instance, event=event)
        return None
    phone = customer_phone(event.phone)
    if phone is None:
        _skip(SKIP_NO_PHONE, instance=instance, event=event)
        return None
    timestamp = _aware(event.timestamp)
    fields = message_fields(event)
    with transaction.atomic():
        # The business's own words carry the business's push name, not the contact's.
        contact = _lock_contact(phone=phone, push_name=None if event.from_me else event.contact_name)
        if event.from_me:
            echoed = _match_echo(instance=instance, contact=contact, event=event, fields=fields, timestamp=timestamp)
            if echoed is not None:
                return echoed
        return _insert_message(instance=instance, contact=contact, event=event, fields=fields, timestamp=timestamp)


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


def _insert_message(
    *, instance: ServiceInstance, contact: Contact, event: InboundMessage, fields: dict, timestamp: datetime
) -> Message | None:
    """Insert into the contact's OPEN conversation on ``instance``, or open one; the caller holds the contact lock."""
    message = Message(
        service_instance=instance,
        external_id=event.provider_message_id or None,
        direction=Direction.OUTBOUND if event.from_me else Direction.INBOUND,
        via=Via.CHAT_MANUAL if event.from_me else Via.INBOUND,
        sender=None,
        status=MessageStatus.SENT if event.from_me else MessageStatus.RECEIVED,
        status_changed_at=timestamp if event.from_me else None,
        timestamp=timestamp,
        **fields,
    )
    for attempt in range(2):
        conversation = _locked_open_conversation(contact=contact, instance=instance)
        opened = conversation is None
        try:
            with transaction.atomic():
                if opened:
                    conversation = Conversation(
                        contact=contact, service_instance=instance, status=ChatStatus.OPEN, start_time=timestamp
                    )
                    _count(conversation, message)
                    conversation.save(force_insert=True)
                message.conversation = conversation
                message.save(force_insert=True)
        except IntegrityError:
            if _message_exists(instance=instance, external_id=message.external_id):
                logger.debug("conversations.inbound.duplicate", extra={"instance_id": str(instance.pk)})
                return None
            if opened and attempt == 0:
                continue  # someone opened the conversation without the contact lock: use theirs
            raise
        break

    if not opened:
        _count(conversation, message)
        update_fields = ["message_count", "last_message_at", "last_inbound_at", "last_outbound_at", "updated_at"]
        conversation.save(update_fields=update_fields)
    if event.from_me:
        # Statuses describe our own messages only, so only these can have arrived first. Looked
        # up after the insert: taking the id's lock before it could deadlock with an outbound
        # send that holds the same id uncommitted and waits for that lock.
        apply_early_statuses(message=message)
    conversation.contact = contact
    conversation.service_instance = instance
    message.conversation = conversation
    events.publish_message_new(message, conversation)
    events.publish_conversation_updated(conversation)
    return message


def _count(conversation: Conversation, message: Message) -> None:
    """Counters of a conversation whose row we hold locked (or are inserting)."""
    at = message.timestamp
    conversation.message_count = (conversation.message_count or 0) + 1
    conversation.last_message_at = max(filter(None, (conversation.last_message_at, at)))
    if message.direction == Direction.INBOUND:
        conversation.last_inbound_at = max(filter(None, (conversation.last_inbound_at, at)))
    else:
        conversation.last_outbound_at = max(filter(None, (conversation.last_outbound_at, at)))


def _locked_open_conversation(*, contact: Contact, instance: ServiceInstance) -> Conversation | None:
    # FOR UPDATE OF the conversation only (the operator join is nullable); a conversation closed
    # while we waited no longer matches ``status=OPEN`` when PostgreSQL re-checks the row.
    query = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("operator")
        .filter(contact=contact, service_instance=instance, status=ChatStatus.OPEN)
    )
    return _one(query)


def _message_exists(*, instance: ServiceInstance, external_id: str | None) -> bool:
    return bool(external_id) and Message.objects.filter(service_instance=instance, external_id=external_id).exists()


def _match_echo(
    *, instance: ServiceInstance, contact: Contact, event: InboundMessage, fields: dict, timestamp: datetime
) -> Message | None:
    """Attach the provider id of a message typed on the phone to the Elsehub send it echoes, if any.

    An Elsehub send may not have recorded its provider id yet (the call is still running, or it
    timed out as ``uncertain``) when the provider reports the same message back. Matching on
    content within ``ECHO_MATCH_WINDOW`` keeps it one row. Caller holds the contact lock.
    """
    if not event.provider_message_id:
        return None
    candidates = (
        Message.objects.filter(
            service_instance=instance,
            conversation__contact=contact,
            direction=Direction.OUTBOUND,
            external_id__isnull=True,
            status__in=PRE_SEND_STATUSES,
            kind=fields["kind"],
            timestamp__gte=timestamp - ECHO_MATCH_WINDOW,
        )
        .order_by("timestamp", "created_at")
        .only("id", "content", "media_caption")[:ECHO_MATCH_CANDIDATES]
    )
    wanted = (event.text or "").strip() if fields["kind"] != MessageKind.TEXT else fields["content"].strip()
    match = next((row for row in candidates if wanted in _comparable(row, fields["kind"])), None)
    if match is None:
        return None
    # Re-checked under the row lock: the send may have recorded its own id meanwhile.
    message = _one(
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation", "sender")
        .filter(pk=match.pk, external_id__isnull=True, status__in=PRE_SEND_STATUSES)
    )
    if message is None:
        return None
    message.external_id = event.provider_message_id
    early = _take_early_statuses(instance_id=instance.pk, external_id=message.external_id)
    _set_status(message, MessageStatus.SENT, at=timestamp)
    _apply_statuses(message, early)
    try:
        with transaction.atomic():
            message.save(update_fields=["external_id", *_STATUS_FIELDS])
    except IntegrityError:
        # Another row already holds this provider id: the echo was stored before.
        logger.debug("conversations.inbound.duplicate", extra={"instance_id": str(instance.pk)})
        return None
    _forget(early)
    events.publish_message_status(message, message.conversation)
    return message


def _comparable(row: Message, kind: str) -> set[str]:
    if kind == MessageKind.TEXT:
        return {row.content.strip()}
    return {row.content.strip(), row.media_caption.strip()}


# ------------------------------------------------------------------------------
# Statuses
# ------------------------------------------------------------------------------


def apply_status_update(*, instance: ServiceInstance, event: StatusUpdate) -> None:
    """Move a message's status forward, or keep the status until its message lands."""
    status = DELIVERY_STATUSES[DeliveryStatus(event.status)]
    code, reason = "", ""
    if status == MessageStatus.FAILED:
        code, reason = failure_details(instance=instance, code=event.error_code, text=event.error_message)
    at = _aware(event.timestamp)
    with transaction.atomic():
        message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            _lock_external_id(instance_id=instance.pk, external_id=event.provider_message_id)
            message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            _keep_early_status(instance=instance, event=event, status=status, at=at, code=code, reason=reason)
            return
        if _set_status(message, status, at=at, code=code, reason=reason):
            message.save(update_fields=_STATUS_FIELDS)
            events.publish_message_status(message, message.conversation)


def apply_early_statuses(*, message: Message) -> bool:
    """Apply (and forget) the statuses that arrived before ``message`` had its provider id.

    For whoever records ``external_id`` on a message (the outbound send): call it inside the same
    transaction, after saving the id. Saves the status fields when they change and returns whether
    they did; publishing ``message:status`` is the caller's.
    """
    if not message.external_id:
        return False
    early = _take_early_statuses(instance_id=message.service_instance_id, external_id=message.external_id)
    changed = _apply_statuses(message, early)
    if changed:
        message.save(update_fields=_STATUS_FIELDS)
    _forget(early)
    return changed


def failure_details(*, instance: ServiceInstance, code: str | None, text: str | None) -> tuple[str, str]:
    """``(status_code, status_reason)`` of a failed status: a sentence for the operator when we know the code."""
    code = (code or "").strip()
    if not code and instance.provider == Provider.EVOLUTION_API:
        code = EVOLUTION_ERROR_CODE  # Evolution reports only "ERROR", never why
    reason = _failure_reasons().get(code) or (text or "").strip() or _("The provider could not deliver this message.")
    return code[:64], reason[:_REASON_MAX]


def _set_status(message: Message, status: str, *, at: datetime, code: str = "", reason: str = "") -> bool:
    """Forward only by ``STATUS_RANK``; ``failed`` is terminal and never overrides a confirmed delivery."""
    current = message.status
    if current in (MessageStatus.RECEIVED, MessageStatus.FAILED):
        return False  # a customer's message has no delivery status of ours
    if status == MessageStatus.FAILED:
        if STATUS_RANK[current] > STATUS_RANK[MessageStatus.SENT]:
            return False
    elif STATUS_RANK[status] <= STATUS_RANK[current]:
        return False
    message.status = status
    message.status_changed_at = at
    # A reason belongs to the status it explains (e.g. the timeout behind "uncertain").
    message.status_code = code
    message.status_reason = reason
    return True


def _apply_statuses(message: Message, early: list[EarlyStatus]) -> bool:
    changed = False
    # Lowest rank first and failed last, so that a delivery reported alongside a failure wins.
    for item in sorted(early, key=lambda e: (e.status == MessageStatus.FAILED, STATUS_RANK[e.status])):
        at = item.timestamp or item.created_at or timezone.now()
        changed |= _set_status(message, item.status, at=at, code=item.status_code, reason=item.status_reason)
    return changed


def _locked_message(*, instance: ServiceInstance, external_id: str) -> Message | None:
    query = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(service_instance=instance, external_id=external_id)
    )
    return _one(query)


def _lock_external_id(*, instance_id, external_id: str) -> None:
    """Serialise "status without its message" against "message lands" for one provider id.

    Held until commit. Without it a status could be kept as early while the message commits,
    each transaction missing the other's uncommitted row, and the status would never apply.
    """
    if connection.vendor != "postgresql":
        return  # SQLite runs one write transaction at a time
    digest = hashlib.blake2b(f"{instance_id}:{external_id}".encode(), digest_size=4).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [_EARLY_STATUS_LOCK_SPACE, int.from_bytes(digest, "big", signed=True)],
        )


def _take_early_statuses(*, instance_id, external_id: str) -> list[EarlyStatus]:
    _lock_external_id(instance_id=instance_id, external_id=external_id)
    return list(EarlyStatus.objects.filter(service_instance_id=instance_id, external_id=external_id))


def _forget(early: list[EarlyStatus]) -> None:
    if early:
        EarlyStatus.objects.filter(pk__in=[item.pk for item in early]).delete()


def _keep_early_status(
    *, instance: ServiceInstance, event: StatusUpdate, status: str, at: datetime, code: str, reason: str
) -> None:
    early = EarlyStatus(
        service_instance=instance,
        external_id=event.provider_message_id,
        status=status,
        timestamp=at,
        status_code=code,
        status_reason=reason,
    )
    try:
        with transaction.atomic():
            early.save(force_insert=True)
    except IntegrityError:
        return  # the same status was kept already
    logger.info("conversations.inbound.early_status", extra={"instance_id": str(instance.pk), "status": status})


# ------------------------------------------------------------------------------
# Edits and revokes
# ------------------------------------------------------------------------------


def apply_message_edited(*, instance: ServiceInstance, event: MessageEdited) -> None:
    """Store the new text (suffixed "(edited)") of a text, or the new caption of a media message.

    An edit of a message we never stored is dropped: there is nothing to show it on.
    """
    text = (event.text or "").strip()
    if not text:
        return
    with transaction.atomic():
        message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            logger.info("conversations.inbound.edit_unknown", extra={"instance_id": str(instance.pk)})
            return
        if message.kind == MessageKind.TEXT:
            field, value = "content", _("%(text)s (edited)") % {"text": text}
        else:
            field, value = "media_caption", text
        if getattr(message, field) == value:
            return
        setattr(message, field, value)
        message.save(update_fields=[field, "updated_at"])


def apply_message_revoked(*, instance: ServiceInstance, event: MessageRevoked) -> None:
    """The sender deleted the message for everyone: keep the row, drop its words."""
    with transaction.atomic():
        message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            logger.info("conversations.inbound.revoke_unknown", extra={"instance_id": str(instance.pk)})
            return
        placeholder = _("[Deleted message]")
        if message.content == placeholder and not message.media_caption:
            return
        message.content = placeholder
        message.media_caption = ""
        message.save(update_fields=["content", "media_caption", "updated_at"])


# ------------------------------------------------------------------------------
# Contacts
# ------------------------------------------------------------------------------


def apply_contact_update(*, event: ContactUpdate) -> None:
    """Fill a known contact's missing name from its push name; unknown numbers are not created here."""
    phone = customer_phone(event.phone)
    name = _clean_name(event.name)
    if phone is None or not name:
        return
    with transaction.atomic():
        contact = _one(Contact.objects.select_for_update().filter(phone=phone))
        if contact is not None:
            _fill_name(contact, name)


def customer_phone(raw: str | None) -> str | None:
    """E.164 of a sender, or ``None`` when there is none we can use (a LID, a BSUID, garbage)."""
    if not raw:
        return None
    try:
        return normalize_phone(raw)
    except ValidationError:
        return None


def is_placeholder_name(name: str, phone: str) -> bool:
    """An empty name, or the number itself (what we store when nobody told us a name)."""
    text = (name or "").strip()
    if not text:
        return True
    if not phone_query_digits(text):
        return False
    try:
        return normalize_phone(text) == phone
    except ValidationError:
        return False


def _lock_contact(*, phone: str, push_name: str | None) -> Contact:
    """Get or create the contact of ``phone`` and hold its row lock until commit."""
    name = _clean_name(push_name)
    contact = _one(Contact.objects.select_for_update().filter(phone=phone))
    if contact is None:
        contact = Contact(name=name or phone, name_search=search_key(name or phone), phone=phone)
        try:
            with transaction.atomic():
                contact.save(force_insert=True)
            return contact  # the new row stays locked by our insert
        except IntegrityError:
            contact = Contact.objects.select_for_update().get(phone=phone)
    if name:
        _fill_name(contact, name)
    return contact


def _fill_name(contact: Contact, name: str) -> None:
    """Push names fill in a missing name but never overwrite one a person typed. Caller holds the lock."""
    if contact.name == name or not is_placeholder_name(contact.name, contact.phone):
        return
    contact.name = name
    contact.name_search = search_key(name)
    contact.save(update_fields=["name", "name_search", "updated_at"])


def _clean_name(name: str | None) -> str:
    return " ".join((name or "").split())[:NAME_MAX_LENGTH]


# ------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------


def skipped_count(reason: str) -> int:
    """How many events were skipped for ``reason`` (``SKIP_GROUP``, ``SKIP_NO_PHONE``), across workers."""
    return cache.get(_skip_key(reason), 0)


def _skip_key(reason: str) -> str:
    return f"conversations:inbound:skipped:{reason}"


def _skip(reason: str, *, instance: ServiceInstance, event: InboundMessage) -> None:
    logger.warning(
        f"conversations.inbound.{reason}",
        extra={"instance_id": str(instance.pk), "kind": str(event.kind), "from_me": event.from_me},
    )
    try:
        cache.add(_skip_key(reason), 0, timeout=None)
        cache.incr(_skip_key(reason))
    except Exception:
        # A counter must never make a webhook fail (and be retried for days).
        logger.debug("conversations.inbound.skip_count_failed", exc_info=True)


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return timezone.now()
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def _one(query):
    """The row or ``None``, without the model's default ORDER BY (``first()`` would add one)."""
    rows = list(query.order_by()[:1])
    return rows[0] if rows else None
