"""Apply the provider-neutral webhook events to conversations: messages, statuses, edits, contacts.

``apply_provider_events`` is what the webhook processor calls with the parsed events of a batch
of webhooks, in arrival order. Running it twice, or concurrently, with the same events changes
nothing the second time:

- a customer's message is stored under its contact's row lock, after checking that its provider
  id is not stored yet; the customers' messages of a batch are stored together (contacts locked
  in phone order, one insert), which is what keeps ingestion fast. The unique constraint on
  (number, provider id) is the safety net: if it fires, the caller applies the events again one
  by one;
- two first messages of the same contact on the same number are serialised by a row lock on the
  ``Contact`` (taken right after get-or-create), so they find or open the same conversation; the
  partial unique index "one OPEN per contact and number" catches anyone who opens one without
  that lock;
- messages the business sent from the phone (``fromMe``) go one by one: each may be the echo of an
  Elsehub send (matched on content) and may have statuses waiting for it. Their insert runs in a
  savepoint and an ``IntegrityError`` there means "already stored";
- a status that names a message we do not have yet is kept as ``EarlyStatus`` and applied when the
  message lands. Both sides take a transaction-scoped advisory lock on (number, provider id) so
  that neither can miss the other (SQLite runs one write transaction at a time, so there it is a
  no-op). Lock order: contact, conversation or message rows first, the id's advisory lock last
  (``outbound`` does the same when it records a provider id).

Realtime events leave only after commit (``conversations.events`` → ``publish_on_commit``).

The package, one file per subdomain: ``messages`` (storing a chat's messages: customers' in
batches, the rest one by one), ``echoes`` (the business's own messages matched to Elsehub sends),
``content`` (kind, text and media columns of a message), ``statuses`` (delivery and early
statuses), ``edits`` (edits and revokes), ``contacts`` (phones, names and contact row locks) and
``common`` (skip counters and small helpers shared by the others).
"""

from django.conf import settings
from django.utils import translation

from conversations.services.inbound.common import SKIP_GROUP, SKIP_NO_PHONE, skipped_count
from conversations.services.inbound.contacts import (
    apply_contact_update,
    customer_address,
    customer_phone,
    is_placeholder_name,
)
from conversations.services.inbound.content import message_fields
from conversations.services.inbound.edits import apply_message_edited, apply_message_revoked
from conversations.services.inbound.messages import (
    _plain_inbound_address,
    apply_inbound_message,
    store_customer_messages,
)
from conversations.services.inbound.statuses import (
    apply_early_statuses,
    apply_status_update,
    failure_details,
    forget_stale_early_statuses,
)
from instances.models import ServiceInstance
from instances.providers.types import (
    ContactUpdate,
    InboundMessage,
    MessageEdited,
    MessageRevoked,
    ProviderEvent,
    StatusUpdate,
)

__all__ = [
    "SKIP_GROUP",
    "SKIP_NO_PHONE",
    "apply_contact_update",
    "apply_early_statuses",
    "apply_inbound_message",
    "apply_message_edited",
    "apply_message_revoked",
    "apply_provider_event",
    "apply_provider_events",
    "apply_status_update",
    "customer_address",
    "customer_phone",
    "failure_details",
    "forget_stale_early_statuses",
    "is_placeholder_name",
    "message_fields",
    "skipped_count",
    "store_customer_messages",
]


# ------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------


def apply_provider_events(*, instance: ServiceInstance, events: list[ProviderEvent]) -> None:
    """Apply the events of ``instance`` in order; consecutive customer messages are stored together."""
    with translation.override(settings.LANGUAGE_CODE):
        run: list[tuple[InboundMessage, str]] = []
        for event in events:
            address = _plain_inbound_address(event)
            if address is not None:
                run.append((event, address))
                continue
            if run:
                store_customer_messages(instance=instance, items=run)
                run = []
            apply_provider_event(instance=instance, event=event)
        if run:
            store_customer_messages(instance=instance, items=run)


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
