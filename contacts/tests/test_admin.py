"""Django admin for contacts: search, filters, forms through the services, and the CSV import page."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.models import Role
from contacts.models import Contact
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/contacts/contact/"
ADD = "/admin/contacts/contact/add/"
IMPORT = "/admin/contacts/contact/import-csv/"


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _listed(response) -> set[str]:
    assert response.status_code == 200
    return {contact.name for contact in response.context["cl"].result_list}


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _form_errors(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {field: [str(error) for error in errors] for field, errors in form.errors.items()}


def _contact_form(**overrides) -> dict:
    data = {"name": "Maria Santos", "phone": "", "cpf": "", "additional1": "", "additional2": "", "_save": "Salvar"}
    data.update(overrides)
    return data


# ------------------------------------------------------------------------------
# Changelist
# ------------------------------------------------------------------------------


@pytest.fixture
def people():
    return {
        "joao": ContactFactory(name="João Silva", phone="+5514999999999", cpf="12345678909"),
        "maria": ContactFactory(name="MARIA Conceição", phone="+5511988887777"),
        "ana": ContactFactory(name="Ana Paula", phone="+551433334444", cpf="52998224725"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("João", {"João Silva"}),
        ("joao", {"João Silva"}),
        ("CONCEICAO", {"MARIA Conceição"}),
        ("ana paula", {"Ana Paula"}),
        ("99999-9999", {"João Silva"}),
        ("+5511", {"MARIA Conceição"}),
        ("529.982.247-25", {"Ana Paula"}),
        ("12345678909", {"João Silva"}),
        ("ninguém", set()),
    ],
)
def test_admin_changelist_search(staff_client, people, query, expected):
    assert _listed(staff_client.get(CHANGELIST, {"q": query})) == expected


def test_admin_changelist_filters_by_created_date(staff_client, people):
    Contact.objects.filter(pk=people["maria"].pk).update(created_at=timezone.now() - timedelta(days=60))
    changelist = staff_client.get(CHANGELIST).context["cl"]
    (created_filter,) = changelist.filter_specs
    links = {str(choice["display"]): choice["query_string"] for choice in created_filter.choices(changelist)}

    assert _listed(staff_client.get(CHANGELIST + links["Hoje"])) == {"João Silva", "Ana Paula"}
    assert _listed(staff_client.get(CHANGELIST + links["Qualquer data"])) == {
        "João Silva",
        "MARIA Conceição",
        "Ana Paula",
    }


def test_admin_changelist_has_the_import_button(staff_client):
    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{IMPORT}"' in html
    assert "Importar CSV" in html


def test_admin_changelist_supervisors_manage_contacts(client, supervisor_user, people):
    client.force_login(supervisor_user)

    response = client.get(CHANGELIST)

    assert _listed(response) == {"João Silva", "MARIA Conceição", "Ana Paula"}
    assert f'href="{IMPORT}"' in response.content.decode()


# ------------------------------------------------------------------------------
# Add, change, delete
# ------------------------------------------------------------------------------


def test_admin_add_contact_normalises_through_the_service(staff_client):
    response = staff_client.post(ADD, _contact_form(name=" Órfão ", phone="(14) 99999-9999", cpf="123.456.789-09"))

    assert response.status_code == 302, _form_errors(response)
    contact = Contact.objects.get()
    assert (contact.name, contact.name_search, contact.phone, contact.cpf) == (
        "Órfão",
        "orfao",
        "+5514999999999",
        "12345678909",
    )
    assert (contact.additional1, contact.additional2) == (None, None)


@pytest.mark.parametrize(
    ("overrides", "field", "error"),
    [
        ({"phone": "14 99999-9999"}, "phone", "Telefone já existe"),
        ({"phone": "123"}, "phone", "Telefone inválido"),
        ({"phone": "+5514999999998", "cpf": "12345678900"}, "cpf", "CPF inválido"),
    ],
)
def test_admin_add_contact_refusals_show_on_the_form(staff_client, overrides, field, error):
    ContactFactory(phone="+5514999999999")

    response = staff_client.post(ADD, _contact_form(**overrides))

    assert response.status_code == 200
    assert _form_errors(response) == {field: [error]}
    assert Contact.objects.count() == 1


def test_admin_change_contact_keeps_its_own_phone(staff_client):
    contact = ContactFactory(name="Maria", phone="+5514999999999")

    response = staff_client.post(
        f"{CHANGELIST}{contact.pk}/change/", _contact_form(name="Maria José", phone="(14) 99999-9999")
    )

    assert response.status_code == 302, _form_errors(response)
    contact.refresh_from_db()
    assert (contact.name, contact.name_search, contact.phone) == ("Maria José", "maria jose", "+5514999999999")


def test_admin_change_contact_known_only_by_whatsapp_id_may_leave_the_phone_empty(staff_client):
    contact = ContactFactory(name="Lia", phone=None, whatsapp_id="BR.13491208655302741918")
    change = f"{CHANGELIST}{contact.pk}/change/"

    page = staff_client.get(change)
    assert page.status_code == 200 and "BR.13491208655302741918" in page.content.decode()
    response = staff_client.post(change, _contact_form(name="Lia Prado", phone=""))

    assert response.status_code == 302, _form_errors(response)
    contact.refresh_from_db()
    assert (contact.name, contact.phone) == ("Lia Prado", None)
    assert staff_client.post(change, _contact_form(name="Lia Prado", phone="(14) 99999-1234")).status_code == 302
    contact.refresh_from_db()
    assert (contact.phone, contact.whatsapp_id) == ("+5514999991234", "BR.13491208655302741918")
    # Once known, the phone is required again: it cannot be blanked out.
    assert _form_errors(staff_client.post(change, _contact_form(phone=""))) == {"phone": ["Este campo é obrigatório."]}


def test_admin_change_contact_keeps_a_whatsapp_number_of_a_range_phonenumbers_does_not_know(staff_client):
    contact = ContactFactory(name="Cliente", phone="+551112345678")  # created from WhatsApp

    response = staff_client.post(
        f"{CHANGELIST}{contact.pk}/change/", _contact_form(name="Cliente Nova", phone="+551112345678")
    )

    assert response.status_code == 302, _form_errors(response)
    contact.refresh_from_db()
    assert (contact.name, contact.phone) == ("Cliente Nova", "+551112345678")


def test_admin_change_contact_to_a_taken_phone_is_refused(staff_client):
    ContactFactory(phone="+5514999999999")
    contact = ContactFactory(phone="+5514999999998")

    response = staff_client.post(f"{CHANGELIST}{contact.pk}/change/", _contact_form(phone="14999999999"))

    assert _form_errors(response) == {"phone": ["Telefone já existe"]}
    contact.refresh_from_db()
    assert contact.phone == "+5514999999998"


def test_admin_bulk_delete_removes_the_selected(staff_client, people):
    selected = [str(people["joao"].pk), str(people["ana"].pk)]

    response = staff_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": selected, "post": "yes"})

    assert response.status_code == 302
    assert set(Contact.objects.values_list("name", flat=True)) == {"MARIA Conceição"}


# ------------------------------------------------------------------------------
# Import CSV
# ------------------------------------------------------------------------------


def test_admin_import_page_shows_the_upload_form(staff_client):
    response = staff_client.get(IMPORT)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert 'type="file"' in html
    assert response.context["report"] is None


def test_admin_import_csv_creates_contacts_and_shows_the_report(staff_client):
    ContactFactory(name="Já Existe", phone="+5514988887777")
    content = "Nome;Telefone;CPF\nJoão Conceição;(14) 99999-9999;\nAna;123;\nBeto;14 98888-7777;\n".encode("cp1252")
    upload = SimpleUploadedFile("contatos.csv", content, content_type="text/csv")

    response = staff_client.post(IMPORT, {"file": upload})

    assert response.status_code == 200
    report = response.context["report"]
    assert (report.total, report.imported, report.failed) == (3, 1, 2)
    assert Contact.objects.get(phone="+5514999999999").name == "João Conceição"
    assert _messages(response) == ["1 de 3 contato(s) importado(s); 2 linha(s) com erro."]
    html = response.content.decode()
    assert "<td>3</td><td>Telefone inválido</td>" in html
    assert "<td>4</td><td>Telefone já existe</td>" in html


def test_admin_import_csv_refused_file_shows_on_the_form(staff_client):
    upload = SimpleUploadedFile("contatos.csv", b"email,cpf\nx@example.com,\n", content_type="text/csv")

    response = staff_client.post(IMPORT, {"file": upload})

    assert response.status_code == 200
    assert response.context["report"] is None
    assert response.context["form"].errors == {"file": ["Colunas obrigatórias ausentes: name, phone"]}
    assert not Contact.objects.exists()


def test_admin_import_csv_is_for_staff_only(client, make_user):
    client.force_login(make_user(Role.OPERATOR))
    upload = SimpleUploadedFile("contatos.csv", b"name,phone\nMaria,14999999999\n", content_type="text/csv")

    response = client.post(IMPORT, {"file": upload})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert not Contact.objects.exists()
