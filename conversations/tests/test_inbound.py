"""conversations.services.inbound: neutral webhook events applied to contacts, conversations and messages.

Events are built directly (``InboundMessage(...)``) or parsed from the adapters' payload fixtures in
``instances/tests/payloads/``. Concurrency tests need PostgreSQL (they skip on SQLite, whose
in-memory test database cannot take concurrent writers).
"""

import json
import logging
import pathlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact
from contacts.tests.factories import ContactFactory
from conversations.models import (
    ChatStatus,
    Conversation,
    Direction,
    EarlyStatus,
    Message,
    MessageStatus,
    Via,
)
from conversations.services import inbound
from conversations.services.inbound import apply_provider_event
from conversations.tests.factories import ConversationFactory, MessageFactory
from elsehub import realtime
from elsehub.tests.concurrency import run_at_once
from instances.models import Provider
from instances.providers.registry import real_adapter_class
from instances.providers.types import (
    ConnectionInfo,
    ConnectionState,
    ConnectionUpdate,
    ContactUpdate,
    DeliveryStatus,
    InboundMessage,
    Location,
    MediaRef,
    MessageEdited,
    MessageKind,
    MessageRevoked,
    Presence,
    PresenceUpdate,
    SharedContact,
    StatusUpdate,
)
from instances.tests.factories import ServiceInstanceFactory

PAYLOADS = pathlib.Path(__file__).resolve().parents[2] / "instances" / "tests" / "payloads"
PHONE = "+5511900000001"
T0 = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)
MESSAGE_KEYS = {
    "id",
    "conversationId",
    "senderId",
    "senderName",
    "content",
    "kind",
    "hasMedia",
    "mediaType",
    "mediaFileName",
    "mediaMimeType",
    "mediaSize",
    "mediaCaption",
    "mediaStoragePath",
    "mediaPublicUrl",
    "mediaDownloadPath",
    "direction",
    "via",
    "externalId",
    "status",
    "statusCode",
    "statusReason",
    "createdAt",
}
STATUS_KEYS = {"id", "conversationId", "externalId", "status", "statusCode", "statusReason", "changedAt"}


def inbound_event(**overrides) -> InboundMessage:
    values = {
        "provider_message_id": "MSG-1",
        "chat_id": "5511900000001@s.whatsapp.net",
        "phone": PHONE,
        "contact_name": "Maria Silva",
        "kind": MessageKind.TEXT,
        "timestamp": T0,
        "text": "Oi, meu pedido não chegou",
    }
    values.update(overrides)
    return InboundMessage(**values)


def status_event(external_id: str, status: DeliveryStatus, **overrides) -> StatusUpdate:
    return StatusUpdate(
        provider_message_id=external_id, status=status, timestamp=overrides.pop("timestamp", T0), **overrides
    )


def apply(instance, *events_) -> None:
    for event in events_:
        apply_provider_event(instance=instance, event=event)


def parsed(instance, name: str) -> list:
    folder = "evolution" if instance.provider == Provider.EVOLUTION_API else "meta"
    payload = json.loads((PAYLOADS / folder / f"{name}.json").read_text())
    return real_adapter_class(instance.provider).parse_webhook(payload)


def names(captured) -> list[str]:
    return [event for event, _data, _groups in captured]


@pytest.fixture
def instance(db):
    return ServiceInstanceFactory()


@pytest.fixture
def meta_instance(db):
    return ServiceInstanceFactory(provider=Provider.OFFICIAL_META)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (the realtime publishes) as the real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def outbound_row(conversation, **overrides) -> Message:
    """What the outbound service leaves behind before the provider answered: no id yet."""
    values = {
        "conversation": conversation,
        "external_id": None,
        "direction": Direction.OUTBOUND,
        "via": Via.CHAT_MANUAL,
        "content": "Já verifiquei, chega amanhã.",
        "status": MessageStatus.PENDING,
        "timestamp": T0,
    }
    values.update(overrides)
    return MessageFactory(**values)


# ------------------------------------------------------------------------------
# Inbound messages: contact, conversation, message, events
# ------------------------------------------------------------------------------


def test_apply_inbound_text_creates_contact_conversation_and_message(instance, captured_events, commit):
    with commit():
        apply(instance, inbound_event())

    contact = Contact.objects.get()
    assert (contact.phone, contact.name, contact.name_search) == (PHONE, "Maria Silva", "maria silva")
    conversation = Conversation.objects.get()
    assert conversation.contact == contact
    assert conversation.service_instance == instance
    assert conversation.status == ChatStatus.OPEN
    assert conversation.operator is None
    assert conversation.start_time == T0
    assert (conversation.message_count, conversation.last_message_at, conversation.last_inbound_at) == (1, T0, T0)
    assert conversation.last_outbound_at is None
    message = Message.objects.get()
    assert message.conversation == conversation
    assert message.service_instance == instance
    assert (message.external_id, message.direction, message.via) == ("MSG-1", Direction.INBOUND, Via.INBOUND)
    assert (message.kind, message.content, message.status) == ("text", "Oi, meu pedido não chegou", "received")
    assert message.sender is None
    assert message.timestamp == T0
    assert message.media_type == "" and message.media_ref is None

    assert names(captured_events) == ["message:new", "conversation:updated"]
    queue_groups = (realtime.SUPERVISORS, f"conversation.{conversation.id}", f"queue.{instance.id}")
    event, data, groups = captured_events[0]
    assert event == "message:new"
    assert groups == queue_groups
    assert set(data) == MESSAGE_KEYS
    assert data["id"] == str(message.id)
    assert data["conversationId"] == str(conversation.id)
    assert data["content"] == "Oi, meu pedido não chegou"
    assert (data["direction"], data["via"], data["status"], data["kind"]) == ("INBOUND", "INBOUND", "received", "text")
    assert (data["senderId"], data["externalId"], data["hasMedia"]) == (None, "MSG-1", False)
    assert data["createdAt"] == "2025-11-23T12:00:00.000Z"
    event, data, groups = captured_events[1]
    assert event == "conversation:updated"
    assert groups == queue_groups
    assert data["id"] == str(conversation.id)
    assert (data["contactName"], data["contactPhone"], data["status"]) == ("Maria Silva", PHONE, "OPEN")
    assert (data["messageCount"], data["lastMessageAt"], data["operatorId"]) == (1, "2025-11-23T12:00:00.000Z", None)
    assert data["serviceInstanceName"] == instance.name


def test_apply_inbound_goes_to_the_open_conversation_with_its_operator(instance, make_user, captured_events, commit):
    operator = make_user()
    contact = ContactFactory(phone=PHONE)
    conversation = ConversationFactory(
        contact=contact,
        service_instance=instance,
        operator=operator,
        start_time=T0,
        message_count=3,
        last_message_at=T0,
    )

    with commit():
        apply(instance, inbound_event(timestamp=T0 + timedelta(minutes=5)))

    message = Message.objects.get()
    assert message.conversation == conversation
    conversation.refresh_from_db()
    assert conversation.message_count == 4
    assert conversation.last_message_at == conversation.last_inbound_at == T0 + timedelta(minutes=5)
    assert Conversation.objects.count() == 1
    operator_groups = (realtime.SUPERVISORS, f"conversation.{conversation.id}", f"user.{operator.id}")
    assert [groups for _e, _d, groups in captured_events] == [
        operator_groups,
        (*operator_groups, f"queue.{instance.id}"),
    ]
    data = captured_events[1][1]
    assert (data["operatorId"], data["operatorName"], data["messageCount"]) == (str(operator.id), operator.name, 4)


def test_apply_inbound_older_message_keeps_the_latest_time(instance):
    apply(instance, inbound_event(provider_message_id="NEW", timestamp=T0 + timedelta(minutes=10)))
    apply(instance, inbound_event(provider_message_id="OLD", timestamp=T0))

    conversation = Conversation.objects.get()
    assert conversation.message_count == 2
    assert conversation.last_message_at == conversation.last_inbound_at == T0 + timedelta(minutes=10)
    assert Message.objects.get(external_id="OLD").timestamp == T0


def test_apply_inbound_after_closing_opens_a_new_conversation(instance, captured_events, commit):
    apply(instance, inbound_event(provider_message_id="FIRST"))
    closed = Conversation.objects.get()
    Conversation.objects.filter(pk=closed.pk).update(status=ChatStatus.CLOSED, end_time=T0 + timedelta(minutes=1))

    with commit():
        apply(instance, inbound_event(provider_message_id="SECOND", timestamp=T0 + timedelta(hours=1)))

    fresh = Conversation.objects.exclude(pk=closed.pk).get()
    assert fresh.status == ChatStatus.OPEN
    assert fresh.start_time == T0 + timedelta(hours=1)
    assert fresh.message_count == 1
    assert Message.objects.get(external_id="SECOND").conversation == fresh
    assert Message.objects.get(external_id="FIRST").conversation == closed
    assert captured_events[1][0] == "conversation:updated"
    assert captured_events[1][1]["id"] == str(fresh.id)


def test_apply_inbound_same_contact_on_another_number_has_its_own_conversation(instance):
    other = ServiceInstanceFactory()
    apply(instance, inbound_event(provider_message_id="A"))
    apply(other, inbound_event(provider_message_id="A"))  # provider ids are unique per number only

    assert Contact.objects.count() == 1
    assert Conversation.objects.count() == 2
    assert Message.objects.count() == 2


def test_apply_inbound_replayed_three_times_stores_one_message_and_publishes_once(instance, captured_events, commit):
    with commit():
        apply(instance, inbound_event(), inbound_event(), inbound_event())

    assert Message.objects.count() == 1
    assert Conversation.objects.get().message_count == 1
    assert Contact.objects.count() == 1
    assert names(captured_events) == ["message:new", "conversation:updated"]


def test_apply_inbound_replayed_after_close_opens_nothing(instance, captured_events, commit):
    """Meta re-delivers for days: a replay must not reopen the customer's closed conversation."""
    apply(instance, inbound_event())
    Conversation.objects.update(status=ChatStatus.CLOSED)

    with commit():
        apply(instance, inbound_event())

    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 1
    assert captured_events == []


def test_apply_inbound_timestamp_is_the_providers(instance):
    apply(instance, inbound_event(timestamp=datetime(2024, 1, 2, 3, 4, 5)))  # naive: taken as UTC

    assert Message.objects.get().timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# ------------------------------------------------------------------------------
# Kinds: never dropped, placeholders, media
# ------------------------------------------------------------------------------

IMAGE = MediaRef(provider_media_id="M1", url="https://cdn.test/1", mime_type="image/jpeg", size=2048, sha256="abc")


@pytest.mark.parametrize(
    ("overrides", "kind", "content"),
    [
        ({"kind": MessageKind.IMAGE, "media": IMAGE, "text": "Caixa amassada"}, "image", "[Imagem]"),
        ({"kind": MessageKind.VIDEO, "media": MediaRef(provider_media_id="V")}, "video", "[Vídeo]"),
        ({"kind": MessageKind.AUDIO, "media": MediaRef(provider_media_id="A")}, "audio", "[Áudio]"),
        (
            {"kind": MessageKind.AUDIO, "media": MediaRef(provider_media_id="A", voice=True)},
            "audio",
            "[Mensagem de voz]",
        ),
        (
            {"kind": MessageKind.DOCUMENT, "media": MediaRef(provider_media_id="D", file_name="nota.pdf")},
            "document",
            "[Documento: nota.pdf]",
        ),
        ({"kind": MessageKind.DOCUMENT, "media": MediaRef(provider_media_id="D")}, "document", "[Documento]"),
        ({"kind": MessageKind.STICKER, "media": MediaRef(provider_media_id="S")}, "sticker", "[Figurinha]"),
        (
            {"kind": MessageKind.LOCATION, "location": Location(latitude=-23.561414, longitude=-46.655881)},
            "location",
            "[Localização: -23.561414,-46.655881]",
        ),
        (
            {"kind": MessageKind.LOCATION, "location": Location(latitude=-23.5, longitude=-46.25, name="MASP")},
            "location",
            "[Localização: MASP (-23.5,-46.25)]",
        ),
        (
            {"kind": MessageKind.LOCATION, "location": Location(latitude=-23.5, longitude=-46.25), "text": "Cheguei"},
            "location",
            "[Localização: -23.5,-46.25] Cheguei",
        ),
        (
            {"kind": MessageKind.CONTACTS, "contacts": (SharedContact(name="Pedro Lima", phones=("+5511900000005",)),)},
            "contacts",
            "[Contato: Pedro Lima (+5511900000005)]",
        ),
        (
            {"kind": MessageKind.CONTACTS, "contacts": (SharedContact(name="Pedro"), SharedContact(name="Ana"))},
            "contacts",
            "[Contatos: Pedro, Ana]",
        ),
        ({"kind": MessageKind.REACTION, "reaction_to": "OUT-1", "reaction_emoji": "👍"}, "reaction", "[Reação 👍]"),
        ({"kind": MessageKind.REACTION, "reaction_to": "OUT-1", "reaction_emoji": ""}, "reaction", "[Reação removida]"),
        (
            {"kind": MessageKind.INTERACTIVE, "text": "Confirmar entrega"},
            "interactive",
            "[Resposta: Confirmar entrega]",
        ),
        ({"kind": MessageKind.UNSUPPORTED}, "unsupported", "[Mensagem não suportada]"),
        (
            {"kind": MessageKind.UNSUPPORTED, "text": "Pode entregar?"},
            "unsupported",
            "[Mensagem não suportada] Pode entregar?",
        ),
    ],
)
def test_apply_inbound_every_kind_is_stored_with_a_placeholder(instance, overrides, kind, content):
    apply(instance, inbound_event(**{"text": None, **overrides}))

    message = Message.objects.get()
    assert (message.kind, message.content) == (kind, content)
    assert Conversation.objects.get().message_count == 1


def test_apply_inbound_reaction_points_at_the_reacted_message(instance):
    apply(instance, inbound_event(kind=MessageKind.REACTION, text=None, reaction_to="OUT-1", reaction_emoji="❤️"))

    assert Message.objects.get().quoted_external_id == "OUT-1"


def test_apply_inbound_media_columns_and_reference(instance, captured_events, commit):
    with commit():
        apply(
            instance, inbound_event(kind=MessageKind.IMAGE, media=IMAGE, text="Caixa amassada", quoted_provider_id="Q1")
        )

    message = Message.objects.get()
    assert (message.media_type, message.media_mime_type, message.media_size) == ("image", "image/jpeg", 2048)
    assert (message.media_caption, message.quoted_external_id) == ("Caixa amassada", "Q1")
    assert message.media_ref["provider_media_id"] == "M1"
    assert message.media_ref["url"] == "https://cdn.test/1"
    assert message.media_ref["sha256"] == "abc"
    assert "inline_base64" not in message.media_ref
    data = captured_events[0][1]
    assert (data["hasMedia"], data["mediaType"], data["mediaMimeType"], data["mediaSize"]) == (
        True,
        "image",
        "image/jpeg",
        2048,
    )
    assert data["mediaCaption"] == "Caixa amassada"
    assert data["mediaDownloadPath"] == f"/api/messages/{message.id}/media"


def test_apply_inbound_never_stores_inline_base64(instance):
    [event] = parsed(instance, "messages_upsert__audio_ptt_base64")
    assert event.media.inline_base64  # the fixture does carry the bytes

    apply(instance, event)

    message = Message.objects.get()
    assert (message.kind, message.content, message.media_type) == ("audio", "[Mensagem de voz]", "audio")
    assert "inline_base64" not in message.media_ref
    assert event.media.inline_base64 not in json.dumps(message.media_ref)
    assert message.media_ref["provider_payload"]["key"]["id"] == event.provider_message_id


def test_apply_inbound_placeholders_follow_language_code_not_the_active_language(instance, settings):
    from django.utils import translation

    with translation.override("en"):
        apply(instance, inbound_event(kind=MessageKind.STICKER, text=None, media=MediaRef(provider_media_id="S")))

    assert Message.objects.get().content == "[Figurinha]"


# ------------------------------------------------------------------------------
# Skipped: groups, senders without a phone
# ------------------------------------------------------------------------------


def test_apply_inbound_group_message_is_skipped_logged_and_counted(instance, caplog):
    [event] = parsed(instance, "messages_upsert__group_lid_participant")
    before = inbound.skipped_count(inbound.SKIP_GROUP)

    with caplog.at_level(logging.WARNING, logger="conversations.services.inbound"):
        apply(instance, event)

    assert Message.objects.count() == Conversation.objects.count() == Contact.objects.count() == 0
    assert "conversations.inbound.group_skipped" in caplog.messages
    assert inbound.skipped_count(inbound.SKIP_GROUP) == before + 1


def test_apply_inbound_meta_group_message_is_skipped(meta_instance):
    apply(meta_instance, *parsed(meta_instance, "messages__group_text"))

    assert Message.objects.count() == Contact.objects.count() == 0


@pytest.mark.parametrize(
    ("provider", "fixture", "user_id", "name", "text"),
    [
        (
            Provider.EVOLUTION_API,
            "messages_upsert__lid_chat_without_phone",
            "200000000000001@lid",
            "Cliente Sem Número",
            "Olá",
        ),
        (Provider.OFFICIAL_META, "messages__bsuid_only_sender", "BR.13491208655302741918", "Lia", "Oi, sou a Lia"),
    ],
)
def test_apply_inbound_without_phone_reaches_a_contact_known_by_its_whatsapp_id(
    db, provider, fixture, user_id, name, text, captured_events, commit
):
    # Users with a username (Meta) or a chat addressed by LID only (Evolution): no phone, and still
    # a customer whose message must land.
    instance = ServiceInstanceFactory(provider=provider)
    before = inbound.skipped_count(inbound.SKIP_NO_PHONE)

    with commit():
        apply(instance, *parsed(instance, fixture))
        apply(instance, *parsed(instance, fixture))  # a replay changes nothing

    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_id, contact.name) == (None, user_id, name)
    message = Message.objects.select_related("conversation").get()
    assert (message.content, message.direction, message.conversation.contact_id) == (text, "INBOUND", contact.pk)
    assert inbound.skipped_count(inbound.SKIP_NO_PHONE) == before
    updated = [data for event, data, _groups in captured_events if event == "conversation:updated"]
    assert [(data["contactName"], data["contactPhone"]) for data in updated] == [(name, None)]


def test_apply_inbound_by_whatsapp_id_and_by_phone_in_one_batch(instance):
    by_id = customer(1, "LID-1", phone=None, chat_id="200000000000001@lid", user_id="200000000000001@lid")
    also_by_id = customer(1, "LID-2", phone=None, chat_id="200000000000001@lid", user_id="200000000000001@lid")

    inbound.apply_provider_events(instance=instance, events=[by_id, customer(2, "PN-1"), also_by_id])

    counts = dict(Conversation.objects.values_list("contact__whatsapp_id", "message_count"))
    assert counts == {"200000000000001@lid": 2, None: 1}
    assert Contact.objects.get(whatsapp_id="200000000000001@lid").name == "Cliente 1"


LID = "184467440737095@lid"


def test_apply_inbound_records_the_whatsapp_id_that_came_with_the_phone(instance):
    apply(instance, inbound_event(provider_message_id="PN-1", user_id=LID))
    apply(instance, inbound_event(provider_message_id="LID-1", phone=None, chat_id=LID, user_id=LID))

    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_id) == (PHONE, LID)
    assert Conversation.objects.get().message_count == 2


def test_apply_inbound_a_contact_known_by_id_gets_the_phone_when_it_shows(instance):
    apply(
        instance, inbound_event(provider_message_id="LID-1", phone=None, chat_id=LID, user_id=LID, contact_name="Ana")
    )
    apply(instance, inbound_event(provider_message_id="PN-1", user_id=LID, contact_name="Ana"))
    apply(instance, inbound_event(provider_message_id="PN-2", user_id=None, contact_name="Ana"))

    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_id, contact.name) == (PHONE, LID, "Ana")
    assert Conversation.objects.get().message_count == 3


def test_apply_inbound_both_ways_in_one_batch_for_a_new_customer_is_one_contact(instance):
    events_ = [
        inbound_event(provider_message_id="LID-1", phone=None, chat_id=LID, user_id=LID),
        inbound_event(provider_message_id="PN-1", user_id=LID),
    ]

    inbound.apply_provider_events(instance=instance, events=events_)

    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_id) == (PHONE, LID)
    assert Conversation.objects.get().message_count == 2


def test_apply_inbound_two_contacts_of_one_person_are_left_as_they_are(instance):
    by_phone = ContactFactory(phone=PHONE, name="Maria")
    by_id = ContactFactory(phone=None, whatsapp_id=LID, name="Maria (sem número)")

    apply(instance, inbound_event(provider_message_id="PN-1", user_id=LID))

    assert Conversation.objects.get().contact == by_phone
    by_phone.refresh_from_db()
    by_id.refresh_from_db()
    assert (by_phone.whatsapp_id, by_id.phone) == (None, None)


def test_apply_inbound_meta_user_id_next_to_the_phone_keeps_one_contact(meta_instance):
    text = (PAYLOADS / "meta" / "messages__text.json").read_text()
    both = json.loads(text.replace('"wa_id": "5511900000001"', '"wa_id": "5511900000001", "user_id": "BR.777"'))
    hidden = json.loads(
        (PAYLOADS / "meta" / "messages__bsuid_only_sender.json")
        .read_text()
        .replace("BR.13491208655302741918", "BR.777")
    )
    adapter = real_adapter_class(meta_instance.provider)

    apply(meta_instance, *adapter.parse_webhook(both))
    apply(meta_instance, *adapter.parse_webhook(hidden))

    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_id) == (PHONE, "BR.777")
    assert Conversation.objects.get().message_count == 2


def test_apply_inbound_evolution_lid_next_to_the_phone_keeps_one_contact(instance):
    apply(instance, *parsed(instance, "messages_upsert__text"))  # remoteJid phone, remoteJidAlt LID
    alone = json.loads((PAYLOADS / "evolution" / "messages_upsert__text.json").read_text())
    alone["data"]["key"].update(remoteJid=LID, id="LID-ONLY-1")
    alone["data"]["key"].pop("remoteJidAlt")

    apply(instance, *real_adapter_class(instance.provider).parse_webhook(alone))

    contact = Contact.objects.get()
    assert (contact.phone, contact.whatsapp_id) == (PHONE, LID)
    assert Conversation.objects.get().message_count == 2


def test_apply_inbound_with_neither_phone_nor_whatsapp_id_is_skipped_with_a_warning(instance, caplog):
    before = inbound.skipped_count(inbound.SKIP_NO_PHONE)

    with caplog.at_level(logging.WARNING, logger="conversations.services.inbound"):
        apply(instance, inbound_event(phone=None, user_id=None))

    assert Message.objects.count() == Contact.objects.count() == 0
    assert "conversations.inbound.no_phone" in caplog.messages
    assert inbound.skipped_count(inbound.SKIP_NO_PHONE) == before + 1


def _payload_from(instance, name: str, sender_digits: str) -> list:
    """A fixture's events as if ``sender_digits`` had written: the JID or ``wa_id`` WhatsApp gives."""
    folder = "evolution" if instance.provider == Provider.EVOLUTION_API else "meta"
    text = (PAYLOADS / folder / f"{name}.json").read_text().replace(PHONE[1:], sender_digits)
    return real_adapter_class(instance.provider).parse_webhook(json.loads(text))


@pytest.mark.parametrize("provider", [Provider.EVOLUTION_API, Provider.OFFICIAL_META])
def test_apply_inbound_brazilian_mobile_without_its_ninth_digit_reaches_the_contact(db, provider):
    # WhatsApp addresses many Brazilian mobiles the pre-2016 way (553188887777): that is the
    # customer on +55 31 98888-7777, not a sender to skip nor a second contact.
    instance = ServiceInstanceFactory(provider=provider)
    known = ContactFactory(phone="+5531988887777", name="Joana Prado")
    fixture = "messages_upsert__text" if provider == Provider.EVOLUTION_API else "messages__text"
    legacy = _payload_from(instance, fixture, "553188887777")
    assert [event.phone for event in legacy if isinstance(event, InboundMessage)] == ["+553188887777"]

    apply(instance, *legacy)
    apply(instance, inbound_event(provider_message_id="MSG-9", phone="+5531988887777", timestamp=T0))

    conversation = Conversation.objects.get()
    assert conversation.contact == known
    assert conversation.message_count == 2
    assert Contact.objects.get().name == "Joana Prado"


def test_apply_inbound_number_of_a_range_phonenumbers_does_not_know_still_lands(instance):
    # WhatsApp vouches for the account: its message is not dropped for the library's stale ranges.
    apply(instance, inbound_event(phone="+551112345678", chat_id="551112345678@s.whatsapp.net"))

    assert Conversation.objects.get().contact.phone == "+551112345678"


def test_apply_inbound_invalid_phone_is_skipped(instance):
    apply(instance, inbound_event(phone="+55119"))

    assert Message.objects.count() == Contact.objects.count() == 0


# ------------------------------------------------------------------------------
# Push names
# ------------------------------------------------------------------------------


def test_apply_inbound_unknown_name_stores_the_phone_as_name(instance):
    apply(instance, inbound_event(contact_name=None))

    assert Contact.objects.get().name == PHONE


@pytest.mark.parametrize("stored", ["", "   ", PHONE, "5511900000001", "+55 (11) 90000-0001"])
def test_apply_inbound_push_name_fills_an_empty_or_phone_name(instance, stored, captured_events, commit):
    contact = ContactFactory(phone=PHONE, name=stored)

    with commit():
        apply(instance, inbound_event(contact_name="Maria Silva"))

    contact.refresh_from_db()
    assert (contact.name, contact.name_search) == ("Maria Silva", "maria silva")
    assert captured_events[1][1]["contactName"] == "Maria Silva"


def test_apply_inbound_push_name_never_overwrites_a_typed_name(instance):
    contact = ContactFactory(phone=PHONE, name="Maria (cliente VIP)")

    apply(instance, inbound_event(contact_name="Mari ✨"))

    contact.refresh_from_db()
    assert contact.name == "Maria (cliente VIP)"


def test_apply_inbound_from_me_never_names_the_contact(instance):
    apply(instance, inbound_event(from_me=True, contact_name="Acme Support"))

    assert Contact.objects.get().name == PHONE


@pytest.mark.parametrize(
    ("stored", "expected"), [(PHONE, "Maria Silva"), ("", "Maria Silva"), ("Dona Maria", "Dona Maria")]
)
def test_apply_contact_update_follows_the_push_name_rule(instance, stored, expected):
    ContactFactory(phone=PHONE, name=stored)

    apply(instance, *parsed(instance, "contacts_upsert__single"))

    assert Contact.objects.get().name == expected


def test_apply_contact_update_creates_no_contact_and_ignores_groups_and_lids(instance):
    apply(instance, *parsed(instance, "contacts_update__array_with_pictures"))
    apply(instance, ContactUpdate(chat_id="x", phone=PHONE, name=None))

    assert Contact.objects.count() == 0


def test_apply_contact_update_names_a_contact_known_by_its_lid(instance):
    carla = ContactFactory(phone=None, whatsapp_id="98765432109876@lid", name="98765432109876@lid")
    typed = ContactFactory(phone=None, whatsapp_id="11111111111111@lid", name="Cliente VIP")

    apply(instance, *parsed(instance, "contacts_update__array_with_pictures"))
    apply(instance, ContactUpdate(chat_id="11111111111111@lid", phone=None, name="Outro", user_id=typed.whatsapp_id))

    carla.refresh_from_db()
    typed.refresh_from_db()
    assert (carla.name, typed.name) == ("Carla Souza", "Cliente VIP")
    assert Contact.objects.count() == 2


# ------------------------------------------------------------------------------
# Messages typed on the phone (from_me)
# ------------------------------------------------------------------------------


def test_apply_from_me_is_stored_as_outbound(instance, captured_events, commit):
    [event] = parsed(instance, "messages_upsert__from_me_on_phone")

    with commit():
        apply(instance, event)

    message = Message.objects.get()
    assert (message.direction, message.via, message.sender, message.status) == ("OUTBOUND", "CHAT_MANUAL", None, "sent")
    assert message.external_id == "3A99887766554433221100"
    assert message.content == "Já verifiquei, chega amanhã."
    conversation = message.conversation
    assert conversation.last_outbound_at == conversation.last_message_at == event.timestamp
    assert conversation.last_inbound_at is None
    assert names(captured_events) == ["message:new", "conversation:updated"]
    data = captured_events[0][1]
    assert (data["direction"], data["via"], data["status"], data["senderId"]) == (
        "OUTBOUND",
        "CHAT_MANUAL",
        "sent",
        None,
    )


@pytest.mark.parametrize("status", [MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.UNCERTAIN])
def test_apply_from_me_echo_attaches_to_the_pending_elsehub_message(
    instance, make_user, status, captured_events, commit
):
    operator = make_user()
    conversation = ConversationFactory(
        contact=ContactFactory(phone=PHONE), service_instance=instance, operator=operator, message_count=1
    )
    pending = outbound_row(conversation, sender=operator, status=status, content="Já verifiquei, chega amanhã.\n")
    event = inbound_event(
        provider_message_id="ECHO-1",
        from_me=True,
        text="Já verifiquei, chega amanhã.",
        timestamp=T0 + timedelta(seconds=3),
    )

    with commit():
        apply(instance, event, event)

    assert Message.objects.count() == 1
    pending.refresh_from_db()
    assert (pending.external_id, pending.status, pending.sender) == ("ECHO-1", "sent", operator)
    assert pending.status_changed_at == T0 + timedelta(seconds=3)
    conversation.refresh_from_db()
    assert conversation.message_count == 1
    assert names(captured_events) == ["message:status"]
    _event, data, groups = captured_events[0]
    assert set(data) == STATUS_KEYS
    assert data == {
        "id": str(pending.id),
        "conversationId": str(conversation.id),
        "externalId": "ECHO-1",
        "status": "sent",
        "statusCode": None,
        "statusReason": None,
        "changedAt": "2025-11-23T12:00:03.000Z",
    }
    assert groups == (realtime.SUPERVISORS, f"conversation.{conversation.id}", f"user.{operator.id}")


def test_apply_from_me_echo_matches_a_pending_message_in_a_closed_conversation(instance):
    conversation = ConversationFactory(
        contact=ContactFactory(phone=PHONE), service_instance=instance, status=ChatStatus.CLOSED
    )
    pending = outbound_row(conversation, status=MessageStatus.UNCERTAIN)

    apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text=pending.content))

    assert Message.objects.count() == 1
    assert Conversation.objects.count() == 1
    pending.refresh_from_db()
    assert pending.external_id == "ECHO-1"


@pytest.mark.parametrize(
    "row",
    [
        {"content": "Outra coisa"},
        {"timestamp": T0 - timedelta(minutes=11)},
        {"status": MessageStatus.SENT},
        {"status": MessageStatus.FAILED},
        {"external_id": "OTHER-ID"},
        {"direction": Direction.INBOUND},
    ],
)
def test_apply_from_me_echo_without_a_match_inserts_a_new_row(instance, row):
    conversation = ConversationFactory(contact=ContactFactory(phone=PHONE), service_instance=instance)
    outbound_row(conversation, **row)

    apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="Já verifiquei, chega amanhã."))

    assert Message.objects.count() == 2
    echo = Message.objects.get(external_id="ECHO-1")
    assert (echo.direction, echo.status, echo.conversation) == ("OUTBOUND", "sent", conversation)


def test_apply_from_me_echo_of_a_stored_id_changes_nothing(instance, captured_events, commit):
    """A replayed echo whose id is already stored must not take a newer pending send's row."""
    apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="Obrigado!"))
    conversation = Conversation.objects.get()
    newer = outbound_row(conversation, content="Obrigado!", timestamp=T0 + timedelta(minutes=1))

    with commit():
        apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="Obrigado!"))

    newer.refresh_from_db()
    assert (newer.external_id, newer.status) == (None, "pending")
    assert Message.objects.count() == 2
    assert captured_events == []


def test_apply_from_me_media_echo_matches_on_caption(instance):
    conversation = ConversationFactory(contact=ContactFactory(phone=PHONE), service_instance=instance)
    pending = outbound_row(conversation, kind="image", content="[Imagem]", media_type="image", media_caption="Catálogo")

    apply(
        instance,
        inbound_event(
            provider_message_id="ECHO-IMG", from_me=True, kind=MessageKind.IMAGE, media=IMAGE, text="Catálogo"
        ),
    )

    pending.refresh_from_db()
    assert pending.external_id == "ECHO-IMG"
    assert Message.objects.count() == 1


# ------------------------------------------------------------------------------
# Statuses
# ------------------------------------------------------------------------------


@pytest.fixture
def sent_message(instance, make_user):
    operator = make_user()
    conversation = ConversationFactory(
        contact=ContactFactory(phone=PHONE), service_instance=instance, operator=operator
    )
    return outbound_row(conversation, sender=operator, external_id="OUT-1", status=MessageStatus.SENT)


def test_apply_status_moves_forward_and_publishes(instance, sent_message, captured_events, commit):
    with commit():
        apply(instance, status_event("OUT-1", DeliveryStatus.DELIVERED, timestamp=T0 + timedelta(seconds=5)))

    sent_message.refresh_from_db()
    assert sent_message.status == "delivered"
    assert sent_message.status_changed_at == T0 + timedelta(seconds=5)
    conversation = sent_message.conversation
    assert captured_events == [
        (
            "message:status",
            {
                "id": str(sent_message.id),
                "conversationId": str(conversation.id),
                "externalId": "OUT-1",
                "status": "delivered",
                "statusCode": None,
                "statusReason": None,
                "changedAt": "2025-11-23T12:00:05.000Z",
            },
            (realtime.SUPERVISORS, f"conversation.{conversation.id}", f"user.{conversation.operator_id}"),
        )
    ]


def test_apply_status_never_moves_backwards(instance, sent_message, captured_events, commit):
    with commit():
        apply(
            instance,
            status_event("OUT-1", DeliveryStatus.READ),  # read without delivered first (Meta may skip it)
            status_event("OUT-1", DeliveryStatus.DELIVERED),
            status_event("OUT-1", DeliveryStatus.SENT),
            status_event("OUT-1", DeliveryStatus.PENDING),
            status_event("OUT-1", DeliveryStatus.READ),
        )

    sent_message.refresh_from_db()
    assert sent_message.status == "read"
    assert [data["status"] for _e, data, _g in captured_events] == ["read"]

    with commit():
        apply(instance, status_event("OUT-1", DeliveryStatus.PLAYED))
    sent_message.refresh_from_db()
    assert sent_message.status == "played"
    assert [data["status"] for _e, data, _g in captured_events] == ["read", "played"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("131047", "Mais de 24 horas"),
        ("131026", "Mensagem não entregue"),
        ("131049", "marketing"),
        ("131050", "marketing"),
        ("130429", "limite de envio"),
    ],
)
def test_apply_status_failed_carries_a_portuguese_reason(instance, sent_message, code, reason, captured_events, commit):
    with commit():
        apply(instance, status_event("OUT-1", DeliveryStatus.FAILED, error_code=code, error_message="Provider text"))

    sent_message.refresh_from_db()
    assert (sent_message.status, sent_message.status_code) == ("failed", code)
    assert reason in sent_message.status_reason
    assert "Provider text" not in sent_message.status_reason
    data = captured_events[0][1]
    assert (data["status"], data["statusCode"], data["statusReason"]) == ("failed", code, sent_message.status_reason)


def test_apply_status_failed_unknown_code_keeps_the_providers_text(instance, sent_message):
    apply(instance, status_event("OUT-1", DeliveryStatus.FAILED, error_code="132000", error_message="Param mismatch"))

    sent_message.refresh_from_db()
    assert (sent_message.status_code, sent_message.status_reason) == ("132000", "Param mismatch")


def test_apply_status_evolution_error_gets_a_sentence(instance, sent_message):
    [event] = parsed(instance, "messages_update__error")
    Message.objects.filter(pk=sent_message.pk).update(external_id=event.provider_message_id)

    apply(instance, event)

    sent_message.refresh_from_db()
    assert (sent_message.status, sent_message.status_code) == ("failed", "ERROR")
    assert sent_message.status_reason == "O WhatsApp informou um erro no envio desta mensagem."


def test_apply_status_meta_failed_131047_fixture(meta_instance):
    [event] = parsed(meta_instance, "statuses__failed_131047")
    conversation = ConversationFactory(service_instance=meta_instance)
    message = outbound_row(conversation, external_id=event.provider_message_id, status=MessageStatus.SENT)

    apply(meta_instance, event)

    message.refresh_from_db()
    assert (message.status, message.status_code) == ("failed", "131047")
    assert message.status_reason.startswith("Mais de 24 horas se passaram")


@pytest.mark.parametrize("current", [MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED])
def test_apply_status_failed_never_overrides_a_delivery(instance, sent_message, current, captured_events, commit):
    Message.objects.filter(pk=sent_message.pk).update(status=current)

    with commit():
        apply(instance, status_event("OUT-1", DeliveryStatus.FAILED, error_code="131026"))

    sent_message.refresh_from_db()
    assert (sent_message.status, sent_message.status_code) == (current, "")
    assert captured_events == []


def test_apply_status_failed_is_terminal(instance, sent_message):
    apply(
        instance,
        status_event("OUT-1", DeliveryStatus.FAILED, error_code="131047"),
        status_event("OUT-1", DeliveryStatus.DELIVERED),
    )

    sent_message.refresh_from_db()
    assert (sent_message.status, sent_message.status_code) == ("failed", "131047")


def test_apply_status_forward_clears_a_stale_reason(instance, sent_message):
    Message.objects.filter(pk=sent_message.pk).update(
        status=MessageStatus.UNCERTAIN, status_code="timeout", status_reason="O provedor não respondeu"
    )

    apply(instance, status_event("OUT-1", DeliveryStatus.DELIVERED))

    sent_message.refresh_from_db()
    assert (sent_message.status, sent_message.status_code, sent_message.status_reason) == ("delivered", "", "")


def test_apply_status_of_a_customer_message_is_ignored(instance, captured_events, commit):
    apply(instance, inbound_event(provider_message_id="IN-1"))

    with commit():
        apply(instance, status_event("IN-1", DeliveryStatus.READ))

    assert Message.objects.get().status == "received"
    assert captured_events == []
    assert EarlyStatus.objects.count() == 0


def test_apply_status_fixtures_move_an_evolution_message_forward(instance, sent_message):
    Message.objects.filter(pk=sent_message.pk).update(external_id="3EB0C767D097B7C7C030A1")

    apply(instance, *parsed(instance, "messages_update__read"), *parsed(instance, "messages_update__delivered"))

    sent_message.refresh_from_db()
    assert sent_message.status == "read"


def test_apply_status_meta_fixtures_in_any_order(meta_instance):
    conversation = ConversationFactory(service_instance=meta_instance)
    [sent] = parsed(meta_instance, "statuses__sent")
    message = outbound_row(conversation, external_id=sent.provider_message_id, status=MessageStatus.SENDING)

    apply(
        meta_instance,
        *parsed(meta_instance, "statuses__read"),
        *parsed(meta_instance, "statuses__delivered"),
        sent,
    )

    message.refresh_from_db()
    assert message.status == "read"
    assert message.status_changed_at == datetime(2025, 11, 23, 12, 15, 40, tzinfo=UTC)


# ------------------------------------------------------------------------------
# Early statuses: the status came before its message
# ------------------------------------------------------------------------------


def test_apply_status_of_an_unknown_message_is_kept_once(instance, captured_events, commit):
    with commit():
        apply(
            instance,
            status_event("ECHO-1", DeliveryStatus.DELIVERED),
            status_event("ECHO-1", DeliveryStatus.DELIVERED),
            status_event("ECHO-1", DeliveryStatus.FAILED, error_code="131047"),
        )

    kept = {(item.status, item.status_code) for item in EarlyStatus.objects.filter(service_instance=instance)}
    assert kept == {("delivered", ""), ("failed", "131047")}
    assert captured_events == []


def test_apply_early_status_is_applied_when_the_echo_lands(instance, captured_events, commit):
    apply(instance, status_event("ECHO-1", DeliveryStatus.READ, timestamp=T0 + timedelta(seconds=9)))
    apply(instance, status_event("ECHO-1", DeliveryStatus.DELIVERED, timestamp=T0 + timedelta(seconds=8)))

    with commit():
        apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="Chega amanhã"))

    message = Message.objects.get()
    assert message.status == "read"
    assert message.status_changed_at == T0 + timedelta(seconds=9)
    assert EarlyStatus.objects.count() == 0
    assert names(captured_events) == ["message:new", "conversation:updated"]
    assert captured_events[0][1]["status"] == "read"


def test_apply_early_status_is_applied_when_the_echo_matches_a_pending_send(instance, captured_events, commit):
    conversation = ConversationFactory(contact=ContactFactory(phone=PHONE), service_instance=instance)
    pending = outbound_row(conversation, status=MessageStatus.SENDING, content="Chega amanhã")
    apply(instance, status_event("ECHO-1", DeliveryStatus.DELIVERED, timestamp=T0 + timedelta(seconds=4)))

    with commit():
        apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="Chega amanhã"))

    pending.refresh_from_db()
    assert (pending.external_id, pending.status) == ("ECHO-1", "delivered")
    assert EarlyStatus.objects.count() == 0
    assert [data["status"] for _e, data, _g in captured_events] == ["delivered"]


def test_apply_early_statuses_for_the_outbound_service(instance):
    """What outbound.py calls after recording a provider id: statuses that came first are applied once."""
    conversation = ConversationFactory(service_instance=instance)
    message = outbound_row(conversation, status=MessageStatus.SENDING)
    apply(instance, status_event("OUT-9", DeliveryStatus.DELIVERED))

    message.external_id = "OUT-9"
    message.status = MessageStatus.SENT
    message.save()
    assert inbound.apply_early_statuses(message=message) is True
    assert inbound.apply_early_statuses(message=message) is False

    message.refresh_from_db()
    assert message.status == "delivered"
    assert EarlyStatus.objects.count() == 0


def test_apply_early_failed_status_loses_to_an_early_delivery(instance):
    apply(
        instance,
        status_event("ECHO-1", DeliveryStatus.FAILED, error_code="131026"),
        status_event("ECHO-1", DeliveryStatus.DELIVERED),
    )

    apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="Oi"))

    assert Message.objects.get().status == "delivered"


def test_early_statuses_whose_message_never_lands_are_forgotten_after_a_week(instance, settings):
    import time_machine

    from conversations.tasks import forget_early_statuses_task

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        apply(instance, status_event("NEVER-1", DeliveryStatus.DELIVERED))
    with time_machine.travel(start + timedelta(days=6), tick=False):
        apply(instance, status_event("NEVER-2", DeliveryStatus.READ))
        assert forget_early_statuses_task() == 0
    with time_machine.travel(start + timedelta(days=7, seconds=1), tick=False):
        assert forget_early_statuses_task() == 1
    assert list(EarlyStatus.objects.values_list("external_id", flat=True)) == ["NEVER-2"]
    schedule = settings.CELERY_BEAT_SCHEDULE["conversations.forget_early_statuses"]
    assert schedule["task"] == forget_early_statuses_task.name


# ------------------------------------------------------------------------------
# Edits, revokes, presence, connection
# ------------------------------------------------------------------------------


def test_apply_edit_replaces_the_text_and_marks_it(instance):
    apply(instance, *parsed(instance, "messages_upsert__text"))
    [edit] = parsed(instance, "messages_edited__edit")

    apply(instance, edit, edit)

    message = Message.objects.get()
    assert message.content == "Oi! Meu pedido #1042 ainda não chegou 😕 (editada)"
    assert Message.objects.count() == 1


def test_apply_edit_of_a_media_message_changes_its_caption(instance):
    apply(instance, inbound_event(kind=MessageKind.IMAGE, media=IMAGE, text="Antes"))

    apply(instance, MessageEdited(provider_message_id="MSG-1", chat_id=None, text="Depois"))

    message = Message.objects.get()
    assert (message.content, message.media_caption) == ("[Imagem]", "Depois")


def test_apply_meta_edit_and_revoke_fixtures(meta_instance):
    apply(meta_instance, *parsed(meta_instance, "messages__text"))
    apply(meta_instance, *parsed(meta_instance, "messages__edit"))
    assert Message.objects.get().content == "Oi! Meu pedido #1042 ainda não chegou (editada)"

    apply(meta_instance, *parsed(meta_instance, "messages__revoke"))

    message = Message.objects.get()
    assert message.content == "[Mensagem apagada]"


def test_apply_revoke_keeps_the_row_and_drops_the_words(instance):
    apply(instance, inbound_event(kind=MessageKind.IMAGE, media=IMAGE, text="Legenda"))

    apply(instance, MessageRevoked(provider_message_id="MSG-1", chat_id=None), MessageRevoked("MSG-1", None))

    message = Message.objects.get()
    assert (message.content, message.media_caption, message.kind) == ("[Mensagem apagada]", "", "image")
    assert message.media_ref is not None
    assert Conversation.objects.get().message_count == 1


def test_apply_edit_and_revoke_of_unknown_messages_do_nothing(instance):
    apply(
        instance,
        MessageEdited(provider_message_id="NOPE", chat_id=None, text="x"),
        MessageRevoked(provider_message_id="NOPE", chat_id=None),
    )

    assert Message.objects.count() == 0


def test_apply_presence_and_connection_events_touch_nothing(
    instance, captured_events, commit, django_assert_num_queries
):
    with commit(), django_assert_num_queries(0):
        apply(
            instance,
            PresenceUpdate(chat_id="5511900000001@s.whatsapp.net", presence=Presence.COMPOSING),
            ConnectionUpdate(connection=ConnectionInfo(state=ConnectionState.CONNECTED)),
        )

    assert captured_events == []


# ------------------------------------------------------------------------------
# Real payloads, end to end through the adapters
# ------------------------------------------------------------------------------

EVOLUTION_MESSAGES = sorted(
    path.stem
    for path in (PAYLOADS / "evolution").glob("messages_upsert__*.json")
    if "group" not in path.stem and "poll" not in path.stem and "view_once" not in path.stem
)
META_MESSAGES = sorted(
    path.stem
    for path in (PAYLOADS / "meta").glob("messages__*.json")
    if path.stem not in {"messages__group_text", "messages__edit", "messages__revoke"}
)


@pytest.mark.parametrize("fixture", EVOLUTION_MESSAGES)
def test_apply_evolution_message_fixtures_are_stored(instance, fixture):
    events_ = [event for event in parsed(instance, fixture) if isinstance(event, InboundMessage)]
    assert events_

    apply(instance, *events_)
    apply(instance, *events_)

    assert Message.objects.count() == len(events_)
    for message in Message.objects.all():
        assert message.content or message.kind == "text"
        assert message.timestamp in {event.timestamp for event in events_}


@pytest.mark.parametrize("fixture", META_MESSAGES)
def test_apply_meta_message_fixtures_are_stored(meta_instance, fixture):
    events_ = [event for event in parsed(meta_instance, fixture) if isinstance(event, InboundMessage)]
    assert events_

    apply(meta_instance, *events_)
    apply(meta_instance, *events_)

    assert Message.objects.count() == len(events_)
    assert all(message.content for message in Message.objects.all())


def test_apply_evolution_text_fixture(instance):
    apply(instance, *parsed(instance, "messages_upsert__text"))

    message = Message.objects.select_related("conversation__contact").get()
    assert message.content == "Oi! Meu pedido ainda não chegou 😕"
    assert message.external_id == "A5561E44C2A63682E4295B52F484C14E"
    assert message.timestamp == datetime(2025, 11, 23, 12, 13, 20, tzinfo=UTC)
    assert (message.conversation.contact.phone, message.conversation.contact.name) == (PHONE, "Maria Silva")


def test_apply_meta_batch_fixture(meta_instance):
    apply(meta_instance, *parsed(meta_instance, "batch__two_entries"))

    assert Conversation.objects.count() == Contact.objects.count()
    assert Message.objects.filter(direction=Direction.INBOUND).exists()


# ------------------------------------------------------------------------------
# Batches: apply_provider_events
# ------------------------------------------------------------------------------


def customer(n: int, message: str, **overrides) -> InboundMessage:
    phone = f"+55119000000{n:02d}"
    values = {
        "provider_message_id": message,
        "chat_id": f"{phone[1:]}@s.whatsapp.net",
        "phone": phone,
        "contact_name": f"Cliente {n}",
        "text": f"texto {message}",
    }
    return inbound_event(**{**values, **overrides})


def test_apply_events_stores_a_batch_of_customers_like_one_by_one(instance, captured_events, commit):
    batch = [
        customer(1, "A1", timestamp=T0),
        customer(2, "B1", timestamp=T0 + timedelta(seconds=1), contact_name=""),
        customer(1, "A2", timestamp=T0 + timedelta(seconds=2)),
        customer(2, "B2", timestamp=T0 + timedelta(seconds=3), contact_name="Bruno"),
        customer(2, "B3", timestamp=T0 + timedelta(seconds=4), contact_name="Outro Nome"),
    ]
    with commit():
        inbound.apply_provider_events(instance=instance, events=batch)

    first, second = (
        Conversation.objects.select_related("contact").get(contact__phone=f"+551190000000{n}") for n in (1, 2)
    )
    assert (first.message_count, first.start_time, first.last_message_at) == (2, T0, T0 + timedelta(seconds=2))
    assert (second.message_count, second.start_time) == (3, T0 + timedelta(seconds=1))
    assert second.last_inbound_at == T0 + timedelta(seconds=4)
    assert first.contact.name == "Cliente 1"
    assert second.contact.name == "Bruno"  # the first push name; later ones never overwrite it
    assert list(second.messages.order_by("timestamp").values_list("external_id", "direction", "status", "via")) == [
        (external_id, Direction.INBOUND, MessageStatus.RECEIVED, Via.INBOUND) for external_id in ("B1", "B2", "B3")
    ]
    # A message:new per message in arrival order, then one conversation:updated per conversation
    # carrying its final counters.
    assert names(captured_events) == ["message:new"] * 5 + ["conversation:updated"] * 2
    assert [data["externalId"] for _e, data, _g in captured_events[:5]] == ["A1", "B1", "A2", "B2", "B3"]
    updated = {data["id"]: data["messageCount"] for event, data, _g in captured_events[5:]}
    assert updated == {str(first.id): 2, str(second.id): 3}


def test_apply_events_skips_ids_already_stored_or_repeated_in_the_batch(instance, captured_events, commit):
    apply(instance, customer(1, "A1"))
    with commit():
        inbound.apply_provider_events(
            instance=instance, events=[customer(1, "A1"), customer(1, "A2"), customer(1, "A2", text="de novo")]
        )
    assert sorted(Message.objects.values_list("external_id", "content")) == [("A1", "texto A1"), ("A2", "texto A2")]
    assert Conversation.objects.get().message_count == 2
    assert names(captured_events) == ["message:new", "conversation:updated"]


def test_apply_events_keeps_the_first_of_a_repeated_id_in_its_place(instance, captured_events, commit):
    with commit():
        inbound.apply_provider_events(
            instance=instance,
            events=[
                customer(1, "A1", timestamp=T0),
                customer(1, "A2", timestamp=T0 + timedelta(seconds=1)),
                customer(1, "A1", timestamp=T0 + timedelta(seconds=2), text="de novo"),
            ],
        )
    conversation = Conversation.objects.get()
    assert conversation.start_time == T0  # opened by A1, the first message
    assert [data["externalId"] for event, data, _g in captured_events if event == "message:new"] == ["A1", "A2"]
    assert Message.objects.get(external_id="A1").content == "texto A1"


def test_apply_events_keeps_the_order_around_the_events_applied_one_by_one(instance, captured_events, commit):
    reply = inbound_event(provider_message_id="OUT-9", from_me=True, text="Já vou ver", timestamp=T0 + timedelta(1))
    with commit():
        inbound.apply_provider_events(
            instance=instance,
            events=[
                customer(1, "A1", phone=PHONE),
                reply,
                status_event("OUT-9", DeliveryStatus.READ, timestamp=T0 + timedelta(days=1, seconds=5)),
                customer(1, "A2", phone=PHONE, timestamp=T0 + timedelta(days=2)),
            ],
        )
    conversation = Conversation.objects.get()
    assert conversation.message_count == 3
    assert conversation.last_outbound_at == T0 + timedelta(days=1)
    assert conversation.last_inbound_at == T0 + timedelta(days=2)
    # The status found its message: it was stored before the status was applied.
    assert Message.objects.get(external_id="OUT-9").status == MessageStatus.READ
    assert not EarlyStatus.objects.exists()


def test_apply_events_after_closing_opens_a_new_conversation(instance):
    apply(instance, customer(1, "A1"))
    Conversation.objects.update(status=ChatStatus.CLOSED, end_time=T0)
    inbound.apply_provider_events(instance=instance, events=[customer(1, "A2"), customer(1, "A3")])
    assert sorted(Conversation.objects.values_list("status", "message_count")) == [
        (ChatStatus.CLOSED, 1),
        (ChatStatus.OPEN, 2),
    ]


def test_apply_events_batch_of_many_customers_costs_the_same_queries(instance):
    def cost(batch) -> int:
        with CaptureQueriesContext(connection) as context:
            inbound.apply_provider_events(instance=instance, events=batch)
        return len(context.captured_queries)

    assert cost([customer(1, "A1")]) == cost([customer(n, f"N{n}") for n in range(10, 60)])
    assert cost([customer(1, "A2")]) == cost([customer(n, f"M{n}") for n in range(10, 60)])
    assert Message.objects.count() == 102


# ------------------------------------------------------------------------------
# Cost
# ------------------------------------------------------------------------------

# Inside the test's own transaction an atomic() is a savepoint: two more statements than in production
# (customers' messages take no savepoint: they join the caller's transaction).
TEST_TRANSACTION_OVERHEAD = 2


def test_apply_inbound_text_query_count(instance):
    apply(instance, inbound_event(provider_message_id="WARM"))  # contact and open conversation exist

    with CaptureQueriesContext(connection) as context:
        apply(instance, inbound_event(provider_message_id="COUNTED"))

    # SELECT contacts FOR UPDATE, SELECT the stored ids, SELECT conversations FOR UPDATE,
    # INSERT messages, UPDATE conversations.
    assert len(context.captured_queries) == 5, context.captured_queries


def test_apply_inbound_first_message_query_count(instance):
    with CaptureQueriesContext(connection) as context:
        apply(instance, inbound_event())

    # SELECT contacts, INSERT contacts (ON CONFLICT DO NOTHING), SELECT them FOR UPDATE, SELECT the
    # stored ids, SELECT conversations, INSERT conversations, INSERT messages.
    assert len(context.captured_queries) == 7, context.captured_queries


def test_apply_status_query_count(instance, sent_message):
    with CaptureQueriesContext(connection) as context:
        apply(instance, status_event("OUT-1", DeliveryStatus.DELIVERED))

    # SELECT message FOR UPDATE (with its conversation), UPDATE message.
    assert len(context.captured_queries) <= 2 + TEST_TRANSACTION_OVERHEAD, context.captured_queries


def test_apply_replayed_inbound_query_count(instance):
    apply(instance, inbound_event())

    with CaptureQueriesContext(connection) as context:
        apply(instance, inbound_event())

    # SELECT contacts FOR UPDATE, SELECT the stored ids: known, nothing more.
    assert len(context.captured_queries) == 2, context.captured_queries


# ------------------------------------------------------------------------------
# Concurrency (PostgreSQL)
# ------------------------------------------------------------------------------


def run_concurrently(instance, events_: list) -> None:
    """Apply each event from its own thread and connection, all at once; re-raises the first failure."""
    run_at_once([lambda event=event: apply_provider_event(instance=instance, event=event) for event in events_])


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; the in-memory SQLite test database locks its tables")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_apply_inbound_replayed_concurrently_stores_one_message(round_, captured_events):
    require_postgresql()
    instance = ServiceInstanceFactory()

    run_concurrently(instance, [inbound_event()] * 3)

    assert Contact.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 1
    assert Conversation.objects.get().message_count == 1
    assert sorted(names(captured_events)) == ["conversation:updated", "message:new"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_apply_first_messages_of_a_new_contact_at_once_share_one_conversation(round_, captured_events):
    require_postgresql()
    instance = ServiceInstanceFactory()
    events_ = [inbound_event(provider_message_id=f"M{i}", timestamp=T0 + timedelta(seconds=i)) for i in range(4)]

    run_concurrently(instance, events_)

    assert Contact.objects.count() == 1
    conversation = Conversation.objects.get()
    assert conversation.message_count == 4
    assert conversation.last_message_at == T0 + timedelta(seconds=3)
    assert Message.objects.filter(conversation=conversation).count() == 4
    assert names(captured_events).count("message:new") == 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_apply_first_messages_by_phone_and_by_id_at_once_are_both_stored(round_):
    # One new customer named both ways at the same moment: whichever insert wins, no message is
    # lost and the losing side retries without the id it could not claim.
    require_postgresql()
    instance = ServiceInstanceFactory()

    run_concurrently(
        instance,
        [
            inbound_event(provider_message_id="PN-1", user_id=LID),
            inbound_event(provider_message_id="LID-1", phone=None, chat_id=LID, user_id=LID),
            inbound_event(provider_message_id="PN-2", user_id=LID, timestamp=T0 + timedelta(seconds=1)),
        ],
    )

    assert Message.objects.count() == 3
    assert Contact.objects.filter(whatsapp_id=LID).count() == 1
    assert Contact.objects.filter(phone=PHONE).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_apply_status_and_its_message_at_once_never_lose_the_status(round_):
    require_postgresql()
    instance = ServiceInstanceFactory()

    run_concurrently(
        instance,
        [
            inbound_event(provider_message_id="ECHO-1", from_me=True, text="Oi"),
            status_event("ECHO-1", DeliveryStatus.DELIVERED),
            status_event("ECHO-1", DeliveryStatus.READ),
        ],
    )

    assert Message.objects.get().status == "read"
    assert EarlyStatus.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_apply_inbound_waits_for_a_conversation_being_closed(captured_events):
    """A message racing a close lands in a new conversation, never in the one just closed."""
    require_postgresql()
    from django.db import transaction

    instance = ServiceInstanceFactory()
    apply(instance, inbound_event(provider_message_id="FIRST"))
    first = Conversation.objects.get()
    locked = threading.Event()
    release = threading.Event()

    def close() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
                Conversation.objects.filter(pk=first.pk).update(status=ChatStatus.CLOSED, end_time=timezone.now())
        finally:
            connection.close()

    closer = threading.Thread(target=close)
    closer.start()
    assert locked.wait(10)
    failures: list[BaseException] = []

    def receive() -> None:
        try:
            apply(instance, inbound_event(provider_message_id="SECOND"))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    receiver = threading.Thread(target=receive)
    receiver.start()
    receiver.join(0.5)
    release.set()
    closer.join(10)
    receiver.join(10)

    assert not failures
    second = Message.objects.get(external_id="SECOND").conversation
    assert second != first
    assert second.status == ChatStatus.OPEN
    first.refresh_from_db()
    assert (first.status, first.message_count) == (ChatStatus.CLOSED, 1)


@pytest.mark.django_db(transaction=True)
def test_apply_echo_racing_the_send_that_records_its_id_does_not_deadlock():
    """The send holds its row with the new id uncommitted and then looks for early statuses;
    an echo of it (unmatched by content) inserted meanwhile must wait, then see a duplicate."""
    require_postgresql()
    from django.db import transaction

    instance = ServiceInstanceFactory()
    conversation = ConversationFactory(contact=ContactFactory(phone=PHONE), service_instance=instance)
    ours = outbound_row(conversation, status=MessageStatus.SENDING, kind="image", content="")
    recorded = threading.Event()
    failures: list[BaseException] = []

    def record_sent() -> None:
        try:
            with transaction.atomic():
                message = Message.objects.select_for_update().get(pk=ours.pk)
                message.external_id, message.status = "ECHO-1", MessageStatus.SENT
                message.save()
                recorded.set()
                threading.Event().wait(0.5)  # the echo reaches its insert meanwhile
                inbound.apply_early_statuses(message=message)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def echo() -> None:
        try:
            recorded.wait(10)
            apply(instance, inbound_event(provider_message_id="ECHO-1", from_me=True, text="não bate"))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=record_sent), threading.Thread(target=echo)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not failures
    assert Message.objects.count() == 1
    assert Message.objects.get().pk == ours.pk
