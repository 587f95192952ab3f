from django.db.models import Q, QuerySet
from django.http import Http404

from contacts.models import Contact
from contacts.normalization import phone_query_digits, search_key


def search_filter(term: str) -> Q:
    """Name without regard to case or accents ("joao" finds "João"), or phone by its digits.

    "99999-9999" and "+55 14 9999" are compared digit by digit with the stored E.164 number.
    """
    condition = Q(name_search__contains=search_key(term))
    digits = phone_query_digits(term.strip())
    if digits:
        condition |= Q(phone__contains=digits)
    return condition


def list_contacts(*, search: str | None = None) -> QuerySet[Contact]:
    contacts = Contact.objects.order_by("name_search", "id")
    if search and search.strip():
        contacts = contacts.filter(search_filter(search))
    return contacts


def get_contact(*, contact_id) -> Contact:
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise Http404
    return contact
