"""Services called directly, as the admin, the import or a future webhook would call them."""

import pytest
from django.http import Http404

from contacts import services
from contacts.models import Contact
from contacts.tests.factories import ContactFactory
from elsehub.api.errors import ConflictError

pytestmark = pytest.mark.django_db


def test_create_contact_normalises_whatever_the_caller_sends():
    contact = services.create_contact(
        name="  Órfão  ", phone="(14) 99999-9999", cpf="123.456.789-09", additional1="  ", additional2=" x "
    )

    contact.refresh_from_db()
    assert (contact.name, contact.name_search, contact.phone, contact.cpf) == (
        "Órfão",
        "orfao",
        "+5514999999999",
        "12345678909",
    )
    assert (contact.additional1, contact.additional2) == (None, "x")


def test_create_contact_duplicate_found_only_by_the_database_is_409(monkeypatch):
    """The check can miss a concurrent insert; the unique constraint then answers with the same 409."""
    ContactFactory(phone="+5514999999999")
    monkeypatch.setattr(services, "_phone_taken", lambda phone, exclude=None: False)

    with pytest.raises(ConflictError) as caught:
        services.create_contact(name="Outra", phone="14999999999")

    assert str(caught.value.message) == "Telefone já existe"
    assert Contact.objects.count() == 1


def test_update_contact_duplicate_found_only_by_the_database_is_409(monkeypatch):
    ContactFactory(phone="+5514999999999")
    contact = ContactFactory(phone="+5514999999998", name="Mantida")
    monkeypatch.setattr(services, "_phone_taken", lambda phone, exclude=None: False)

    with pytest.raises(ConflictError):
        services.update_contact(contact=contact, name="Trocada", phone="14999999999")

    contact.refresh_from_db()
    assert (contact.name, contact.phone) == ("Mantida", "+5514999999998")


def test_update_contact_unset_fields_are_left_alone():
    contact = ContactFactory(name="Maria", cpf="12345678909", additional1="a", additional2="b")

    services.update_contact(contact=contact, additional2=None)

    contact.refresh_from_db()
    assert (contact.name, contact.cpf, contact.additional1, contact.additional2) == ("Maria", "12345678909", "a", None)


def test_update_contact_deleted_meanwhile_is_404():
    contact = ContactFactory()
    Contact.objects.filter(pk=contact.pk).delete()

    with pytest.raises(Http404):
        services.update_contact(contact=contact, name="X")


def test_delete_contact_twice_is_a_no_op():
    contact = ContactFactory()

    services.delete_contact(contact=contact)
    services.delete_contact(contact=contact)

    assert not Contact.objects.exists()


def test_delete_contacts_returns_how_many_went():
    keep, *gone = ContactFactory.create_batch(3)

    assert services.delete_contacts(contact_ids=[contact.pk for contact in gone]) == 2
    assert list(Contact.objects.values_list("pk", flat=True)) == [keep.pk]
