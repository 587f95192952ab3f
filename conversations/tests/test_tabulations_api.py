"""The tabulations endpoints (contract section 13) as a client calls them, errors in the section 16 format."""

import uuid

import pytest
from django.db import connection

from conversations.models import ChatStatus, ConversationClosure, Tabulation
from conversations.tests.factories import ConversationFactory, TabulationFactory
from elsehub.tests.concurrency import send_at_once

pytestmark = pytest.mark.django_db

TABULATIONS = "/api/tabulations"
NAME_TAKEN = {"statusCode": 409, "message": "Tabulação já existe", "error": "Conflict"}
FORBIDDEN = {"statusCode": 403, "message": "Usuário não autorizado para executar esta ação", "error": "Forbidden"}
NOT_FOUND = {"statusCode": 404, "message": "Recurso não encontrado", "error": "Not Found"}


def _detail(tabulation_id) -> str:
    return f"{TABULATIONS}/{tabulation_id}"


def _validation_fields(response) -> set[str]:
    assert response.status_code == 422, response.content
    body = response.json()
    assert (body["statusCode"], body["error"]) == (422, "Unprocessable Entity")
    assert isinstance(body["message"], list) and body["message"]
    return {sentence.split(":", 1)[0] for sentence in body["message"]}


# ------------------------------------------------------------------------------
# POST /api/tabulations
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_create_tabulation_returns_201_with_the_contract_body(request, client_name):
    response = request.getfixturevalue(client_name).post(TABULATIONS, {"name": "Venda Realizada"}, format="json")

    assert response.status_code == 201, response.content
    tabulation = Tabulation.objects.get()
    assert response.json() == {"id": str(tabulation.pk), "name": "Venda Realizada"}


def test_create_tabulation_refuses_operator(operator_client):
    response = operator_client.post(TABULATIONS, {"name": "Venda Realizada"}, format="json")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert not Tabulation.objects.exists()


def test_create_tabulation_trims_the_name(supervisor_client):
    response = supervisor_client.post(TABULATIONS, {"name": "  Cliente Desistiu  "}, format="json")

    assert response.status_code == 201
    assert response.json()["name"] == "Cliente Desistiu"


@pytest.mark.parametrize("existing", ["Venda Realizada", "VENDA REALIZADA", "venda realizada"])
def test_create_tabulation_duplicate_name_any_case_is_409(supervisor_client, existing):
    TabulationFactory(name=existing)

    response = supervisor_client.post(TABULATIONS, {"name": " Venda realizada "}, format="json")

    assert response.status_code == 409
    assert response.json() == NAME_TAKEN
    assert Tabulation.objects.count() == 1


def test_create_tabulation_reuses_the_name_of_a_deleted_one(supervisor_client):
    deleted = TabulationFactory(name="Venda Realizada")
    assert supervisor_client.delete(_detail(deleted.pk)).status_code == 204

    response = supervisor_client.post(TABULATIONS, {"name": "Venda Realizada"}, format="json")

    assert response.status_code == 201
    assert response.json()["id"] != str(deleted.pk)


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "   "}, {"name": None}, {"name": "x" * 121}],
    ids=["missing", "empty", "blank", "null", "too-long"],
)
def test_create_tabulation_invalid_name_is_422(supervisor_client, payload):
    response = supervisor_client.post(TABULATIONS, payload, format="json")

    assert _validation_fields(response) == {"name"}
    assert not Tabulation.objects.exists()


def test_create_tabulation_name_of_120_characters_is_accepted(supervisor_client):
    response = supervisor_client.post(TABULATIONS, {"name": "x" * 120}, format="json")

    assert response.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_create_tabulation_concurrent_same_name_creates_one(client_for, make_user):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    clients = [client_for(make_user("SUPERVISOR")) for _ in range(2)]

    statuses = send_at_once([(client, "post", TABULATIONS, {"name": "Venda Realizada"}) for client in clients])

    assert statuses == [201, 409]
    assert Tabulation.objects.count() == 1


# ------------------------------------------------------------------------------
# GET /api/tabulations and /api/tabulations/:id
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client", "operator_client"])
def test_list_tabulations_by_name_as_a_bare_array(request, client_name):
    second = TabulationFactory(name="Venda Realizada")
    first = TabulationFactory(name="Cliente Desistiu")

    response = request.getfixturevalue(client_name).get(TABULATIONS)

    assert response.status_code == 200
    assert response.json() == [
        {"id": str(first.pk), "name": "Cliente Desistiu"},
        {"id": str(second.pk), "name": "Venda Realizada"},
    ]
    assert response["X-Total-Count"] == "2"


def test_list_tabulations_is_paginated(operator_client):
    for name in "ABCDE":
        TabulationFactory(name=name)

    response = operator_client.get(TABULATIONS, {"page": 2, "limit": 2})

    assert [item["name"] for item in response.json()] == ["C", "D"]
    assert response["X-Total-Count"] == "5"
    assert 'rel="next"' in response["Link"]


def test_list_tabulations_bad_limit_is_422(operator_client):
    assert _validation_fields(operator_client.get(TABULATIONS, {"limit": 101})) == {"limit deve estar entre 1 e 100"}


@pytest.mark.parametrize("count", [3, 30])
def test_list_tabulations_query_count_does_not_grow(operator_client, django_assert_num_queries, count):
    TabulationFactory.create_batch(count)

    # The access token's user, the COUNT and the page.
    with django_assert_num_queries(3):
        response = operator_client.get(TABULATIONS, {"limit": 100})

    assert len(response.json()) == count


def test_get_tabulation_returns_the_contract_body(operator_client):
    tabulation = TabulationFactory(name="Venda Realizada")

    response = operator_client.get(_detail(tabulation.pk))

    assert response.status_code == 200
    assert response.json() == {"id": str(tabulation.pk), "name": "Venda Realizada"}


def test_get_tabulation_unknown_id_is_404(operator_client):
    response = operator_client.get(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# ------------------------------------------------------------------------------
# PATCH /api/tabulations/:id
# ------------------------------------------------------------------------------


def test_update_tabulation_renames(supervisor_client):
    tabulation = TabulationFactory(name="Venda Realizada")

    response = supervisor_client.patch(_detail(tabulation.pk), {"name": "Venda Realizada - Atualizado"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"id": str(tabulation.pk), "name": "Venda Realizada - Atualizado"}
    tabulation.refresh_from_db()
    assert tabulation.name == "Venda Realizada - Atualizado"


def test_update_tabulation_may_change_only_the_case_of_its_own_name(admin_client):
    tabulation = TabulationFactory(name="venda realizada")

    response = admin_client.patch(_detail(tabulation.pk), {"name": "Venda Realizada"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Venda Realizada"


def test_update_tabulation_empty_body_changes_nothing(supervisor_client):
    tabulation = TabulationFactory(name="Venda Realizada")

    response = supervisor_client.patch(_detail(tabulation.pk), {}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Venda Realizada"


def test_update_tabulation_to_another_live_name_is_409(supervisor_client):
    TabulationFactory(name="Cliente Desistiu")
    tabulation = TabulationFactory(name="Venda Realizada")

    response = supervisor_client.patch(_detail(tabulation.pk), {"name": "CLIENTE DESISTIU"}, format="json")

    assert response.status_code == 409
    assert response.json() == NAME_TAKEN
    tabulation.refresh_from_db()
    assert tabulation.name == "Venda Realizada"


@pytest.mark.parametrize("payload", [{"name": ""}, {"name": "x" * 121}], ids=["empty", "too-long"])
def test_update_tabulation_invalid_name_is_422(supervisor_client, payload):
    tabulation = TabulationFactory()

    assert _validation_fields(supervisor_client.patch(_detail(tabulation.pk), payload, format="json")) == {"name"}


def test_update_tabulation_refuses_operator(operator_client):
    tabulation = TabulationFactory(name="Venda Realizada")

    response = operator_client.patch(_detail(tabulation.pk), {"name": "Outra"}, format="json")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN


def test_update_tabulation_deleted_is_404(supervisor_client):
    tabulation = TabulationFactory()
    supervisor_client.delete(_detail(tabulation.pk))

    response = supervisor_client.patch(_detail(tabulation.pk), {"name": "Outra"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# ------------------------------------------------------------------------------
# DELETE /api/tabulations/:id
# ------------------------------------------------------------------------------


def test_delete_tabulation_is_soft_and_hides_it(supervisor_client, operator_client):
    tabulation = TabulationFactory(name="Venda Realizada")

    response = supervisor_client.delete(_detail(tabulation.pk))

    assert response.status_code == 204
    assert response.content == b""
    tabulation.refresh_from_db()
    assert tabulation.deleted_at is not None
    assert operator_client.get(TABULATIONS).json() == []
    assert operator_client.get(_detail(tabulation.pk)).status_code == 404
    assert supervisor_client.delete(_detail(tabulation.pk)).status_code == 404


def test_delete_tabulation_keeps_the_history_of_closed_conversations(supervisor_client, supervisor_user):
    tabulation = TabulationFactory(name="Venda Realizada")
    conversation = ConversationFactory()
    closed = supervisor_client.post(
        f"/api/conversations/{conversation.pk}/close", {"tabulationId": str(tabulation.pk)}, format="json"
    )
    assert closed.status_code == 204

    assert supervisor_client.delete(_detail(tabulation.pk)).status_code == 204

    conversation.refresh_from_db()
    assert (conversation.status, conversation.tabulation_id) == (ChatStatus.CLOSED, tabulation.pk)
    closure = ConversationClosure.objects.get(conversation=conversation)
    assert closure.tabulation_id == tabulation.pk
    body = supervisor_client.get(f"/api/conversations/{conversation.pk}").json()
    assert body["tabulationId"] == str(tabulation.pk)


def test_delete_tabulation_then_closing_with_it_is_404(supervisor_client):
    tabulation = TabulationFactory()
    supervisor_client.delete(_detail(tabulation.pk))
    conversation = ConversationFactory()

    response = supervisor_client.post(
        f"/api/conversations/{conversation.pk}/close", {"tabulationId": str(tabulation.pk)}, format="json"
    )

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.status == ChatStatus.OPEN


def test_delete_tabulation_refuses_operator(operator_client):
    tabulation = TabulationFactory()

    response = operator_client.delete(_detail(tabulation.pk))

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    tabulation.refresh_from_db()
    assert tabulation.deleted_at is None


def test_delete_tabulation_unknown_id_is_404(admin_client):
    response = admin_client.delete(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
