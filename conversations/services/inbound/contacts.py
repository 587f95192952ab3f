"""Contacts of inbound messages: customers' addresses, push names, and the contact row locks.

A customer's address is the E.164 phone when WhatsApp gave one, else WhatsApp's own id for them
(``InboundMessage.user_id``): the key the contact is found or created by. Phones start with "+",
which no WhatsApp id does, so one string tells the two apart.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import NAME_MAX_LENGTH, WHATSAPP_ID_MAX_LENGTH, Contact
from contacts.normalization import normalize_account_phone, normalize_phone, phone_query_digits, search_key
from instances.providers.types import ContactUpdate, InboundMessage


def apply_contact_update(*, event: ContactUpdate) -> None:
    """Fill a known contact's missing name from its push name; unknown contacts are not created here."""
    address = customer_address(event)
    name = _clean_name(event.name)
    if address is None or not name:
        return
    with transaction.atomic():
        contact = _locked([address]).get(address)
        if contact is not None:
            _fill_name(contact, name)


def customer_address(event: InboundMessage | ContactUpdate) -> str | None:
    """The customer's E.164 phone, else WhatsApp's id for them, else ``None`` (nothing to reach)."""
    return customer_phone(event.phone) or _user_id(event)


def _is_phone(address: str) -> bool:
    return address.startswith("+")


def _new_contact(address: str, name: str, user_id: str | None = None) -> Contact:
    name = name or address
    if _is_phone(address):
        return Contact(name=name, name_search=search_key(name), phone=address, whatsapp_id=user_id)
    return Contact(name=name, name_search=search_key(name), whatsapp_id=address)


def customer_phone(raw: str | None) -> str | None:
    """E.164 of a sender, or ``None`` when there is none we can use (a LID, a BSUID, garbage)."""
    if not raw:
        return None
    try:
        return normalize_account_phone(raw)
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


def _lock_contacts(items: list[tuple[InboundMessage, str]], *, named: bool = True) -> dict[str, Contact]:
    """Get or create the contacts of ``items`` (``(event, address)`` pairs) and hold their row locks
    (taken in phone, then id, order) until commit; returned by address.

    A new contact is named by its first push name (unless ``named`` is false: the business's own
    messages carry the business's name); a known one only has a missing name filled in. When a
    message gives both the phone and WhatsApp's id for the customer, the contact records both, so
    the customer stays one contact if WhatsApp later shows only one of them.
    """
    push_names: dict[str, str] = {}
    user_ids: dict[str, str] = {}  # phone -> WhatsApp's id for the same customer
    for event, address in items:
        if not push_names.get(address):
            push_names[address] = _clean_name(event.contact_name) if named else ""
        user_id = _user_id(event)
        if _is_phone(address) and user_id and address not in user_ids:
            user_ids[address] = user_id
    addresses = sorted(push_names)
    contacts = _locked([*addresses, *user_ids.values()])
    _link(contacts, user_ids)
    for attempt in range(2):
        missing = [address for address in addresses if address not in contacts]
        if not missing:
            break
        Contact.objects.bulk_create(
            # A second attempt leaves WhatsApp's ids out: one was taken meanwhile by another contact.
            [
                _new_contact(address, push_names[address], user_ids.get(address) if attempt == 0 else None)
                for address in missing
            ],
            ignore_conflicts=True,  # created meanwhile by someone else: locked just below all the same
        )
        contacts.update(_locked(missing))
    for address, name in push_names.items():
        if name:
            _fill_name(contacts[address], name)
    return {address: contacts[address] for address in addresses}


def _user_id(event: InboundMessage | ContactUpdate) -> str | None:
    user_id = (event.user_id or "").strip()
    return user_id if user_id and len(user_id) <= WHATSAPP_ID_MAX_LENGTH and user_id[0] != "+" else None


def _link(contacts: dict[str, Contact], user_ids: dict[str, str]) -> None:
    """Record on the locked ``contacts`` the phone and WhatsApp id that one customer's messages gave together.

    Only gaps are filled: a contact known by its id alone gets the phone, a contact known by phone
    alone gets the id. Two contacts that turn out to be one person are left as they are.
    """
    changed = {}
    for phone, user_id in user_ids.items():
        by_phone, by_id = contacts.get(phone), contacts.get(user_id)
        if by_phone is not None and by_id is None and by_phone.whatsapp_id is None:
            by_phone.whatsapp_id = user_id
            contacts[user_id] = changed[by_phone.pk] = by_phone
        elif by_phone is None and by_id is not None and by_id.phone is None:
            by_id.phone = phone
            contacts[phone] = changed[by_id.pk] = by_id
    if changed:
        now = timezone.now()
        for contact in changed.values():
            contact.updated_at = now  # bulk_update does not apply auto_now
        Contact.objects.bulk_update(list(changed.values()), ["phone", "whatsapp_id", "updated_at"])


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
