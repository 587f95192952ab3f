from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from contacts.models import ADDITIONAL_MAX_LENGTH, NAME_MAX_LENGTH
from contacts.normalization import normalize_cpf, normalize_phone_or_current
from elsehub.api.fields import Timestamp

CPF_INPUT_MAX_LENGTH = 14  # "123.456.789-09"


class EmptyAsNull(serializers.CharField):
    """A blank stored value goes out as ``null``, as the contract shows absent optional fields."""

    def to_representation(self, value):
        return value or None


class PhoneField(serializers.CharField):
    """Any way a person types a number; validated and turned into E.164 with phonenumbers.

    The contact's own stored number (``current_phone`` in the context) is accepted back as it is.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("E.164 (+5514999999999) or a national number such as (14) 99999-9999."))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return normalize_phone_or_current(value, self.context.get("current_phone"))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class CpfField(serializers.CharField):
    """Digits or ``123.456.789-09``; checked with validate-docbr and kept as eleven digits."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", CPF_INPUT_MAX_LENGTH)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        # DRF runs max_length after this method, on the digits: check what was typed instead.
        if len(value) > CPF_INPUT_MAX_LENGTH:
            self.fail("max_length", max_length=CPF_INPUT_MAX_LENGTH)
        try:
            return normalize_cpf(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


def _additional(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=ADDITIONAL_MAX_LENGTH, required=False, allow_blank=True, allow_null=True, **kwargs
    )


class ContactOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    phone = serializers.CharField(
        allow_null=True,
        help_text=_("E.164, e.g. +5514999999999; null for a customer who wrote in without showing a number."),
    )
    cpf = EmptyAsNull(allow_null=True, help_text=_("Eleven digits, or null."))
    additional1 = serializers.CharField(allow_null=True)
    additional2 = serializers.CharField(allow_null=True)
    createdAt = Timestamp(source="created_at")
    updatedAt = Timestamp(source="updated_at")


class ContactCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH)
    phone = PhoneField()
    cpf = CpfField(required=False)
    additional1 = _additional()
    additional2 = _additional()


class ContactUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, required=False)
    phone = PhoneField(required=False)
    cpf = CpfField(required=False)
    additional1 = _additional()
    additional2 = _additional()


class ContactListParams(serializers.Serializer):
    search = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ContactImportInput(serializers.Serializer):
    file = serializers.FileField(help_text=_("CSV file (.csv or text/csv), at most 5 MB."))


class ImportRowErrorOutput(serializers.Serializer):
    row = serializers.IntegerField(help_text=_("Spreadsheet row number: the header is row 1."))
    error = serializers.CharField()


class ContactImportOutput(serializers.Serializer):
    success = serializers.BooleanField()
    total = serializers.IntegerField()
    imported = serializers.IntegerField()
    failed = serializers.IntegerField()
    errors = ImportRowErrorOutput(many=True)
