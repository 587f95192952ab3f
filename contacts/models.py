import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

NAME_MAX_LENGTH = 120
ADDITIONAL_MAX_LENGTH = 255
# E.164 allows at most 15 digits after the "+".
PHONE_MAX_LENGTH = 16
CPF_LENGTH = 11
SEARCH_KEY_MAX_LENGTH = 255


class Contact(models.Model):
    """A customer reachable on WhatsApp, known by one E.164 phone number.

    ``phone`` and ``cpf`` are stored normalised (``+5514999999999``, eleven digits) and
    ``name_search`` holds the name lowercased without accents; ``contacts.normalization`` computes
    all three and the services keep them in step, so the database never has to unaccent.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=NAME_MAX_LENGTH)
    phone = models.CharField(_("phone"), max_length=PHONE_MAX_LENGTH, unique=True)
    cpf = models.CharField(_("CPF"), max_length=CPF_LENGTH, blank=True, default="")
    # Nullable on purpose: the contract shows and accepts null for these two (PATCH "additional2": null).
    additional1 = models.CharField(  # noqa: DJ001
        _("additional information 1"), max_length=ADDITIONAL_MAX_LENGTH, null=True, blank=True
    )
    additional2 = models.CharField(  # noqa: DJ001
        _("additional information 2"), max_length=ADDITIONAL_MAX_LENGTH, null=True, blank=True
    )
    name_search = models.CharField(max_length=SEARCH_KEY_MAX_LENGTH, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["name_search", "id"]
        indexes = [
            # Serves the list's order and prefix searches; see selectors.list_contacts.
            models.Index(fields=["name_search", "id"], name="contacts_contact_name_search"),
            models.Index(fields=["created_at"], name="contacts_contact_created_at"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone})"
