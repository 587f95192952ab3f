"""Contacts of inbound messages: usable phones, push names, and the contact row locks."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from contacts.models import NAME_MAX_LENGTH, Contact
from contacts.normalization import normalize_phone, phone_query_digits, search_key
from conversations.services.inbound.common import _one
from instances.providers.types import ContactUpdate, InboundMessage


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


def _lock_contacts(items: list[tuple[InboundMessage, str]]) -> dict[str, Contact]:
    """Get or create the contacts of ``items`` and hold their row locks (taken in phone order) until commit.

    A new contact is named by its first push name; a known one only has a missing name filled in.
    """
    push_names: dict[str, str] = {}
    for event, phone in items:
        if phone not in push_names or not push_names[phone]:
            push_names[phone] = _clean_name(event.contact_name)
    phones = sorted(push_names)
    contacts = {
        contact.phone: contact
        for contact in Contact.objects.select_for_update().filter(phone__in=phones).order_by("phone")
    }
    missing = [phone for phone in phones if phone not in contacts]
    if missing:
        names = {phone: push_names[phone] or phone for phone in missing}
        Contact.objects.bulk_create(
            [Contact(name=name, name_search=search_key(name), phone=phone) for phone, name in names.items()],
            ignore_conflicts=True,  # created meanwhile by someone else: locked just below all the same
        )
        contacts.update(
            (contact.phone, contact)
            for contact in Contact.objects.select_for_update().filter(phone__in=missing).order_by("phone")
        )
    for phone, name in push_names.items():
        if name:
            _fill_name(contacts[phone], name)
    return contacts


def _fill_name(contact: Contact, name: str) -> None:
    """Push names fill in a missing name but never overwrite one a person typed. Caller holds the lock."""
    if contact.name == name or not is_placeholder_name(contact.name, contact.phone):
        return
    contact.name = name
    contact.name_search = search_key(name)
    contact.save(update_fields=["name", "name_search", "updated_at"])


def _clean_name(name: str | None) -> str:
    return " ".join((name or "").split())[:NAME_MAX_LENGTH]
