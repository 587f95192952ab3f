"""The contacts endpoints (contract section 6) as a client calls them, errors in the section 16 format."""

import re
import uuid
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from contacts.models import Contact
from contacts.tests.factories import ContactFactory, valid_cpf

pytestmark = pytest.mark.django_db

CONTACTS = "/api/contacts"
CONTRACT_KEYS = {"id", "name", "phone", "cpf", "additional1", "additional2", "createdAt", "updatedAt"}
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

PHONE_TAKEN = {"statusCode": 409, "message": "Telefone já existe", "error": "Conflict"}
FORBIDDEN = {"statusCode": 403, "message": "Usuário não autorizado para executar esta ação", "error": "Forbidden"}
UNAUTHORIZED = {"statusCode": 401, "message": "Token inválido ou ausente", "error": "Unauthorized"}
NOT_FOUND = {"statusCode": 404, "message": "Recurso não encontrado", "error": "Not Found"}


def _detail(contact_id) -> str:
    return f"{CONTACTS}/{contact_id}"


def _parse_ts(value: str) -> datetime:
    assert ISO_MS_Z.fullmatch(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _ms(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def _validation_messages(response) -> list[str]:
    assert response.status_code == 422, response.content
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"}
    assert body["statusCode"] == 422
    assert body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list)
    assert body["message"], "a 422 must say what is wrong"
    return body["message"]


def _validation_fields(response) -> set[str]:
    """The field each 422 sentence names (``"phone: ..."`` -> ``"phone"``)."""
    return {sentence.split(":", 1)[0] for sentence in _validation_messages(response)}


def _payload(**overrides) -> dict:
    payload = {
        "name": "Maria Santos",
        "phone": "+5514999999999",
        "cpf": "12345678909",
        "additional1": "Informação adicional 1",
        "additional2": "Informação adicional 2",
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not ...}


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()]


# ------------------------------------------------------------------------------
# POST /api/contacts
# ------------------------------------------------------------------------------


def test_create_contact_returns_201_with_exactly_the_contract_body(admin_client):
    before = timezone.now()
    response = admin_client.post(CONTACTS, _payload(), format="json")
    after = timezone.now()

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    contact = Contact.objects.get(pk=body["id"])
    assert body == {
        "id": str(contact.pk),
        "name": "Maria Santos",
        "phone": "+5514999999999",
        "cpf": "12345678909",
        "additional1": "Informação adicional 1",
        "additional2": "Informação adicional 2",
        "createdAt": body["createdAt"],
        "updatedAt": body["updatedAt"],
    }
    assert _ms(before) <= _parse_ts(body["createdAt"]) <= after
    assert _parse_ts(body["createdAt"]) == _ms(contact.created_at)
    assert _parse_ts(body["updatedAt"]) == _ms(contact.updated_at)
    assert contact.name_search == "maria santos"


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client", "operator_client"])
def test_create_contact_allowed_for_every_role(request, client_name):
    response = request.getfixturevalue(client_name).post(CONTACTS, _payload(), format="json")

    assert response.status_code == 201, response.content
    assert Contact.objects.filter(phone="+5514999999999").exists()


def test_create_contact_refuses_anonymous(api_client):
    response = api_client.post(CONTACTS, _payload(), format="json")

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("(14) 99999-9999", "+5514999999999"),
        ("14999999999", "+5514999999999"),
        ("5514999999999", "+5514999999999"),
        ("+55 14 99999-9999", "+5514999999999"),
        ("+5514999999999", "+5514999999999"),
        ("(14) 3333-4444", "+551433334444"),
        ("+1 202 555 0123", "+12025550123"),
    ],
)
def test_create_contact_normalises_the_phone_to_e164(operator_client, typed, stored):
    response = operator_client.post(CONTACTS, _payload(phone=typed), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["phone"] == stored
    assert Contact.objects.get().phone == stored


def test_create_contact_phone_region_comes_from_the_setting(operator_client, settings):
    settings.DEFAULT_PHONE_REGION = "PT"

    response = operator_client.post(CONTACTS, _payload(phone="912 345 678"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["phone"] == "+351912345678"


def test_create_contact_stores_a_formatted_cpf_as_digits(operator_client):
    cpf = valid_cpf(mask=True)

    response = operator_client.post(CONTACTS, _payload(cpf=cpf), format="json")

    assert response.status_code == 201, response.content
    digits = re.sub(r"\D", "", cpf)
    assert response.json()["cpf"] == digits
    assert Contact.objects.get().cpf == digits


@pytest.mark.parametrize("cpf", [..., "", None], ids=["absent", "blank", "null"])
def test_create_contact_without_cpf_or_extras_returns_nulls(operator_client, cpf):
    payload = _payload(cpf=cpf, additional1=..., additional2=...)

    response = operator_client.post(CONTACTS, payload, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["cpf"], body["additional1"], body["additional2"]) == (None, None, None)
    contact = Contact.objects.get()
    assert (contact.cpf, contact.additional1, contact.additional2) == ("", None, None)


def test_create_contact_trims_the_name(operator_client):
    response = operator_client.post(CONTACTS, _payload(name="  João   da Silva  "), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["name"] == "João   da Silva"
    assert Contact.objects.get().name_search == "joao da silva"


@pytest.mark.parametrize(
    ("overrides", "field", "sentence"),
    [
        ({"name": ...}, "name", "name: Este campo é obrigatório."),
        ({"name": ""}, "name", None),
        ({"name": "   "}, "name", None),
        ({"name": None}, "name", None),
        ({"name": "x" * 121}, "name", None),
        ({"phone": ...}, "phone", "phone: Este campo é obrigatório."),
        ({"phone": ""}, "phone", None),
        ({"phone": None}, "phone", None),
        ({"phone": "123"}, "phone", "phone: Telefone inválido"),
        ({"phone": "not a phone"}, "phone", "phone: Telefone inválido"),
        ({"phone": "+55 14 9999"}, "phone", "phone: Telefone inválido"),
        ({"phone": "+5514333344444"}, "phone", "phone: Telefone inválido"),
        ({"phone": "9" * 40}, "phone", "phone: Telefone inválido"),
        ({"cpf": "12345678900"}, "cpf", "cpf: CPF inválido"),
        ({"cpf": "111.111.111-11"}, "cpf", "cpf: CPF inválido"),
        ({"cpf": "123"}, "cpf", "cpf: CPF inválido"),
        ({"cpf": "123.456.789-0x"}, "cpf", "cpf: CPF inválido"),
        ({"cpf": "123.456.789-0912"}, "cpf", None),
        ({"additional1": "x" * 256}, "additional1", None),
        ({"additional2": "x" * 256}, "additional2", None),
    ],
)
def test_create_contact_bad_input_is_422_naming_the_field(operator_client, overrides, field, sentence):
    response = operator_client.post(CONTACTS, _payload(**overrides), format="json")

    assert _validation_fields(response) == {field}
    if sentence is not None:
        assert _validation_messages(response) == [sentence]
    assert not Contact.objects.exists()


def test_create_contact_lists_every_bad_field(operator_client):
    payload = {"name": "", "phone": "123", "cpf": "123", "additional1": "x" * 256}

    response = operator_client.post(CONTACTS, payload, format="json")

    assert _validation_fields(response) == {"name", "phone", "cpf", "additional1"}


@pytest.mark.parametrize("second", ["+5514999999999", "(14) 99999-9999", "14999999999", "5514999999999"])
def test_create_contact_duplicate_phone_in_any_format_is_409(operator_client, second):
    assert operator_client.post(CONTACTS, _payload(phone="+55 14 99999-9999"), format="json").status_code == 201

    response = operator_client.post(CONTACTS, _payload(name="Outra Pessoa", phone=second), format="json")

    assert response.status_code == 409
    assert response.json() == PHONE_TAKEN
    assert Contact.objects.count() == 1


@pytest.mark.parametrize("second", ["+5531988887777", "(31) 98888-7777", "553188887777"])
def test_create_contact_brazilian_mobile_without_the_ninth_digit_is_the_same_number(operator_client, second):
    created = operator_client.post(CONTACTS, _payload(phone="(31) 8888-7777"), format="json")
    assert created.status_code == 201 and created.json()["phone"] == "+5531988887777"

    response = operator_client.post(CONTACTS, _payload(name="Outra Pessoa", phone=second), format="json")

    assert response.status_code == 409
    assert response.json() == PHONE_TAKEN


# ------------------------------------------------------------------------------
# GET /api/contacts
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client", "operator_client"])
def test_list_contacts_returns_contract_bodies_for_every_role(request, client_name):
    contact = ContactFactory(name="Maria Santos", cpf="12345678909", additional1="Info1")

    response = request.getfixturevalue(client_name).get(CONTACTS)

    assert response.status_code == 200
    assert response["X-Total-Count"] == "1"
    assert response.json() == [
        {
            "id": str(contact.pk),
            "name": "Maria Santos",
            "phone": contact.phone,
            "cpf": "12345678909",
            "additional1": "Info1",
            "additional2": None,
            "createdAt": _ms(contact.created_at).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "updatedAt": _ms(contact.updated_at).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
    ]


def test_list_contacts_refuses_anonymous(api_client):
    response = api_client.get(CONTACTS)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_list_contacts_orders_by_name_ignoring_case_and_accents(operator_client):
    for name in ["bruno", "Ágata", "amanda", "Émerson", "Carla"]:
        ContactFactory(name=name)

    assert _names(operator_client.get(CONTACTS)) == ["Ágata", "amanda", "bruno", "Carla", "Émerson"]


def test_list_contacts_paginates_with_page_and_limit(operator_client):
    for index in range(7):
        ContactFactory(name=f"Contato {index}")

    response = operator_client.get(CONTACTS, {"page": 2, "limit": 3})

    assert _names(response) == ["Contato 3", "Contato 4", "Contato 5"]
    assert response["X-Total-Count"] == "7"
    assert 'rel="next"' in response["Link"]
    assert 'rel="prev"' in response["Link"]


@pytest.mark.parametrize(
    ("query", "sentence"),
    [({"limit": 101}, "limit deve estar entre 1 e 100"), ({"page": 0}, "page deve ser no mínimo 1")],
)
def test_list_contacts_bad_page_params_are_422(operator_client, query, sentence):
    response = operator_client.get(CONTACTS, query)

    assert _validation_messages(response) == [sentence]


@pytest.fixture
def people():
    return {
        "joao": ContactFactory(name="João Silva", phone="+5514999999999"),
        "maria": ContactFactory(name="MARIA Conceição", phone="+5511988887777"),
        "jose": ContactFactory(name="José Joãozinho", phone="+551433334444"),
        "ana": ContactFactory(name="Ana Paula", phone="+12025550123"),
    }


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("joao", {"João Silva", "José Joãozinho"}),
        ("JOÃO", {"João Silva", "José Joãozinho"}),
        ("João Silva", {"João Silva"}),
        ("jOaO   sIlVa", {"João Silva"}),
        ("conceicao", {"MARIA Conceição"}),
        ("maria", {"MARIA Conceição"}),
        ("silv", {"João Silva"}),
        ("99999-9999", {"João Silva"}),
        ("+55 14 9999", {"João Silva"}),
        ("(14) 3333", {"José Joãozinho"}),
        ("5511", {"MARIA Conceição"}),
        ("+1 202", {"Ana Paula"}),
        ("14", {"João Silva", "José Joãozinho"}),
        ("Zé Ninguém", set()),
        ("", {"João Silva", "MARIA Conceição", "José Joãozinho", "Ana Paula"}),
        ("   ", {"João Silva", "MARIA Conceição", "José Joãozinho", "Ana Paula"}),
        ("100%", set()),
        ("_", set()),
    ],
)
def test_list_contacts_search_by_name_or_phone(operator_client, people, search, expected):
    response = operator_client.get(CONTACTS, {"search": search})

    assert set(_names(response)) == expected
    assert response["X-Total-Count"] == str(len(expected))


def test_list_contacts_search_too_long_is_422(operator_client):
    response = operator_client.get(CONTACTS, {"search": "x" * 101})

    assert _validation_fields(response) == {"search"}


@pytest.mark.parametrize("count", [3, 30])
def test_list_contacts_query_count_does_not_grow_with_contacts(
    operator_client, operator_user, django_assert_num_queries, count
):
    ContactFactory.create_batch(count)

    # The access token's user, the COUNT and the page: the same for 3 contacts and for 30.
    with django_assert_num_queries(3):
        response = operator_client.get(CONTACTS, {"limit": 100, "search": "a"})

    assert response.status_code == 200
    with django_assert_num_queries(3):
        response = operator_client.get(CONTACTS, {"limit": 100})

    assert len(response.json()) == count


# ------------------------------------------------------------------------------
# GET /api/contacts/:id
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client", "operator_client"])
def test_get_contact_returns_the_contract_body_for_every_role(request, client_name):
    contact = ContactFactory(name="Maria Santos", additional2="Info2")

    response = request.getfixturevalue(client_name).get(_detail(contact.pk))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["id"] == str(contact.pk)
    assert body["name"] == "Maria Santos"
    assert body["phone"] == contact.phone
    assert body["cpf"] is None
    assert body["additional1"] is None
    assert body["additional2"] == "Info2"
    assert _parse_ts(body["createdAt"]) == _ms(contact.created_at)


def test_get_contact_unknown_id_is_404(operator_client):
    ContactFactory()

    response = operator_client.get(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_get_contact_malformed_id_is_404_route(operator_client):
    response = operator_client.get(f"{CONTACTS}/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["message"] == f"Rota GET {CONTACTS}/not-a-uuid não encontrada"


# ------------------------------------------------------------------------------
# PATCH /api/contacts/:id
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_update_contact_changes_only_the_fields_sent(request, client_name):
    contact = ContactFactory(name="Maria Santos", cpf="12345678909", additional1="Info1", additional2="Info2")
    created = contact.created_at

    response = request.getfixturevalue(client_name).patch(
        _detail(contact.pk), {"name": "Maria Santos Atualizada", "additional1": "Nova informação"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["name"] == "Maria Santos Atualizada"
    assert body["additional1"] == "Nova informação"
    assert body["additional2"] == "Info2"
    assert body["cpf"] == "12345678909"
    assert body["phone"] == contact.phone
    contact.refresh_from_db()
    assert contact.name == "Maria Santos Atualizada"
    assert contact.name_search == "maria santos atualizada"
    assert contact.created_at == created
    assert _parse_ts(body["updatedAt"]) == _ms(contact.updated_at)
    assert contact.updated_at > created


def test_contact_known_only_by_whatsapp_id_is_listed_without_phone_and_can_get_one(admin_client):
    # A customer who wrote in hiding their number: listed with phone null until someone adds it.
    contact = ContactFactory(name="Lia", phone=None, whatsapp_id="BR.13491208655302741918")

    (listed,) = admin_client.get(CONTACTS, {"search": "lia"}).json()
    assert (listed["id"], listed["phone"]) == (str(contact.pk), None)
    response = admin_client.patch(_detail(contact.pk), {"phone": "(14) 99999-1234"}, format="json")

    assert response.status_code == 200 and response.json()["phone"] == "+5514999991234"
    contact.refresh_from_db()
    assert (contact.phone, contact.whatsapp_id) == ("+5514999991234", "BR.13491208655302741918")


def test_update_contact_keeps_a_whatsapp_number_of_a_range_phonenumbers_does_not_know(admin_client):
    contact = ContactFactory(name="Cliente", phone="+551112345678")  # created from WhatsApp

    same = admin_client.patch(_detail(contact.pk), {"name": "Cliente Nova", "phone": "+551112345678"}, format="json")
    other = admin_client.patch(_detail(contact.pk), {"phone": "+551112345679"}, format="json")

    assert same.status_code == 200 and same.json()["name"] == "Cliente Nova"
    assert _validation_fields(other) == {"phone"}
    contact.refresh_from_db()
    assert contact.phone == "+551112345678"


def test_update_contact_null_clears_optional_fields(admin_client):
    contact = ContactFactory(cpf="12345678909", additional1="Info1", additional2="Info2")

    response = admin_client.patch(
        _detail(contact.pk), {"cpf": None, "additional1": "", "additional2": None}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cpf"], body["additional1"], body["additional2"]) == (None, None, None)
    contact.refresh_from_db()
    assert (contact.cpf, contact.additional1, contact.additional2) == ("", None, None)


def test_update_contact_normalises_phone_and_cpf(supervisor_client):
    contact = ContactFactory()
    cpf = valid_cpf(mask=True)

    response = supervisor_client.patch(_detail(contact.pk), {"phone": "(14) 99999-9998", "cpf": cpf}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["phone"] == "+5514999999998"
    assert response.json()["cpf"] == re.sub(r"\D", "", cpf)


def test_update_contact_rename_is_found_by_the_new_name(admin_client, operator_client):
    contact = ContactFactory(name="Ana")

    assert admin_client.patch(_detail(contact.pk), {"name": "Órfão Ávila"}, format="json").status_code == 200

    assert _names(operator_client.get(CONTACTS, {"search": "orfao avila"})) == ["Órfão Ávila"]
    assert _names(operator_client.get(CONTACTS, {"search": "ana"})) == []


def test_update_contact_same_phone_in_another_format_is_not_a_conflict(admin_client):
    contact = ContactFactory(phone="+5514999999999")

    response = admin_client.patch(_detail(contact.pk), {"phone": "(14) 99999-9999"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["phone"] == "+5514999999999"


def test_update_contact_phone_of_another_contact_is_409(admin_client):
    ContactFactory(phone="+5514999999999")
    contact = ContactFactory(phone="+5514999999998")

    response = admin_client.patch(_detail(contact.pk), {"phone": "14 99999-9999"}, format="json")

    assert response.status_code == 409
    assert response.json() == PHONE_TAKEN
    contact.refresh_from_db()
    assert contact.phone == "+5514999999998"


def test_update_contact_operator_is_forbidden(operator_client):
    contact = ContactFactory(name="Maria Santos")

    response = operator_client.patch(_detail(contact.pk), {"name": "Hacked"}, format="json")

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    contact.refresh_from_db()
    assert contact.name == "Maria Santos"


@pytest.mark.parametrize(
    ("payload", "field", "sentence"),
    [
        ({"name": ""}, "name", None),
        ({"name": None}, "name", None),
        ({"name": "x" * 121}, "name", None),
        ({"phone": "123"}, "phone", "phone: Telefone inválido"),
        ({"phone": None}, "phone", None),
        ({"cpf": "12345678900"}, "cpf", "cpf: CPF inválido"),
        ({"additional1": "x" * 256}, "additional1", None),
        ({"additional2": "x" * 256}, "additional2", None),
    ],
)
def test_update_contact_bad_input_is_422_naming_the_field(admin_client, payload, field, sentence):
    contact = ContactFactory(name="Maria Santos")

    response = admin_client.patch(_detail(contact.pk), payload, format="json")

    assert _validation_fields(response) == {field}
    if sentence is not None:
        assert _validation_messages(response) == [sentence]
    contact.refresh_from_db()
    assert contact.name == "Maria Santos"


def test_update_contact_unknown_id_is_404(admin_client):
    response = admin_client.patch(_detail(uuid.uuid4()), {"name": "X"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# ------------------------------------------------------------------------------
# DELETE /api/contacts/:id
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client"])
def test_delete_contact_returns_204_and_removes_it(request, client_name):
    contact = ContactFactory()
    other = ContactFactory()
    client = request.getfixturevalue(client_name)

    response = client.delete(_detail(contact.pk))

    assert response.status_code == 204
    assert response.content == b""
    assert list(Contact.objects.values_list("pk", flat=True)) == [other.pk]
    assert client.delete(_detail(contact.pk)).json() == NOT_FOUND


def test_delete_contact_operator_is_forbidden(operator_client):
    contact = ContactFactory()

    response = operator_client.delete(_detail(contact.pk))

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_delete_contact_unknown_id_is_404(admin_client):
    response = admin_client.delete(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_delete_contact_frees_its_phone(admin_client):
    contact = ContactFactory(phone="+5514999999999")
    assert admin_client.delete(_detail(contact.pk)).status_code == 204

    response = admin_client.post(CONTACTS, _payload(phone="(14) 99999-9999"), format="json")

    assert response.status_code == 201, response.content
