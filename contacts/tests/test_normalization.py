import pytest
from django.core.exceptions import ValidationError

from contacts.normalization import (
    normalize_account_phone,
    normalize_cpf,
    normalize_phone,
    normalize_phone_or_current,
    phone_query_digits,
    search_key,
)


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("(14) 99999-9999", "+5514999999999"),
        ("14999999999", "+5514999999999"),
        ("5514999999999", "+5514999999999"),
        ("+55 14 99999-9999", "+5514999999999"),
        ("  +55 (14) 99999.9999 ", "+5514999999999"),
        ("014 99999-9999", "+5514999999999"),
        ("(11) 3333-4444", "+551133334444"),
        ("+351 912 345 678", "+351912345678"),
        # Brazilian mobiles written (or addressed by WhatsApp) without the ninth digit.
        ("553188887777", "+5531988887777"),
        ("+55 31 8888-7777", "+5531988887777"),
        ("(31) 8888-7777", "+5531988887777"),
        ("(11) 7777-6666", "+5511977776666"),
        ("+55 14 6123-4567", "+5514961234567"),
        ("+55 31 7777-6666", "+5531977776666"),
        ("(31) 3333-4444", "+553133334444"),
    ],
)
def test_normalize_phone_accepts_what_people_type(typed, e164):
    assert normalize_phone(typed) == e164


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "123",
        "abc",
        "+55 14 9999",
        "+5514333344444",
        "9" * 40,
        "+999 1234",
        "+55 20 8888-7777",
        "+351 8888 7777",
    ],
)
def test_normalize_phone_refuses_invalid_numbers(typed):
    with pytest.raises(ValidationError) as caught:
        normalize_phone(typed)
    assert caught.value.code == "invalid_phone"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+5514999999999", "+5514999999999"),
        ("553188887777", "+5531988887777"),  # WhatsApp's pre-2016 id of a Brazilian mobile
        ("+551112345678", "+551112345678"),  # a range phonenumbers does not know: the account exists
    ],
)
def test_normalize_account_phone_keeps_every_possible_number(raw, e164):
    assert normalize_account_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "abc", "+55119", "+999 1234", "9" * 40])
def test_normalize_account_phone_refuses_what_cannot_be_a_number(raw):
    with pytest.raises(ValidationError):
        normalize_account_phone(raw)


def test_normalize_phone_or_current_accepts_only_the_contacts_own_unknown_range_number():
    with pytest.raises(ValidationError):
        normalize_phone("+551112345678")
    assert normalize_phone_or_current("+55 11 1234-5678", "+551112345678") == "+551112345678"
    assert normalize_phone_or_current("(14) 99999-9999", "+551112345678") == "+5514999999999"
    with pytest.raises(ValidationError):
        normalize_phone_or_current("+551112345679", "+551112345678")
    with pytest.raises(ValidationError):
        normalize_phone_or_current("+551112345678", None)


def test_normalize_phone_region_setting(settings):
    settings.DEFAULT_PHONE_REGION = "US"
    assert normalize_phone("(202) 555-0123") == "+12025550123"
    assert normalize_phone("+55 14 99999-9999") == "+5514999999999"


def test_normalize_phone_region_defaults_to_brazil(settings):
    del settings.DEFAULT_PHONE_REGION
    assert normalize_phone("(14) 99999-9999") == "+5514999999999"


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("123.456.789-09", "12345678909"),
        ("12345678909", "12345678909"),
        (" 529.982.247-25 ", "52998224725"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_cpf_accepts_digits_or_the_mask(typed, digits):
    assert normalize_cpf(typed) == digits


@pytest.mark.parametrize(
    "typed",
    ["12345678900", "111.111.111-11", "00000000000", "123", "1234567890", "123456789-09", "123.456.78909", "abc"],
)
def test_normalize_cpf_refuses_invalid_numbers(typed):
    with pytest.raises(ValidationError) as caught:
        normalize_cpf(typed)
    assert caught.value.code == "invalid_cpf"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("João", "joao"),
        ("  JOÃO   da   Silva ", "joao da silva"),
        ("Ângela Müller Ção", "angela muller cao"),
        ("ﬁlipe", "filipe"),
        ("Straße", "strasse"),
        ("", ""),
    ],
)
def test_search_key_drops_case_and_accents(text, key):
    assert search_key(text) == key


@pytest.mark.parametrize(
    ("term", "digits"),
    [
        ("99999-9999", "999999999"),
        ("+55 14 9999", "55149999"),
        ("(14) 3333.4444", "1433334444"),
        ("Maria 14", ""),
        ("joao", ""),
    ],
)
def test_phone_query_digits(term, digits):
    assert phone_query_digits(term) == digits
