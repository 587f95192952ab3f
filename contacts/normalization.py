"""Pure functions that turn what people type into what we store: E.164 phones, CPF digits, search keys.

Shared by the API serializers, the admin form, the services and the CSV import, so a number typed
as ``(14) 99999-9999`` in one place and ``+55 14 99999-9999`` in another is the same contact.
"""

import re
import unicodedata

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from validate_docbr import CPF

from contacts.models import SEARCH_KEY_MAX_LENGTH

INVALID_PHONE = _("Invalid phone number")
INVALID_CPF = _("Invalid CPF")

_CPF = CPF()
_CPF_SHAPE = re.compile(r"\d{11}|\d{3}\.\d{3}\.\d{3}-\d{2}")
_PHONE_QUERY = re.compile(r"[\d\s()+.\-]+")
_NON_DIGITS = re.compile(r"\D")


def phone_region() -> str:
    """Region assumed for numbers typed without a country code (``DEFAULT_PHONE_REGION``)."""
    return getattr(settings, "DEFAULT_PHONE_REGION", "BR")


def normalize_phone(raw: str, *, region: str | None = None) -> str:
    """``(14) 99999-9999``, ``5514999999999`` or ``+55 14 99999-9999`` -> ``+5514999999999``.

    Raises ``ValidationError`` for text that is not a valid number of its country.
    """
    number = _parsed(raw, region)
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(INVALID_PHONE, code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_account_phone(raw: str) -> str:
    """The phone of a WhatsApp account (a sender's JID or ``wa_id``), as ``normalize_phone`` gives it.

    The account exists, so its number does: one in a range phonenumbers does not know (yet) is
    kept when its length is possible for its country, where ``normalize_phone`` would refuse it
    and the customer's message would have no contact to land on.
    """
    number = _parsed(raw, None)
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(INVALID_PHONE, code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone_or_current(raw: str, current: str | None) -> str:
    """``normalize_phone``, except that a contact's own number is accepted back as it is stored.

    A number taken from WhatsApp (``normalize_account_phone``) may not pass ``normalize_phone``;
    editing that contact's other fields must not be refused for it.
    """
    try:
        return normalize_phone(raw)
    except ValidationError:
        if current and _account_phone_or_none(raw) == current:
            return current
        raise


def _account_phone_or_none(raw: str) -> str | None:
    try:
        return normalize_account_phone(raw)
    except ValidationError:
        return None


def _parsed(raw: str, region: str | None) -> phonenumbers.PhoneNumber:
    text = (raw or "").strip()
    if not text or len(text) > 32:
        raise ValidationError(INVALID_PHONE, code="invalid_phone")
    try:
        number = phonenumbers.parse(text, region or phone_region())
    except phonenumbers.NumberParseException:
        raise ValidationError(INVALID_PHONE, code="invalid_phone") from None
    return _with_ninth_digit(number)


def _with_ninth_digit(number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    """A Brazilian mobile in its pre-2016 form (area code + 8 digits starting 6-9) gets its leading 9.

    WhatsApp still addresses many accounts that way (``553188887777@s.whatsapp.net`` is the
    customer on ``+55 31 98888-7777``), and old spreadsheets hold such numbers too: both must land
    on the one contact. This holds even where the old form is still "valid" (the 7xxx radio ranges,
    switched off in 2018). Landlines (8 digits starting 2-5) are left alone.
    """
    national = str(number.national_number)
    if number.country_code != 55 or len(national) != 10 or national[2] not in "6789":
        return number
    mobile = phonenumbers.PhoneNumber(country_code=55, national_number=int(f"{national[:2]}9{national[2:]}"))
    return mobile if phonenumbers.is_valid_number(mobile) else number


def normalize_cpf(raw: str | None) -> str:
    """``123.456.789-09`` or ``12345678909`` -> ``12345678909``; empty stays empty.

    validate-docbr alone would pad a short number with zeros and accept it, hence the shape check.
    """
    text = (raw or "").strip()
    if not text:
        return ""
    if not _CPF_SHAPE.fullmatch(text) or not _CPF.validate(text):
        raise ValidationError(INVALID_CPF, code="invalid_cpf")
    return _NON_DIGITS.sub("", text)


def search_key(text: str) -> str:
    """Lowercase, accents dropped, spaces collapsed: ``"  JOÃO  da Silva"`` -> ``"joao da silva"``."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.casefold().split())[:SEARCH_KEY_MAX_LENGTH]


def phone_query_digits(term: str) -> str:
    """The digits of a search term that looks like (part of) a phone number, else ``""``."""
    if not _PHONE_QUERY.fullmatch(term):
        return ""
    return _NON_DIGITS.sub("", term)
