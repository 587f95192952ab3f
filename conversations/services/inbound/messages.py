"""Messages of a chat stored once: customers' messages in batches, the business's own (``fromMe``) one by one."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import Contact
from conversations import events
from conversations.models import ChatStatus, Conversation, Direction, Message, MessageStatus, Via
from conversations.services.inbound.common import SKIP_GROUP, SKIP_NO_PHONE, _aware, _one, _skip, logger
from conversations.services.inbound.contacts import _lock_contacts, customer_address
from conversations.services.inbound.content import message_fields
from conversations.services.inbound.echoes import _match_echo
from conversations.services.inbound.statuses import apply_early_statuses
from instances.models import ServiceInstance
from instances.providers.types import InboundMessage, ProviderEvent

_COUNTER_FIELDS = ["message_count", "last_message_at", "last_inbound_at", "last_outbound_at"]


def apply_inbound_message(*, instance: ServiceInstance, event: InboundMessage) -> Message | None:
    """Store a message of a chat once; returns the stored or matched row, ``None`` if skipped or known.

    Group messages and senders with neither a usable phone nor a WhatsApp id are skipped (logged and
    counted): a conversation belongs to one contact, found by its address (``customer_address``).
    """
    if event.is_group:
        _skip(SKIP_GROUP, instance=instance, event=event)
        return None
    address = customer_address(event)
    if address is None:
        _skip(SKIP_NO_PHONE, instance=instance, event=event)
        return None
    if not event.from_me and event.provider_message_id:  # a customer's message: the batch path
        stored = store_customer_messages(instance=instance, items=[(event, address)])
        return stored[0] if stored else None
    timestamp = _aware(event.timestamp)
    fields = message_fields(event)
    with transaction.atomic():
        # The business's own words carry the business's push name, not the contact's.
        contact = _lock_contacts([(event, address)], named=not event.from_me)[address]
        if event.from_me:
            echoed = _match_echo(instance=instance, contact=contact, event=event, fields=fields, timestamp=timestamp)
            if echoed is not None:
                return echoed
        return _insert_message(instance=instance, contact=contact, event=event, fields=fields, timestamp=timestamp)


def _plain_inbound_address(event: ProviderEvent) -> str | None:
    """The customer's address when ``event`` is a customer's own message in a one-to-one chat."""
    if not isinstance(event, InboundMessage) or event.from_me or event.is_group or not event.provider_message_id:
        return None
    return customer_address(event)


def store_customer_messages(*, instance: ServiceInstance, items: list[tuple[InboundMessage, str]]) -> list[Message]:
    """Store customers' messages (``(event, address)`` pairs, in arrival order) with a fixed number of queries.

    Returns the stored rows; a provider id already stored (or repeated in ``items``) is skipped.
    Each message goes to its contact's OPEN conversation on ``instance``, or opens one.
    """
    seen: set[str] = set()
    unique = []  # first occurrence of each id, in arrival order
    for event, address in items:
        if event.provider_message_id not in seen:
            seen.add(event.provider_message_id)
            unique.append((event, address))
    with transaction.atomic(savepoint=False):
        contacts = _lock_contacts(unique)
        known = set(
            Message.objects.filter(
                service_instance=instance, external_id__in=[event.provider_message_id for event, _address in unique]
            ).values_list("external_id", flat=True)
        )
        fresh = [(event, address) for event, address in unique if event.provider_message_id not in known]
        if not fresh:
            return []
        conversations = {
            conversation.contact_id: conversation
            for conversation in Conversation.objects.select_for_update(of=("self",))
            .select_related("operator")
            .filter(
                contact__in=[contacts[address] for _event, address in fresh],
                service_instance=instance,
                status=ChatStatus.OPEN,
            )
            .order_by()
        }
        opened, messages = [], []
        for event, address in fresh:
            contact = contacts[address]
            timestamp = _aware(event.timestamp)
            message = Message(
                service_instance=instance,
                external_id=event.provider_message_id,
                direction=Direction.INBOUND,
                via=Via.INBOUND,
                status=MessageStatus.RECEIVED,
                timestamp=timestamp,
                **message_fields(event),
            )
            conversation = conversations.get(contact.pk)
            if conversation is None:
                conversation = Conversation(
                    contact=contact, service_instance=instance, status=ChatStatus.OPEN, start_time=timestamp
                )
                conversations[contact.pk] = conversation
                opened.append(conversation)
            conversation.contact, conversation.service_instance = contact, instance
            _count(conversation, message)
            message.conversation = conversation
            messages.append(message)
        Conversation.objects.bulk_create(opened)
        Message.objects.bulk_create(messages)
        touched = list({message.conversation_id: message.conversation for message in messages}.values())
        opened_ids = {conversation.pk for conversation in opened}
        counted = [conversation for conversation in touched if conversation.pk not in opened_ids]
        if counted:
            now = timezone.now()
            for conversation in counted:
                conversation.updated_at = now  # bulk_update does not apply auto_now
            Conversation.objects.bulk_update(counted, [*_COUNTER_FIELDS, "updated_at"])
    for message in messages:
        events.publish_message_new(message, message.conversation)
    for conversation in touched:
        events.publish_conversation_updated(conversation)
    return messages


def _insert_message(
    *, instance: ServiceInstance, contact: Contact, event: InboundMessage, fields: dict, timestamp: datetime
) -> Message | None:
    """Insert one message (``fromMe``, or a customer's without a provider id) into the contact's OPEN
    conversation on ``instance``, or open one; the caller holds the contact lock."""
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
        conversation.save(update_fields=[*_COUNTER_FIELDS, "updated_at"])
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
