from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts import importing, selectors, services
from contacts.models import Contact
from contacts.normalization import normalize_cpf, normalize_phone_or_current, phone_query_digits
from elsehub.api.errors import ApplicationError

# The result page lists at most this many row errors; the counts above it are always complete.
SHOWN_ERRORS = 1000


class ContactForm(forms.ModelForm):
    """Normalises like the API does and runs the services' check in clean(), so a refusal shows on the form."""

    # Wider than the stored columns: what people type still has to fit before it is normalised.
    phone = forms.CharField(label=gettext_lazy("phone"), max_length=32)
    cpf = forms.CharField(label=gettext_lazy("CPF"), max_length=14, required=False)

    class Meta:
        model = Contact
        fields = ["name", "phone", "cpf", "additional1", "additional2"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.instance.phone:
            # A customer who wrote in without showing a number: a phone may be added, not required.
            self.fields["phone"].required = False
            self.fields["phone"].help_text = gettext_lazy(
                "This customer wrote in without showing a number (WhatsApp id %(id)s)."
            ) % {"id": self.instance.whatsapp_id}

    def clean_phone(self):
        if not self.cleaned_data["phone"] and not self.fields["phone"].required:
            return None
        try:
            return normalize_phone_or_current(self.cleaned_data["phone"], self.instance.phone)
        except DjangoValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def clean_cpf(self):
        try:
            return normalize_cpf(self.cleaned_data.get("cpf"))
        except DjangoValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def clean(self):
        data = super().clean()
        if data.get("phone"):
            try:
                services.check_contact_change(contact=self.instance if self.instance.pk else None, phone=data["phone"])
            except ApplicationError as exc:
                self.add_error("phone", str(exc.message))
        return data

    def validate_unique(self):
        """Uniqueness is checked by the service, with the contract's message."""


class ContactImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "At most 5 MB, UTF-8 or Windows-1252, separated by commas or semicolons. Columns: name and phone "
            "(required), cpf, additional1, additional2; Portuguese headers such as nome and telefone work too."
        ),
    )


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactForm
    list_display = ["name", "phone", "whatsapp_id", "cpf", "created_at"]
    list_filter = ["created_at"]
    date_hierarchy = "created_at"
    search_fields = ["name", "phone", "whatsapp_id", "cpf"]
    ordering = ["name_search", "id"]
    readonly_fields = ["whatsapp_id", "created_at", "updated_at"]
    change_list_template = "admin/contacts/contact/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            # The stock search is accent-sensitive; add the API's search and CPF by its digits.
            extra = queryset.filter(selectors.search_filter(search_term))
            digits = phone_query_digits(search_term.strip())
            if digits:
                extra |= queryset.filter(cpf__contains=digits)
            results = results | extra
        return results, may_have_duplicates

    def save_model(self, request, obj, form, change):
        # Writes go through the services, so admin and API keep the same rules.
        fields = {name: form.cleaned_data.get(name) for name in ContactForm.Meta.fields}
        if fields["phone"] is None:
            del fields["phone"]  # still unknown: left as it is
        if change:
            saved = services.update_contact(contact=obj, **fields)
        else:
            saved = services.create_contact(**fields)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.delete_contact(contact=obj)

    def delete_queryset(self, request, queryset):
        services.delete_contacts(contact_ids=list(queryset.values_list("pk", flat=True)))

    def get_urls(self):
        import_view = self.admin_site.admin_view(self.import_csv_view)
        return [path("import-csv/", import_view, name="contacts_contact_import_csv"), *super().get_urls()]

    def import_csv_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        report = None
        form = ContactImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                report = importing.import_contacts_csv(file=form.cleaned_data["file"])
            except ApplicationError as exc:  # a refused file: shown on the form, not as an error page
                form.add_error("file", str(exc.message))
            else:
                summary = _("%(imported)d of %(total)d contact(s) imported; %(failed)d row(s) failed.") % {
                    "imported": report.imported,
                    "total": report.total,
                    "failed": report.failed,
                }
                self.message_user(request, summary, level=messages.WARNING if report.failed else messages.SUCCESS)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import CSV"),
            "form": form,
            "report": report,
            "shown_errors": report.errors[:SHOWN_ERRORS] if report else [],
        }
        return TemplateResponse(request, "admin/contacts/contact/import_csv.html", context)
