"""The conversations endpoints (contract section 7) as a client calls them, errors in the section 16 format."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from accounts.models import Role, User
from contacts.tests.factories import ContactFactory
from conversations.events import conversation_payload
from conversations.models import ChatStatus, Conversation, ConversationClosure, Direction, MessageStatus, Via
from conversations.services.conversations import compute_closure_metrics
from conversations.tests.factories import ConversationFactory, MessageFactory, TabulationFactory
from elsehub.tests.concurrency import send_at_once
from instances.tests.factories import ServiceInstanceFactory

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/api/conversations"
QUEUE = "/api/conversations/queue"
CONTRACT_KEYS = {
    "id",
    "contactId",
    "contactName",
    "contactPhone",
    "serviceInstanceId",
    "serviceInstanceName",
    "operatorId",
    "operatorName",
    "status",
    "startTime",
    "messageCount",
    "lastMessageAt",
}
FORBIDDEN = {"statusCode": 403, "message": "Usuário não autorizado para executar esta ação", "error": "Forbidden"}
UNAUTHORIZED = {"statusCode": 401, "message": "Token inválido ou ausente", "error": "Unauthorized"}
NOT_FOUND = {"statusCode": 404, "message": "Recurso não encontrado", "error": "Not Found"}
ALREADY_OPEN = {
    "statusCode": 409,
    "message": "Este contato já tem uma conversa aberta nesta instância de serviço",
    "error": "Conflict",
}
INSTANCE_INACTIVE = {"statusCode": 400, "message": "Instância de serviço inativa", "error": "Bad Request"}
NOT_ASSIGNABLE = {"statusCode": 400, "message": "Conversa já está atribuída ou fechada", "error": "Bad Request"}
ALREADY_CLOSED = {"statusCode": 400, "message": "Conversa já está fechada", "error": "Bad Request"}
NOT_TAKEN = {"statusCode": 403, "message": "Assuma esta conversa da fila antes de fechá-la", "error": "Forbidden"}


def _detail(conversation_id) -> str:
    return f"{CONVERSATIONS}/{conversation_id}"


def _assign(conversation_id) -> str:
    return f"{CONVERSATIONS}/{conversation_id}/assign"


def _close(conversation_id) -> str:
    return f"{CONVERSATIONS}/{conversation_id}/close"


def _validation_fields(response) -> set[str]:
    assert response.status_code == 422, response.content
    body = response.json()
    assert (body["statusCode"], body["error"]) == (422, "Unprocessable Entity")
    assert isinstance(body["message"], list) and body["message"]
    return {sentence.split(":", 1)[0] for sentence in body["message"]}


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()]


def _fresh(conversation) -> Conversation:
    return Conversation.objects.select_related("contact", "service_instance", "operator").get(pk=conversation.pk)


def _groups(conversation, *extra) -> set[str]:
    return {"supervisors", f"conversation.{conversation.pk}", *extra}


# ------------------------------------------------------------------------------
# POST /api/conversations
# ------------------------------------------------------------------------------


def test_create_conversation_operator_becomes_its_operator(operator_client, operator_user):
    contact = ContactFactory(name="Maria Santos", phone="+5514999999999")
    instance = ServiceInstanceFactory(name="WhatsApp Vendas")
    before = timezone.now()

    response = operator_client.post(
        CONVERSATIONS, {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert CONTRACT_KEYS <= set(body)
    conversation = _fresh(Conversation.objects.get(pk=body["id"]))
    assert body == conversation_payload(conversation)
    assert body == {
        "id": str(conversation.pk),
        "contactId": str(contact.pk),
        "contactName": "Maria Santos",
        "contactPhone": "+5514999999999",
        "serviceInstanceId": str(instance.pk),
        "serviceInstanceName": "WhatsApp Vendas",
        "operatorId": str(operator_user.pk),
        "operatorName": operator_user.name,
        "status": "OPEN",
        "startTime": body["startTime"],
        "endTime": None,
        "tabulationId": None,
        "messageCount": 0,
        "lastMessageAt": None,
    }
    assert before <= conversation.start_time <= timezone.now()
    assert conversation.assigned_at == conversation.start_time
    operator_user.refresh_from_db()
    assert operator_user.last_conversation_assigned_at == conversation.start_time


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_create_conversation_supervisor_opens_it_in_the_queue(request, client_name):
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    response = request.getfixturevalue(client_name).post(
        CONVERSATIONS, {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["operatorId"], body["operatorName"], body["status"]) == (None, None, "OPEN")
    assert Conversation.objects.get(pk=body["id"]).assigned_at is None


def test_create_conversation_supervisor_may_name_an_operator(supervisor_client, make_user):
    operator = make_user(Role.OPERATOR, name="João Silva")
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    response = supervisor_client.post(
        CONVERSATIONS,
        {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk), "operatorId": str(operator.pk)},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert (response.json()["operatorId"], response.json()["operatorName"]) == (str(operator.pk), "João Silva")
    operator.refresh_from_db()
    assert operator.last_conversation_assigned_at is not None


def test_create_conversation_operator_naming_someone_else_is_403(operator_client, make_user):
    other = make_user(Role.OPERATOR)
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    response = operator_client.post(
        CONVERSATIONS,
        {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk), "operatorId": str(other.pk)},
        format="json",
    )

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert not Conversation.objects.exists()


def test_create_conversation_operator_naming_themself_is_allowed(operator_client, operator_user):
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    response = operator_client.post(
        CONVERSATIONS,
        {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk), "operatorId": str(operator_user.pk)},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["operatorId"] == str(operator_user.pk)


@pytest.mark.parametrize("missing", ["contact", "instance", "deleted-instance", "operator", "inactive-operator"])
def test_create_conversation_unknown_reference_is_404(supervisor_client, make_user, missing):
    contact, instance = ContactFactory(), ServiceInstanceFactory()
    payload = {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}
    if missing == "contact":
        payload["contactId"] = str(uuid.uuid4())
    elif missing == "instance":
        payload["serviceInstanceId"] = str(uuid.uuid4())
    elif missing == "deleted-instance":
        instance.deleted_at = timezone.now()
        instance.save()
    elif missing == "operator":
        payload["operatorId"] = str(uuid.uuid4())
    else:
        payload["operatorId"] = str(make_user(Role.OPERATOR, is_active=False).pk)

    response = supervisor_client.post(CONVERSATIONS, payload, format="json")

    assert response.status_code == 404, response.content
    assert response.json() == NOT_FOUND
    assert not Conversation.objects.exists()


def test_create_conversation_on_an_inactive_instance_is_400(operator_client):
    contact, instance = ContactFactory(), ServiceInstanceFactory(is_active=False)

    response = operator_client.post(
        CONVERSATIONS, {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == INSTANCE_INACTIVE
    assert not Conversation.objects.exists()


def test_create_conversation_when_one_is_open_is_409(operator_client):
    existing = ConversationFactory()
    payload = {"contactId": str(existing.contact_id), "serviceInstanceId": str(existing.service_instance_id)}

    response = operator_client.post(CONVERSATIONS, payload, format="json")

    assert response.status_code == 409
    assert response.json() == ALREADY_OPEN
    assert Conversation.objects.count() == 1


def test_create_conversation_after_the_open_one_closed_is_allowed(operator_client):
    closed = ConversationFactory(status=ChatStatus.CLOSED, end_time=timezone.now())
    other_instance = ConversationFactory(contact=closed.contact)
    payload = {"contactId": str(closed.contact_id), "serviceInstanceId": str(closed.service_instance_id)}

    response = operator_client.post(CONVERSATIONS, payload, format="json")

    assert response.status_code == 201, response.content
    assert Conversation.objects.filter(contact=closed.contact, status=ChatStatus.OPEN).count() == 2
    assert response.json()["id"] not in {str(closed.pk), str(other_instance.pk)}


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"contactId", "serviceInstanceId"}),
        ({"contactId": "not-a-uuid", "serviceInstanceId": str(uuid.uuid4())}, {"contactId"}),
        ({"contactId": str(uuid.uuid4()), "serviceInstanceId": None}, {"serviceInstanceId"}),
        ({"contactId": str(uuid.uuid4()), "serviceInstanceId": str(uuid.uuid4()), "operatorId": "x"}, {"operatorId"}),
    ],
    ids=["empty", "bad-contact", "null-instance", "bad-operator"],
)
def test_create_conversation_invalid_body_is_422(operator_client, payload, fields):
    assert _validation_fields(operator_client.post(CONVERSATIONS, payload, format="json")) == fields


def test_create_conversation_refuses_anonymous(api_client):
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    response = api_client.post(
        CONVERSATIONS, {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}, format="json"
    )

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.django_db(transaction=True)
def test_create_conversation_concurrent_creates_open_one(client_for, make_user):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    contact, instance = ContactFactory(), ServiceInstanceFactory()
    payload = {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}
    statuses = send_at_once(
        [(client_for(make_user(Role.SUPERVISOR)), "post", CONVERSATIONS, payload) for _ in range(2)]
    )

    assert statuses == [201, 409]
    assert Conversation.objects.filter(contact=contact, service_instance=instance).count() == 1


def test_create_conversation_publishes_conversation_updated_to_the_queue(
    supervisor_client, captured_events, django_capture_on_commit_callbacks
):
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    with django_capture_on_commit_callbacks(execute=True):
        response = supervisor_client.post(
            CONVERSATIONS, {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}, format="json"
        )

    conversation = _fresh(Conversation.objects.get(pk=response.json()["id"]))
    ((event, data, groups),) = captured_events
    assert event == "conversation:updated"
    assert data == conversation_payload(conversation) == response.json()
    assert set(groups) == _groups(conversation, f"queue.{instance.pk}")


def test_create_conversation_by_operator_publishes_to_them(
    operator_client, operator_user, captured_events, django_capture_on_commit_callbacks
):
    contact, instance = ContactFactory(), ServiceInstanceFactory()

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            CONVERSATIONS, {"contactId": str(contact.pk), "serviceInstanceId": str(instance.pk)}, format="json"
        )

    ((event, data, groups),) = captured_events
    conversation = Conversation.objects.get(pk=response.json()["id"])
    assert (event, data["operatorId"]) == ("conversation:updated", str(operator_user.pk))
    # It never was in the queue, but queue listeners dropping an id they never had is harmless.
    assert set(groups) == _groups(conversation, f"user.{operator_user.pk}", f"queue.{instance.pk}")


def test_create_conversation_refused_publishes_nothing(
    operator_client, captured_events, django_capture_on_commit_callbacks
):
    existing = ConversationFactory()
    payload = {"contactId": str(existing.contact_id), "serviceInstanceId": str(existing.service_instance_id)}

    with django_capture_on_commit_callbacks(execute=True):
        assert operator_client.post(CONVERSATIONS, payload, format="json").status_code == 409

    assert captured_events == []


# ------------------------------------------------------------------------------
# GET /api/conversations
# ------------------------------------------------------------------------------


@pytest.fixture
def mixed(operator_user, make_user):
    """Conversations of the signed-in operator, of another operator, in the queue, and closed ones."""
    other = make_user(Role.OPERATOR)
    now = timezone.now()
    return {
        "mine": ConversationFactory(operator=operator_user, last_message_at=now - timedelta(minutes=1)),
        "mine_closed": ConversationFactory(
            operator=operator_user, status=ChatStatus.CLOSED, last_message_at=now - timedelta(minutes=5)
        ),
        "other": ConversationFactory(operator=other, last_message_at=now - timedelta(minutes=2)),
        "other_closed": ConversationFactory(
            operator=other, status=ChatStatus.CLOSED, last_message_at=now - timedelta(minutes=3)
        ),
        "queued": ConversationFactory(last_message_at=now - timedelta(minutes=4)),
    }


def test_list_conversations_operator_sees_only_their_own(operator_client, mixed):
    response = operator_client.get(CONVERSATIONS)

    assert _ids(response) == [str(mixed["mine"].pk), str(mixed["mine_closed"].pk)]
    assert response["X-Total-Count"] == "2"


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_list_conversations_supervisor_sees_all_most_recent_first(request, client_name, mixed):
    response = request.getfixturevalue(client_name).get(CONVERSATIONS)

    order = ["mine", "other", "other_closed", "queued", "mine_closed"]
    assert _ids(response) == [str(mixed[name].pk) for name in order]
    assert response["X-Total-Count"] == "5"


def test_list_conversations_items_are_the_contract_body(supervisor_client, mixed):
    items = supervisor_client.get(CONVERSATIONS).json()

    for item in items:
        assert item == conversation_payload(_fresh(Conversation.objects.get(pk=item["id"])))
        assert CONTRACT_KEYS <= set(item)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "OPEN"}, ["mine", "other", "queued"]),
        ({"status": "CLOSED"}, ["other_closed", "mine_closed"]),
        ({"operatorId": "other"}, ["other", "other_closed"]),
        ({"operatorId": "other", "status": "CLOSED"}, ["other_closed"]),
        ({"serviceInstanceId": "queued"}, ["queued"]),
    ],
)
def test_list_conversations_filters(supervisor_client, mixed, query, expected):
    params = dict(query)
    if "operatorId" in params:
        params["operatorId"] = str(mixed[params["operatorId"]].operator_id)
    if "serviceInstanceId" in params:
        params["serviceInstanceId"] = str(mixed[params["serviceInstanceId"]].service_instance_id)

    response = supervisor_client.get(CONVERSATIONS, params)

    assert _ids(response) == [str(mixed[name].pk) for name in expected]
    assert response["X-Total-Count"] == str(len(expected))


def test_list_conversations_operator_filter_by_another_operator_finds_nothing(operator_client, mixed):
    response = operator_client.get(CONVERSATIONS, {"operatorId": str(mixed["other"].operator_id)})

    assert _ids(response) == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("João", {"joao"}),
        ("joao", {"joao"}),
        ("CONCEIÇÃO", {"maria"}),
        ("conceicao", {"maria"}),
        ("99999-9999", {"joao"}),
        ("+55 11", {"maria"}),
        ("5514", {"joao", "ana"}),
        ("ninguém", set()),
        ("", {"joao", "maria", "ana"}),
    ],
)
def test_list_conversations_search_by_contact_name_or_phone(supervisor_client, search, expected):
    people = {
        "joao": ContactFactory(name="João Silva", phone="+5514999999999"),
        "maria": ContactFactory(name="MARIA Conceição", phone="+5511988887777"),
        "ana": ContactFactory(name="Ana Paula", phone="+551433334444"),
    }
    conversations = {key: ConversationFactory(contact=contact) for key, contact in people.items()}

    response = supervisor_client.get(CONVERSATIONS, {"search": search})

    assert set(_ids(response)) == {str(conversations[key].pk) for key in expected}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "PENDING"}, "status"),
        ({"status": "open"}, "status"),
        ({"operatorId": "joao"}, "operatorId"),
        ({"serviceInstanceId": "123"}, "serviceInstanceId"),
        ({"search": "x" * 101}, "search"),
    ],
)
def test_list_conversations_invalid_filter_is_422(supervisor_client, query, field):
    assert _validation_fields(supervisor_client.get(CONVERSATIONS, query)) == {field}


def test_list_conversations_is_paginated_with_headers(supervisor_client, mixed):
    response = supervisor_client.get(CONVERSATIONS, {"page": 2, "limit": 2})

    assert _ids(response) == [str(mixed["other_closed"].pk), str(mixed["queued"].pk)]
    assert response["X-Total-Count"] == "5"
    assert 'rel="next"' in response["Link"]
    assert 'rel="prev"' in response["Link"]


@pytest.mark.parametrize("count", [3, 30])
@pytest.mark.parametrize("client_name", ["operator_client", "supervisor_client"])
def test_list_conversations_query_count_does_not_grow(
    request, operator_user, django_assert_num_queries, client_name, count
):
    instance = ServiceInstanceFactory()
    for _ in range(count):
        ConversationFactory(operator=operator_user, service_instance=instance)
    client = request.getfixturevalue(client_name)

    # The access token's user, the COUNT and the page (contact, number and operator joined in).
    with django_assert_num_queries(3):
        response = client.get(CONVERSATIONS, {"limit": 100, "search": "a", "status": "OPEN"})
    assert response.status_code == 200
    with django_assert_num_queries(3):
        response = client.get(CONVERSATIONS, {"limit": 100})

    assert len(response.json()) == count


# ------------------------------------------------------------------------------
# GET /api/conversations/queue
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client", "operator_client"])
def test_queue_lists_open_unassigned_conversations_oldest_first(request, client_name, operator_user):
    now = timezone.now()
    newest = ConversationFactory(start_time=now - timedelta(minutes=1))
    oldest = ConversationFactory(start_time=now - timedelta(minutes=30))
    middle = ConversationFactory(start_time=now - timedelta(minutes=10))
    ConversationFactory(operator=operator_user, start_time=now - timedelta(hours=1))
    ConversationFactory(status=ChatStatus.CLOSED, start_time=now - timedelta(hours=1))
    ConversationFactory(service_instance=ServiceInstanceFactory(is_active=False), start_time=now - timedelta(hours=1))

    response = request.getfixturevalue(client_name).get(QUEUE)

    assert _ids(response) == [str(oldest.pk), str(middle.pk), str(newest.pk)]
    assert response["X-Total-Count"] == "3"
    item = response.json()[0]
    assert (item["operatorId"], item["operatorName"], item["status"]) == (None, None, "OPEN")
    assert item == conversation_payload(_fresh(oldest))


@pytest.mark.parametrize("count", [3, 30])
def test_queue_query_count_does_not_grow(operator_client, django_assert_num_queries, count):
    ConversationFactory.create_batch(count)

    with django_assert_num_queries(3):
        response = operator_client.get(QUEUE, {"limit": 100})

    assert len(response.json()) == count


# ------------------------------------------------------------------------------
# GET /api/conversations/:id
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mine", "mine_closed", "queued"])
def test_get_conversation_operator_reads_their_own_and_the_queue(operator_client, mixed, name):
    response = operator_client.get(_detail(mixed[name].pk))

    assert response.status_code == 200
    assert response.json() == conversation_payload(_fresh(mixed[name]))


@pytest.mark.parametrize("name", ["other", "other_closed"])
def test_get_conversation_operator_foreign_id_is_404(operator_client, mixed, name):
    response = operator_client.get(_detail(mixed[name].pk))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_get_conversation_supervisor_reads_any(request, client_name, mixed):
    client = request.getfixturevalue(client_name)

    for conversation in mixed.values():
        response = client.get(_detail(conversation.pk))
        assert response.status_code == 200
        assert response.json()["id"] == str(conversation.pk)


def test_get_conversation_unknown_id_is_404(supervisor_client):
    response = supervisor_client.get(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_get_conversation_query_count(operator_client, operator_user, django_assert_num_queries):
    conversation = ConversationFactory(operator=operator_user)
    MessageFactory.create_batch(5, conversation=conversation)

    with django_assert_num_queries(2):
        assert operator_client.get(_detail(conversation.pk)).status_code == 200


# ------------------------------------------------------------------------------
# PATCH /api/conversations/:id/assign
# ------------------------------------------------------------------------------


def test_assign_conversation_operator_takes_a_queued_one(operator_client, operator_user):
    conversation = ConversationFactory()
    before = timezone.now()

    response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(operator_user.pk)}, format="json")

    assert response.status_code == 200, response.content
    conversation = _fresh(conversation)
    assert response.json() == conversation_payload(conversation)
    assert (response.json()["operatorId"], response.json()["operatorName"]) == (
        str(operator_user.pk),
        operator_user.name,
    )
    assert before <= conversation.assigned_at <= timezone.now()
    operator_user.refresh_from_db()
    assert operator_user.last_conversation_assigned_at == conversation.assigned_at


def test_assign_conversation_operator_for_someone_else_is_403(operator_client, make_user):
    conversation = ConversationFactory()
    other = make_user(Role.OPERATOR)

    response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(other.pk)}, format="json")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert Conversation.objects.get(pk=conversation.pk).operator_id is None


@pytest.mark.parametrize("state", ["own", "own-closed"])
def test_assign_conversation_operator_already_assigned_or_closed_is_400(operator_client, operator_user, state):
    status = ChatStatus.CLOSED if state == "own-closed" else ChatStatus.OPEN
    conversation = ConversationFactory(operator=operator_user, status=status)

    response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(operator_user.pk)}, format="json")

    assert response.status_code == 400
    assert response.json() == NOT_ASSIGNABLE


def test_assign_conversation_operator_one_someone_else_took_is_400(operator_client, operator_user, make_user):
    # Whoever reached the database first, the loser of a race for a queued conversation hears the same.
    conversation = ConversationFactory(operator=make_user(Role.OPERATOR))

    response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(operator_user.pk)}, format="json")

    assert response.status_code == 400
    assert response.json() == NOT_ASSIGNABLE


def test_assign_conversation_operator_foreign_closed_conversation_is_404(operator_client, operator_user, make_user):
    conversation = ConversationFactory(operator=make_user(Role.OPERATOR), status=ChatStatus.CLOSED)

    response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(operator_user.pk)}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_assign_conversation_supervisor_gives_a_queued_one_to_an_operator(request, client_name, make_user):
    conversation = ConversationFactory()
    operator = make_user(Role.OPERATOR)

    response = request.getfixturevalue(client_name).patch(
        _assign(conversation.pk), {"operatorId": str(operator.pk)}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["operatorId"] == str(operator.pk)


def test_assign_conversation_supervisor_reassigns_an_assigned_one(supervisor_client, make_user):
    first, second = make_user(Role.OPERATOR), make_user(Role.OPERATOR)
    conversation = ConversationFactory(operator=first, assigned_at=timezone.now() - timedelta(hours=1))

    response = supervisor_client.patch(_assign(conversation.pk), {"operatorId": str(second.pk)}, format="json")

    assert response.status_code == 200
    assert response.json()["operatorId"] == str(second.pk)
    conversation.refresh_from_db()
    assert conversation.operator_id == second.pk
    assert conversation.assigned_at > timezone.now() - timedelta(minutes=1)


def test_assign_conversation_supervisor_closed_one_is_400(supervisor_client, make_user):
    conversation = ConversationFactory(status=ChatStatus.CLOSED, end_time=timezone.now())

    response = supervisor_client.patch(
        _assign(conversation.pk), {"operatorId": str(make_user(Role.OPERATOR).pk)}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == NOT_ASSIGNABLE


@pytest.mark.parametrize("target", ["unknown", "inactive", "deleted"])
def test_assign_conversation_operator_must_exist_and_be_active(supervisor_client, make_user, target):
    conversation = ConversationFactory()
    if target == "unknown":
        operator_id = uuid.uuid4()
    elif target == "inactive":
        operator_id = make_user(Role.OPERATOR, is_active=False).pk
    else:
        operator_id = make_user(Role.OPERATOR, deleted_at=timezone.now()).pk

    response = supervisor_client.patch(_assign(conversation.pk), {"operatorId": str(operator_id)}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Conversation.objects.get(pk=conversation.pk).operator_id is None


def test_assign_conversation_unknown_conversation_is_404(supervisor_client, operator_user):
    response = supervisor_client.patch(_assign(uuid.uuid4()), {"operatorId": str(operator_user.pk)}, format="json")

    assert response.status_code == 404


@pytest.mark.parametrize("payload", [{}, {"operatorId": None}, {"operatorId": "someone"}])
def test_assign_conversation_invalid_body_is_422(supervisor_client, payload):
    conversation = ConversationFactory()

    assert _validation_fields(supervisor_client.patch(_assign(conversation.pk), payload, format="json")) == {
        "operatorId"
    }


@pytest.mark.django_db(transaction=True)
def test_assign_conversation_two_operators_taking_at_once_one_wins(client_for, make_user):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises the whole database")
    conversation = ConversationFactory()
    operators = [make_user(Role.OPERATOR) for _ in range(2)]
    requests = [
        (client_for(operator), "patch", _assign(conversation.pk), {"operatorId": str(operator.pk)})
        for operator in operators
    ]

    assert send_at_once(requests) == [200, 400]

    conversation.refresh_from_db()
    assert conversation.operator_id in {operator.pk for operator in operators}
    stamped = User.objects.filter(pk__in=[o.pk for o in operators], last_conversation_assigned_at__isnull=False)
    assert list(stamped.values_list("pk", flat=True)) == [conversation.operator_id]


def test_assign_conversation_from_the_queue_publishes_conversation_updated(
    operator_client, operator_user, captured_events, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory()

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(operator_user.pk)}, format="json")

    ((event, data, groups),) = captured_events
    assert event == "conversation:updated"
    assert data == response.json() == conversation_payload(_fresh(conversation))
    # The queue hears it so that every other operator drops it from their list.
    assert set(groups) == _groups(conversation, f"user.{operator_user.pk}", f"queue.{conversation.service_instance_id}")


def test_assign_conversation_reassignment_tells_the_previous_operator(
    supervisor_client, make_user, captured_events, django_capture_on_commit_callbacks
):
    first, second = make_user(Role.OPERATOR), make_user(Role.OPERATOR)
    conversation = ConversationFactory(operator=first)

    with django_capture_on_commit_callbacks(execute=True):
        supervisor_client.patch(_assign(conversation.pk), {"operatorId": str(second.pk)}, format="json")

    ((event, data, groups),) = captured_events
    assert (event, data["operatorId"]) == ("conversation:updated", str(second.pk))
    assert set(groups) == _groups(
        conversation, f"user.{first.pk}", f"user.{second.pk}", f"queue.{conversation.service_instance_id}"
    )


def test_assign_conversation_to_its_current_operator_changes_nothing(
    supervisor_client, make_user, captured_events, django_capture_on_commit_callbacks
):
    operator = make_user(Role.OPERATOR)
    assigned_at = timezone.now() - timedelta(hours=1)
    conversation = ConversationFactory(operator=operator, assigned_at=assigned_at)

    with django_capture_on_commit_callbacks(execute=True):
        response = supervisor_client.patch(_assign(conversation.pk), {"operatorId": str(operator.pk)}, format="json")

    assert response.status_code == 200
    assert response.json()["operatorId"] == str(operator.pk)
    conversation.refresh_from_db()
    assert conversation.assigned_at == assigned_at
    assert captured_events == []


def test_assign_conversation_refused_publishes_nothing(
    operator_client, operator_user, captured_events, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(operator=operator_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.patch(_assign(conversation.pk), {"operatorId": str(operator_user.pk)}, format="json")

    assert response.status_code == 400
    assert captured_events == []


# ------------------------------------------------------------------------------
# POST /api/conversations/:id/close
# ------------------------------------------------------------------------------

T0 = datetime(2030, 1, 15, 10, 0, 0, tzinfo=UTC)


def _message(conversation, direction: str, seconds: int, **kwargs):
    outbound = direction == Direction.OUTBOUND
    return MessageFactory(
        conversation=conversation,
        direction=direction,
        via=kwargs.pop("via", Via.CHAT_MANUAL if outbound else Via.INBOUND),
        status=MessageStatus.SENT if outbound else MessageStatus.RECEIVED,
        sender=conversation.operator if outbound else None,
        timestamp=T0 + timedelta(seconds=seconds),
        **kwargs,
    )


def _close_at(client, conversation, tabulation, seconds: int):
    with time_machine.travel(T0 + timedelta(seconds=seconds), tick=False):
        return client.post(_close(conversation.pk), {"tabulationId": str(tabulation.pk)}, format="json")


@pytest.fixture
def future_operator(client_for, make_user):
    """An operator whose token is valid at ``T0`` (issued just before it)."""
    with time_machine.travel(T0 - timedelta(minutes=1), tick=False):
        operator = make_user(Role.OPERATOR, name="João Silva")
        return operator, client_for(operator)


def test_close_conversation_stores_the_closure_metrics(future_operator):
    operator, client = future_operator
    conversation = ConversationFactory(operator=operator, start_time=T0)
    tabulation = TabulationFactory(name="Venda Realizada")
    # Created out of order on purpose: the metrics follow the messages' own timestamps.
    _message(conversation, Direction.INBOUND, 160)  # customer run 3 starts
    _message(conversation, Direction.INBOUND, 10)  # customer run 1 starts: first inbound
    _message(conversation, Direction.INBOUND, 20)
    _message(conversation, Direction.OUTBOUND, 40)  # answers run 1 after 30 s: first response
    _message(conversation, Direction.OUTBOUND, 50)
    _message(conversation, Direction.INBOUND, 100)  # the customer answered run 2 (from 40) after 60 s
    _message(conversation, Direction.OUTBOUND, 120)  # answers run 2 after 20 s
    # run 3 at 160 answers the operator (from 120) after 40 s; nobody answered it before closing.

    response = _close_at(client, conversation, tabulation, 300)

    assert response.status_code == 204, response.content
    assert response.content == b""
    conversation.refresh_from_db()
    assert (conversation.status, conversation.end_time) == (ChatStatus.CLOSED, T0 + timedelta(seconds=300))
    assert conversation.tabulation_id == tabulation.pk
    closure = ConversationClosure.objects.get(conversation=conversation)
    assert closure.operator_id == operator.pk
    assert closure.closed_by_id == operator.pk
    assert closure.tabulation_id == tabulation.pk
    assert closure.service_instance_id == conversation.service_instance_id
    assert (closure.started_at, closure.ended_at) == (T0, T0 + timedelta(seconds=300))
    assert closure.duration_seconds == 300
    assert closure.first_response_seconds == 30
    assert closure.avg_operator_response_seconds == 25.0  # (30 + 20) / 2
    assert closure.avg_customer_response_seconds == 50.0  # (60 + 40) / 2
    assert (closure.inbound_count, closure.outbound_count) == (4, 3)


def test_close_conversation_started_by_a_campaign_measures_from_the_first_inbound(future_operator):
    operator, client = future_operator
    conversation = ConversationFactory(operator=operator, start_time=T0)
    _message(conversation, Direction.OUTBOUND, 0, via=Via.CAMPAIGN)
    _message(conversation, Direction.INBOUND, 90)  # the customer answered the campaign after 90 s
    _message(conversation, Direction.OUTBOUND, 135)  # first response: 45 s

    assert _close_at(client, conversation, TabulationFactory(), 600).status_code == 204

    closure = ConversationClosure.objects.get(conversation=conversation)
    assert closure.duration_seconds == 600
    assert closure.first_response_seconds == 45
    assert closure.avg_operator_response_seconds == 45.0
    assert closure.avg_customer_response_seconds == 90.0
    assert (closure.inbound_count, closure.outbound_count) == (1, 2)


@pytest.mark.parametrize(
    ("directions", "first", "operator_avg", "customer_avg", "counts"),
    [
        ([], None, None, None, (0, 0)),
        ([Direction.INBOUND, Direction.INBOUND], None, None, None, (2, 0)),
        ([Direction.OUTBOUND], None, None, None, (0, 1)),
    ],
    ids=["no-messages", "never-answered", "never-replied"],
)
def test_close_conversation_without_answers_leaves_response_times_empty(
    future_operator, directions, first, operator_avg, customer_avg, counts
):
    operator, client = future_operator
    conversation = ConversationFactory(operator=operator, start_time=T0)
    for index, direction in enumerate(directions):
        _message(conversation, direction, 10 * (index + 1))

    assert _close_at(client, conversation, TabulationFactory(), 61).status_code == 204

    closure = ConversationClosure.objects.get(conversation=conversation)
    assert closure.duration_seconds == 61
    assert closure.first_response_seconds == first
    assert closure.avg_operator_response_seconds == operator_avg
    assert closure.avg_customer_response_seconds == customer_avg
    assert (closure.inbound_count, closure.outbound_count) == counts


def test_compute_closure_metrics_keeps_fractions_in_the_averages():
    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    metrics = compute_closure_metrics(
        started_at=T0,
        ended_at=at(100.4),
        messages=[
            (Direction.INBOUND, at(0)),
            (Direction.OUTBOUND, at(1.5)),
            (Direction.INBOUND, at(2)),
            (Direction.OUTBOUND, at(4)),
        ],
    )

    assert metrics.duration_seconds == 100
    assert metrics.first_response_seconds == 2  # 1.5 s, stored in whole seconds
    assert metrics.avg_operator_response_seconds == 1.75
    assert metrics.avg_customer_response_seconds == 0.5


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_close_conversation_supervisor_closes_a_queued_one(request, client_name, supervisor_user, admin_user):
    conversation = ConversationFactory()
    client = request.getfixturevalue(client_name)

    response = client.post(_close(conversation.pk), {"tabulationId": str(TabulationFactory().pk)}, format="json")

    assert response.status_code == 204
    closure = ConversationClosure.objects.get(conversation=conversation)
    assert closure.operator_id is None
    assert closure.closed_by_id == client.user.pk


def test_close_conversation_supervisor_closes_someone_elses(supervisor_client, supervisor_user, operator_user):
    conversation = ConversationFactory(operator=operator_user)

    response = supervisor_client.post(
        _close(conversation.pk), {"tabulationId": str(TabulationFactory().pk)}, format="json"
    )

    assert response.status_code == 204
    closure = ConversationClosure.objects.get(conversation=conversation)
    assert (closure.operator_id, closure.closed_by_id) == (operator_user.pk, supervisor_user.pk)


def test_close_conversation_operator_queued_one_is_403(operator_client):
    conversation = ConversationFactory()

    response = operator_client.post(
        _close(conversation.pk), {"tabulationId": str(TabulationFactory().pk)}, format="json"
    )

    assert response.status_code == 403
    assert response.json() == NOT_TAKEN
    assert Conversation.objects.get(pk=conversation.pk).status == ChatStatus.OPEN
    assert not ConversationClosure.objects.exists()


def test_close_conversation_operator_foreign_one_is_404(operator_client, make_user):
    conversation = ConversationFactory(operator=make_user(Role.OPERATOR))

    response = operator_client.post(
        _close(conversation.pk), {"tabulationId": str(TabulationFactory().pk)}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Conversation.objects.get(pk=conversation.pk).status == ChatStatus.OPEN


def test_close_conversation_already_closed_is_400(operator_client, operator_user):
    conversation = ConversationFactory(operator=operator_user)
    tabulation = TabulationFactory()
    assert (
        operator_client.post(_close(conversation.pk), {"tabulationId": str(tabulation.pk)}, format="json").status_code
        == 204
    )

    response = operator_client.post(_close(conversation.pk), {"tabulationId": str(tabulation.pk)}, format="json")

    assert response.status_code == 400
    assert response.json() == ALREADY_CLOSED
    assert ConversationClosure.objects.filter(conversation=conversation).count() == 1


@pytest.mark.parametrize("payload", [{}, {"tabulationId": None}, {"tabulationId": "Venda"}])
def test_close_conversation_without_a_valid_tabulation_id_is_422(operator_client, operator_user, payload):
    conversation = ConversationFactory(operator=operator_user)

    assert _validation_fields(operator_client.post(_close(conversation.pk), payload, format="json")) == {"tabulationId"}
    assert Conversation.objects.get(pk=conversation.pk).status == ChatStatus.OPEN


@pytest.mark.parametrize("which", ["unknown", "deleted"])
def test_close_conversation_unknown_or_deleted_tabulation_is_404(operator_client, operator_user, which):
    conversation = ConversationFactory(operator=operator_user)
    if which == "unknown":
        tabulation_id = uuid.uuid4()
    else:
        tabulation_id = TabulationFactory(deleted_at=timezone.now()).pk

    response = operator_client.post(_close(conversation.pk), {"tabulationId": str(tabulation_id)}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Conversation.objects.get(pk=conversation.pk).status == ChatStatus.OPEN


def test_close_conversation_unknown_conversation_is_404(supervisor_client):
    response = supervisor_client.post(
        _close(uuid.uuid4()), {"tabulationId": str(TabulationFactory().pk)}, format="json"
    )

    assert response.status_code == 404


def test_close_conversation_publishes_conversation_closed(
    operator_client, operator_user, captured_events, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(operator=operator_user)
    tabulation = TabulationFactory()

    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(_close(conversation.pk), {"tabulationId": str(tabulation.pk)}, format="json")

    ((event, data, groups),) = captured_events
    assert event == "conversation:closed"
    conversation = _fresh(conversation)
    assert data == {"conversationId": str(conversation.pk), **conversation_payload(conversation)}
    assert (data["status"], data["tabulationId"]) == ("CLOSED", str(tabulation.pk))
    assert data["endTime"] is not None
    assert set(groups) == _groups(conversation, f"user.{operator_user.pk}")


def test_close_conversation_then_a_new_one_may_open_for_the_same_contact(operator_client, operator_user):
    conversation = ConversationFactory(operator=operator_user)
    operator_client.post(_close(conversation.pk), {"tabulationId": str(TabulationFactory().pk)}, format="json")

    response = operator_client.post(
        CONVERSATIONS,
        {"contactId": str(conversation.contact_id), "serviceInstanceId": str(conversation.service_instance_id)},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["id"] != str(conversation.pk)
