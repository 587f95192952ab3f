import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

NAME_MAX_LENGTH = 120
ADDITIONAL_MAX_LENGTH = 255
# E.164 allows at most 15 digits after the "+".
PHONE_MAX_LENGTH = 16
# A Meta business-scoped user id ("BR.13491208655302741918") or an Evolution LID ("184467440737095@lid").
WHATSAPP_ID_MAX_LENGTH = 128
CPF_LENGTH = 11
SEARCH_KEY_MAX_LENGTH = 255


class Contact(models.Model):
    """A customer reachable on WhatsApp, known by one E.164 phone number, or by WhatsApp's id alone.

    ``phone`` and ``cpf`` are stored normalised (``+5514999999999``, eleven digits) and
    ``name_search`` holds the name lowercased without accents; ``contacts.normalization`` computes
    all three and the services keep them in step, so the database never has to unaccent.

    Some customers write in without a phone: WhatsApp users with a username reach a Meta number as a
    business-scoped user id, and an Evolution chat may be addressed by a LID only. Such a contact
    has ``whatsapp_id`` and no phone until one becomes known; people always type phones.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=NAME_MAX_LENGTH)
    # Null (not "") when unknown: several contacts without a phone must pass the unique constraint.
    phone = models.CharField(_("phone"), max_length=PHONE_MAX_LENGTH, unique=True, null=True, blank=True)
    whatsapp_id = models.CharField(
        _("WhatsApp id"),
        max_length=WHATSAPP_ID_MAX_LENGTH,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text=_("How WhatsApp named a customer who wrote in without a phone number (user id or LID)."),
    )
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
        constraints = [
            models.CheckConstraint(
                condition=models.Q(phone__isnull=False) | models.Q(whatsapp_id__isnull=False),
                name="contacts_contact_reachable",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone or self.whatsapp_id})"

    @property
    def address(self) -> str:
        """Where WhatsApp reaches this contact: the phone, else WhatsApp's own id."""
        return self.phone or self.whatsapp_id or ""
