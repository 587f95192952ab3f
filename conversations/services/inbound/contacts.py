"""Contacts of inbound messages: customers' addresses, push names, and the contact row locks.

A customer's address is the E.164 phone when WhatsApp gave one, else WhatsApp's own id for them
(``InboundMessage.user_id``): the key the contact is found or created by. Phones start with "+",
which no WhatsApp id does, so one string tells the two apart.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from contacts.models import NAME_MAX_LENGTH, WHATSAPP_ID_MAX_LENGTH, Contact
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


def customer_address(event: InboundMessage) -> str | None:
    """The customer's E.164 phone, else WhatsApp's id for them, else ``None`` (nothing to reach)."""
    phone = customer_phone(event.phone)
    if phone is not None:
        return phone
    user_id = (event.user_id or "").strip()
    return user_id if user_id and len(user_id) <= WHATSAPP_ID_MAX_LENGTH and user_id[0] != "+" else None


def _is_phone(address: str) -> bool:
    return address.startswith("+")


def _by_address(address: str) -> Q:
    return Q(phone=address) if _is_phone(address) else Q(whatsapp_id=address)


def _new_contact(address: str, name: str) -> Contact:
    name = name or address
    if _is_phone(address):
        return Contact(name=name, name_search=search_key(name), phone=address)
    return Contact(name=name, name_search=search_key(name), whatsapp_id=address)


def customer_phone(raw: str | None) -> str | None:
    """E.164 of a sender, or ``None`` when there is none we can use (a LID, a BSUID, garbage)."""
    if not raw:
        return None
    try:
        return normalize_phone(raw)
    except ValidationError:
        return None


def is_placeholder_name(name: str, address: str) -> bool:
    """An empty name, or the number or id itself (what we store when nobody told us a name)."""
    text = (name or "").strip()
    if not text or text == address:
        return True
    if not _is_phone(address) or not phone_query_digits(text):
        return False
    try:
        return normalize_phone(text) == address
    except ValidationError:
        return False


def _lock_contact(*, address: str, push_name: str | None) -> Contact:
    """Get or create the contact at ``address`` and hold its row lock until commit."""
    name = _clean_name(push_name)
    contact = _one(Contact.objects.select_for_update().filter(_by_address(address)))
    if contact is None:
        contact = _new_contact(address, name)
        try:
            with transaction.atomic():
                contact.save(force_insert=True)
            return contact  # the new row stays locked by our insert
        except IntegrityError:
            contact = Contact.objects.select_for_update().get(_by_address(address))
    if name:
        _fill_name(contact, name)
    return contact


def _lock_contacts(items: list[tuple[InboundMessage, str]]) -> dict[str, Contact]:
    """Get or create the contacts of ``items`` (``(event, address)`` pairs) and hold their row locks
    (taken in phone, then id, order) until commit; returned by address.

    A new contact is named by its first push name; a known one only has a missing name filled in.
    """
    push_names: dict[str, str] = {}
    for event, address in items:
        if address not in push_names or not push_names[address]:
            push_names[address] = _clean_name(event.contact_name)
    addresses = sorted(push_names)
    contacts = _locked(addresses)
    missing = [address for address in addresses if address not in contacts]
    if missing:
        Contact.objects.bulk_create(
            [_new_contact(address, push_names[address]) for address in missing],
            ignore_conflicts=True,  # created meanwhile by someone else: locked just below all the same
        )
        contacts.update(_locked(missing))
    for address, name in push_names.items():
        if name:
            _fill_name(contacts[address], name)
    return contacts


def _locked(addresses: list[str]) -> dict[str, Contact]:
    """The contacts at ``addresses``, row-locked in a fixed order (phones, then ids), by address."""
    phones = {address for address in addresses if _is_phone(address)}
    user_ids = set(addresses) - phones
    rows = (
        Contact.objects.select_for_update()
        .filter(Q(phone__in=phones) | Q(whatsapp_id__in=user_ids))
        .order_by("phone", "whatsapp_id")
    )
    found = {}
    for contact in rows:
        for address in (contact.phone, contact.whatsapp_id):
            if address in phones or address in user_ids:
                found[address] = contact
    return found


def _fill_name(contact: Contact, name: str) -> None:
    """Push names fill in a missing name but never overwrite one a person typed. Caller holds the lock."""
    if contact.name == name or not is_placeholder_name(contact.name, contact.address):
        return
    contact.name = name
    contact.name_search = search_key(name)
    contact.save(update_fields=["name", "name_search", "updated_at"])


def _clean_name(name: str | None) -> str:
    return " ".join((name or "").split())[:NAME_MAX_LENGTH]
