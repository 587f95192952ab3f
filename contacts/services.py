"""Every write on contacts. Each service owns its transaction; the CSV import is in ``contacts.importing``.

Phones and CPFs are normalised here whatever the caller did, so API, admin and import store the
same value for the same number. A value that does not normalise raises Django's
``ValidationError``: callers that take user input validate first (serializers, admin form) and
name the field in their own way.
"""

import logging
from collections.abc import Iterable
from enum import Enum
from typing import NoReturn

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext as _

from contacts.models import NAME_MAX_LENGTH, Contact
from contacts.normalization import (
    normalize_account_phone,
    normalize_cpf,
    normalize_phone,
    normalize_phone_or_current,
    search_key,
)
from elsehub.api.errors import ConflictError
from instances.providers.types import RemoteContact

logger = logging.getLogger(__name__)


class _Unset(Enum):
    UNSET = "unset"


# "Leave as it is" for update_contact, where None already means "clear this field".
UNSET = _Unset.UNSET


def phone_taken_message() -> str:
    return _("Phone already exists")


def _raise_phone_taken() -> NoReturn:
    raise ConflictError(phone_taken_message(), code="phone_taken")


def _phone_taken(phone: str, *, exclude: Contact | None = None) -> bool:
    query = Contact.objects.filter(phone=phone)
    if exclude is not None:
        query = query.exclude(pk=exclude.pk)
    return query.exists()


def _optional(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def check_contact_change(*, contact: Contact | None, phone: str) -> None:
    """Raise the refusal that saving would raise, without writing (for admin forms)."""
    if _phone_taken(normalize_phone_or_current(phone, contact.phone if contact else None), exclude=contact):
        _raise_phone_taken()


def create_contact(
    *,
    name: str,
    phone: str,
    cpf: str | None = None,
    additional1: str | None = None,
    additional2: str | None = None,
) -> Contact:
    phone = normalize_phone(phone)
    name = name.strip()
    contact = Contact(
        name=name,
        name_search=search_key(name),
        phone=phone,
        cpf=normalize_cpf(cpf),
        additional1=_optional(additional1),
        additional2=_optional(additional2),
    )
    if _phone_taken(phone):
        _raise_phone_taken()
    try:
        with transaction.atomic():
            contact.save(force_insert=True)
    except IntegrityError:  # a concurrent insert of the same number won the race
        _raise_phone_taken()
    return contact


def update_contact(
    *,
    contact: Contact,
    name: str | _Unset = UNSET,
    phone: str | _Unset = UNSET,
    cpf: str | _Unset | None = UNSET,
    additional1: str | _Unset | None = UNSET,
    additional2: str | _Unset | None = UNSET,
) -> Contact:
    """Change the given fields; ``UNSET`` (the default) leaves a field alone, ``None`` clears it."""
    with transaction.atomic():
        contact = Contact.objects.select_for_update().filter(pk=contact.pk).first()
        if contact is None:
            raise Http404
        if name is not UNSET:
            contact.name = name.strip()
            contact.name_search = search_key(contact.name)
        if phone is not UNSET:
            phone = normalize_phone_or_current(phone, contact.phone)
            if phone != contact.phone and _phone_taken(phone, exclude=contact):
                _raise_phone_taken()
            contact.phone = phone
        if cpf is not UNSET:
            contact.cpf = normalize_cpf(cpf)
        if additional1 is not UNSET:
            contact.additional1 = _optional(additional1)
        if additional2 is not UNSET:
            contact.additional2 = _optional(additional2)
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:
            _raise_phone_taken()
    return contact


def delete_contact(*, contact: Contact) -> None:
    """Deleting a contact that is already gone is a no-op."""
    Contact.objects.filter(pk=contact.pk).delete()


def delete_contacts(*, contact_ids: list) -> int:
    """Bulk delete (admin action); returns how many rows went."""
    _total, by_model = Contact.objects.filter(pk__in=contact_ids).delete()
    return by_model.get(Contact._meta.label, 0)


def upsert_contacts_from_provider(*, contacts: Iterable[RemoteContact]) -> int:
    """Make sure every person in a provider's contact list is a Contact; returns how many are.

    Existing contacts keep their name (an operator may have corrected it); groups and entries
    without a valid phone are skipped. Running it twice creates nothing the second time.
    """
    wanted: dict[str, str] = {}
    for remote in contacts:
        if remote.is_group or not remote.phone:
            continue
        try:
            phone = normalize_account_phone(remote.phone)  # WhatsApp accounts, as inbound senders are
        except ValidationError:
            continue
        name = (remote.name or "").strip()[:NAME_MAX_LENGTH] or phone
        wanted.setdefault(phone, name)
    for start in range(0, len(wanted), 1000):
        chunk = dict(list(wanted.items())[start : start + 1000])
        Contact.objects.bulk_create(
            [Contact(name=name, name_search=search_key(name), phone=phone) for phone, name in chunk.items()],
            ignore_conflicts=True,
        )
    return Contact.objects.filter(phone__in=list(wanted)).count() if wanted else 0
