"""The messages API (contract section 8): send, list a conversation's messages, get one."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.tests.factories import ContactFactory
from conversations.events import message_payload
from conversations.models import ChatStatus, Direction, Message, MessageStatus, Via
from conversations.tests.factories import ConversationFactory, MessageFactory
from elsehub.api.fields import format_timestamp
from instances.tests.factories import ServiceInstanceFactory

pytestmark = pytest.mark.django_db

SEND = "/api/messages/send"
NOT_FOUND_OR_CLOSED = {"statusCode": 404, "message": "Conversa não encontrada ou fechada", "error": "Not Found"}
INSTANCE_INACTIVE = {"statusCode": 400, "message": "Instância de serviço inativa", "error": "Bad Request"}
TAKE_FIRST = "Esta conversa está na fila: assuma-a (atribua-a a você) antes de enviar mensagens"
TEXT = "Olá! Como posso ajudar?"


def _list(conversation_id) -> str:
    return f"/api/messages/conversation/{conversation_id}"


def _detail(message_id) -> str:
    return f"/api/messages/{message_id}"


@pytest.fixture
def instance():
    return ServiceInstanceFactory()


@pytest.fixture
def conversation(instance, operator_user):
    """Assigned to the signed-in operator of ``operator_client``."""
    return ConversationFactory(
        contact=ContactFactory(phone="+5514997654321"), service_instance=instance, operator=operator_user
    )


def _send(client, conversation, **body):
    return client.post(SEND, {"conversationId": str(conversation.pk), "content": TEXT, **body}, format="json")


def _sends(fake_provider) -> list[dict]:
    return [kwargs for name, kwargs in fake_provider.calls if name == "send_text"]


# ------------------------------------------------------------------------------
# POST /api/messages/send
# ------------------------------------------------------------------------------


def test_send_returns_201_with_the_contract_body_as_pending(operator_client, operator_user, conversation):
    before = timezone.now()
    response = _send(operator_client, conversation)

    assert response.status_code == 201, response.json()
    message = Message.objects.get()
    assert response.json() == {
        "id": str(message.pk),
        "conversationId": str(conversation.pk),
        "senderId": str(operator_user.pk),
        "senderName": operator_user.name,
        "content": TEXT,
        "kind": "text",
        "hasMedia": False,
        "mediaType": None,
        "mediaFileName": None,
        "mediaMimeType": None,
        "mediaSize": None,
        "mediaCaption": None,
        "mediaStoragePath": None,
        "mediaPublicUrl": None,
        "mediaDownloadPath": None,
        "direction": "OUTBOUND",
        "via": "CHAT_MANUAL",
        "externalId": None,
        "status": "pending",
        "statusCode": None,
        "statusReason": None,
        "createdAt": format_timestamp(message.timestamp),
    }
    assert (message.direction, message.via, message.status, message.sender) == (
        Direction.OUTBOUND,
        Via.CHAT_MANUAL,
        MessageStatus.PENDING,
        operator_user,
    )
    assert message.service_instance_id == conversation.service_instance_id
    assert before <= message.timestamp <= timezone.now()


def test_send_updates_the_conversation_counters(operator_client, conversation):
    earlier = timezone.now() - timedelta(hours=1)
    conversation.message_count, conversation.last_message_at, conversation.last_inbound_at = 4, earlier, earlier
    conversation.save()

    _send(operator_client, conversation)

    message = Message.objects.get()
    conversation.refresh_from_db()
    assert conversation.message_count == 5
    assert conversation.last_message_at == message.timestamp
    assert conversation.last_outbound_at == message.timestamp
    assert conversation.last_inbound_at == earlier


def test_send_delivers_through_the_provider_after_commit(
    operator_client, conversation, fake_provider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(operator_client, conversation)

    assert response.status_code == 201
    assert response.json()["status"] == "pending"  # the answer does not wait for the provider
    message = Message.objects.get()
    assert (message.status, message.external_id, message.attempts) == (MessageStatus.SENT, "fake-1", 1)
    assert _sends(fake_provider) == [
        {"instance": conversation.service_instance.name, "to": "+5514997654321", "text": TEXT}
    ]
    detail = operator_client.get(_detail(message.pk)).json()
    assert (detail["status"], detail["externalId"]) == ("sent", "fake-1")


def test_send_without_commit_leaves_the_message_in_the_outbox(operator_client, conversation, fake_provider):
    # No commit, no task: the row is the outbox and the sweeper's to pick up.
    _send(operator_client, conversation)

    assert Message.objects.get().status == MessageStatus.PENDING
    assert _sends(fake_provider) == []


def test_send_publishes_message_new_and_conversation_updated(
    operator_client, operator_user, conversation, captured_events, django_capture_on_commit_callbacks, monkeypatch
):
    from conversations.tasks import deliver_message_task

    # Delivery has its own tests (test_outbound.py); here only what the send itself publishes.
    monkeypatch.setattr(type(deliver_message_task._get_current_object()), "delay", lambda self, message_id: None)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _send(operator_client, conversation)

    message = Message.objects.select_related("sender").get()
    groups = ("supervisors", f"conversation.{conversation.pk}", f"user.{operator_user.pk}")
    (new_event, new_data, new_groups), (updated_event, updated_data, updated_groups) = captured_events
    assert (new_event, new_groups) == ("message:new", groups)
    assert new_data == response.json() == message_payload(message)
    assert updated_event == "conversation:updated"
    assert updated_groups == (*groups, f"queue.{conversation.service_instance_id}")
    assert updated_data["id"] == str(conversation.pk)
    assert updated_data["messageCount"] == 1
    assert updated_data["lastMessageAt"] == format_timestamp(message.timestamp)
    assert len(callbacks) == 3  # the two events and the delivery task


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_send_staff_may_send_in_any_open_conversation(request, client_name, instance, make_user):
    someone_elses = ConversationFactory(service_instance=instance, operator=make_user())
    queued = ConversationFactory(service_instance=instance)
    client = request.getfixturevalue(client_name)

    for target in (someone_elses, queued):
        response = _send(client, target)
        assert response.status_code == 201, response.json()
        assert response.json()["senderId"] == str(client.user.pk)


@pytest.mark.parametrize("via", ["CAMPAIGN", "CHAT_MANUAL"])
def test_send_staff_may_choose_via(admin_client, conversation, via):
    response = _send(admin_client, conversation, via=via)

    assert response.status_code == 201
    assert response.json()["via"] == via
    assert Message.objects.get().via == via


def test_send_operator_may_not_use_campaign_via(operator_client, conversation):
    response = _send(operator_client, conversation, via="CAMPAIGN")

    assert response.status_code == 403
    assert response.json() == {
        "statusCode": 403,
        "message": "Operadores só podem enviar mensagens com via CHAT_MANUAL",
        "error": "Forbidden",
    }
    assert not Message.objects.exists()


def test_send_operator_in_a_queued_conversation_must_take_it_first(operator_client, instance):
    queued = ConversationFactory(service_instance=instance)

    response = _send(operator_client, queued)

    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "message": TAKE_FIRST, "error": "Bad Request"}
    assert not Message.objects.exists()


def test_send_operator_in_another_operators_conversation_is_404(operator_client, instance, make_user):
    theirs = ConversationFactory(service_instance=instance, operator=make_user())

    response = _send(operator_client, theirs)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_OR_CLOSED


def test_send_unknown_conversation_is_404(admin_client):
    response = admin_client.post(SEND, {"conversationId": str(uuid.uuid4()), "content": TEXT}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_OR_CLOSED


@pytest.mark.parametrize("client_name", ["admin_client", "operator_client"])
def test_send_closed_conversation_is_404(request, client_name, conversation):
    conversation.status, conversation.end_time = ChatStatus.CLOSED, timezone.now()
    conversation.save()

    response = _send(request.getfixturevalue(client_name), conversation)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND_OR_CLOSED
    assert not Message.objects.exists()


@pytest.mark.parametrize("change", [{"is_active": False}, {"is_active": False, "deleted_at": timezone.now()}])
def test_send_inactive_or_deleted_instance_is_400(operator_client, conversation, instance, change):
    for name, value in change.items():
        setattr(instance, name, value)
    instance.save()

    response = _send(operator_client, conversation)

    assert response.status_code == 400
    assert response.json() == INSTANCE_INACTIVE
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": TEXT}, "conversationId"),
        ({"conversationId": "not-a-uuid", "content": TEXT}, "conversationId"),
        ({"conversationId": None, "content": TEXT}, "conversationId"),
        ({"conversationId": "<conversation>"}, "content"),
        ({"conversationId": "<conversation>", "content": ""}, "content"),
        ({"conversationId": "<conversation>", "content": "   \n\t "}, "content"),
        ({"conversationId": "<conversation>", "content": None}, "content"),
        ({"conversationId": "<conversation>", "content": ["a"]}, "content"),
        ({"conversationId": "<conversation>", "content": "x" * 4097}, "content"),
        ({"conversationId": "<conversation>", "content": TEXT, "via": "EMAIL"}, "via"),
        ({"conversationId": "<conversation>", "content": TEXT, "via": "INBOUND"}, "via"),
        ({"conversationId": "<conversation>", "content": TEXT, "via": None}, "via"),
        ({"conversationId": "<conversation>", "content": TEXT, "quotedMessageId": "x"}, "quotedMessageId"),
        ({"conversationId": "<conversation>", "content": TEXT, "quotedMessageId": 7}, "quotedMessageId"),
    ],
    ids=[
        "conversationId-missing",
        "conversationId-not-uuid",
        "conversationId-null",
        "content-missing",
        "content-empty",
        "content-only-spaces",
        "content-null",
        "content-list",
        "content-too-long",
        "via-unknown",
        "via-inbound",
        "via-null",
        "quotedMessageId-not-uuid",
        "quotedMessageId-number",
    ],
)
def test_send_invalid_body_is_422_naming_the_field(admin_client, conversation, body, field):
    body = {key: str(conversation.pk) if value == "<conversation>" else value for key, value in body.items()}

    response = admin_client.post(SEND, body, format="json")

    assert response.status_code == 422, response.json()
    payload = response.json()
    assert (payload["statusCode"], payload["error"]) == (422, "Unprocessable Entity")
    assert [message.split(":")[0] for message in payload["message"]] == [field]
    assert not Message.objects.exists()


def test_send_invalid_body_messages_are_portuguese(admin_client, conversation):
    for content, expected in (
        ("  ", "content: A mensagem não pode ser vazia nem conter apenas espaços"),
        ("x" * 4097, "content: A mensagem tem 4097 caracteres; o limite é 4096"),
    ):
        response = admin_client.post(SEND, {"conversationId": str(conversation.pk), "content": content}, format="json")
        assert response.json()["message"] == [expected]

    response = _send(admin_client, conversation, via="INBOUND")
    assert response.json()["message"] == [
        "via: INBOUND é para mensagens recebidas por webhook e não pode ser usado para enviar"
    ]


def test_send_content_of_4096_characters_is_accepted_as_typed(operator_client, conversation):
    content = "  " + "x" * 4092 + "\n\n"

    response = _send(operator_client, conversation, content=content)

    assert response.status_code == 201
    assert Message.objects.get().content == content  # not trimmed


def test_send_malformed_json_is_400(operator_client):
    response = operator_client.post(SEND, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"


def test_send_quoted_message_passes_its_external_id_to_the_provider(
    operator_client, conversation, fake_provider, monkeypatch, django_capture_on_commit_callbacks
):
    quoted = MessageFactory(conversation=conversation, external_id="3EB0QUOTED")
    seen = []
    original = fake_provider.send_text

    def send_text(self, *, to, text, quoted_provider_id=None):
        seen.append(quoted_provider_id)
        return original(self, to=to, text=text, quoted_provider_id=quoted_provider_id)

    monkeypatch.setattr(fake_provider, "send_text", send_text)
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(operator_client, conversation, quotedMessageId=str(quoted.pk))

    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).quoted_external_id == "3EB0QUOTED"
    assert seen == ["3EB0QUOTED"]


def test_send_quoted_message_of_another_conversation_is_422(operator_client, conversation):
    elsewhere = MessageFactory()

    response = _send(operator_client, conversation, quotedMessageId=str(elsewhere.pk))

    assert response.status_code == 422
    assert response.json()["message"] == ["quotedMessageId: A mensagem citada não pertence a esta conversa"]
    assert Message.objects.count() == 1


def test_send_quoted_message_without_provider_id_is_422(operator_client, conversation):
    unsent = MessageFactory(conversation=conversation, external_id=None, direction=Direction.OUTBOUND)

    response = _send(operator_client, conversation, quotedMessageId=str(unsent.pk))

    assert response.status_code == 422
    assert response.json()["message"] == [
        "quotedMessageId: A mensagem citada ainda não chegou ao WhatsApp e não pode ser citada"
    ]


# ------------------------------------------------------------------------------
# GET /api/messages/conversation/:conversationId
# ------------------------------------------------------------------------------


def _messages(conversation, count: int, sender=None) -> list[Message]:
    start = timezone.now() - timedelta(hours=1)
    rows = []
    for index in range(count):
        outbound = sender is not None and index % 2
        rows.append(
            MessageFactory(
                conversation=conversation,
                timestamp=start + timedelta(seconds=count - index),  # inserted newest first
                direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
                via=Via.CHAT_MANUAL if outbound else Via.INBOUND,
                sender=sender if outbound else None,
                status=MessageStatus.SENT if outbound else MessageStatus.RECEIVED,
            )
        )
    return rows


def test_list_messages_oldest_first_as_a_bare_array(operator_client, operator_user, conversation):
    rows = _messages(conversation, 4, sender=operator_user)
    MessageFactory()  # another conversation's

    response = operator_client.get(_list(conversation.pk))

    assert response.status_code == 200
    expected = sorted(rows, key=lambda row: row.timestamp)
    assert response.json() == [message_payload(Message.objects.select_related("sender").get(pk=m.pk)) for m in expected]
    assert response["X-Total-Count"] == "4"


def test_list_messages_paginates_with_headers(operator_client, conversation):
    rows = sorted(_messages(conversation, 5), key=lambda row: row.timestamp)

    response = operator_client.get(_list(conversation.pk), {"page": 2, "limit": 2})

    assert [item["id"] for item in response.json()] == [str(rows[2].pk), str(rows[3].pk)]
    assert response["X-Total-Count"] == "5"
    assert 'rel="next"' in response["Link"] and 'rel="prev"' in response["Link"]


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"page": 0}, {"page": "x"}])
def test_list_messages_bad_pagination_is_422(operator_client, conversation, params):
    response = operator_client.get(_list(conversation.pk), params)

    assert response.status_code == 422


@pytest.mark.parametrize("count", [3, 30])
def test_list_messages_query_count_does_not_grow(operator_client, operator_user, conversation, count):
    _messages(conversation, count, sender=operator_user)

    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(_list(conversation.pk), {"limit": 100})

    assert len(response.json()) == count
    # user (token), conversation, COUNT, page with senders: whatever the number of messages.
    assert len(queries) == 4, [query["sql"] for query in queries]


def test_list_messages_operator_sees_a_queued_conversation(operator_client, instance):
    queued = ConversationFactory(service_instance=instance)
    MessageFactory(conversation=queued)

    response = operator_client.get(_list(queued.pk))

    assert response.status_code == 200
    assert len(response.json()) == 1


def test_list_messages_closed_conversation_stays_readable(supervisor_client, conversation):
    MessageFactory(conversation=conversation)
    conversation.status = ChatStatus.CLOSED
    conversation.save()

    assert len(supervisor_client.get(_list(conversation.pk)).json()) == 1


def test_list_messages_of_a_conversation_the_operator_may_not_see_is_404(operator_client, instance, make_user):
    theirs = ConversationFactory(service_instance=instance, operator=make_user())
    MessageFactory(conversation=theirs)

    response = operator_client.get(_list(theirs.pk))

    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


def test_list_messages_unknown_conversation_is_404(admin_client):
    assert admin_client.get(_list(uuid.uuid4())).status_code == 404


# ------------------------------------------------------------------------------
# GET /api/messages/:id
# ------------------------------------------------------------------------------


def test_get_message_returns_the_contract_body(supervisor_client, operator_user, conversation):
    message = MessageFactory(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        via=Via.CHAT_MANUAL,
        sender=operator_user,
        status=MessageStatus.DELIVERED,
    )

    response = supervisor_client.get(_detail(message.pk))

    assert response.status_code == 200
    body = response.json()
    assert body == message_payload(Message.objects.select_related("sender").get(pk=message.pk))
    assert (body["senderName"], body["status"], body["externalId"]) == (
        operator_user.name,
        "delivered",
        message.external_id,
    )


def test_get_message_of_a_conversation_the_operator_may_not_see_is_404(operator_client, instance, make_user):
    theirs = MessageFactory(conversation=ConversationFactory(service_instance=instance, operator=make_user()))

    response = operator_client.get(_detail(theirs.pk))

    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Recurso não encontrado", "error": "Not Found"}


def test_get_message_operator_sees_their_own_conversations_messages(operator_client, conversation):
    message = MessageFactory(conversation=conversation)

    assert operator_client.get(_detail(message.pk)).status_code == 200


def test_get_message_unknown_id_is_404(admin_client):
    assert admin_client.get(_detail(uuid.uuid4())).status_code == 404
