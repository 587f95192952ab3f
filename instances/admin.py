from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from elsehub.api.errors import ApplicationError
from instances import services
from instances.models import ConnectionStatus, Provider, ServiceInstance, SyncJob
from instances.providers.exceptions import ProviderError
from instances.serializers import masked_credentials

CREDENTIAL_FIELDS = {
    Provider.EVOLUTION_API: ("serverUrl", "apiToken", "instanceName"),
    Provider.OFFICIAL_META: ("wabaId", "phoneId", "accessToken", "appSecret", "verifyToken"),
}
SECRET_FIELDS = {"apiToken", "accessToken", "appSecret", "verifyToken"}


def _refusal(exc: Exception) -> str:
    message = exc.message if isinstance(exc, (ApplicationError, ProviderError)) else exc
    return "; ".join(str(item) for item in message) if isinstance(message, list) else str(message)


class ServiceInstanceForm(forms.ModelForm):
    """Credential fields per provider; on change, an empty secret keeps the stored one."""

    serverUrl = forms.URLField(label=_("Evolution server URL"), required=False, assume_scheme="https")
    apiToken = forms.CharField(label=_("Evolution API key"), required=False, widget=forms.PasswordInput)
    instanceName = forms.CharField(label=_("Evolution instance name"), required=False)
    wabaId = forms.CharField(label=_("WABA id"), required=False)
    phoneId = forms.CharField(label=_("Phone number id"), required=False)
    accessToken = forms.CharField(label=_("Access token"), required=False, widget=forms.PasswordInput)
    appSecret = forms.CharField(label=_("App secret"), required=False, widget=forms.PasswordInput)
    verifyToken = forms.CharField(label=_("Verify token"), required=False, widget=forms.PasswordInput)

    class Meta:
        model = ServiceInstance
        fields = ["name", "phone", "provider", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:  # the UUID default gives a new instance a pk already
            for key, value in masked_credentials(self.instance.credentials).items():
                if key in self.fields and key not in SECRET_FIELDS:
                    self.fields[key].initial = value
                elif key in self.fields:
                    self.fields[key].help_text = _("Stored: %(masked)s. Leave empty to keep it.") % {"masked": value}

    def credentials(self) -> dict:
        provider = self.cleaned_data.get("provider") or self.instance.provider
        return {
            key: self.cleaned_data[key] for key in CREDENTIAL_FIELDS.get(provider, ()) if self.cleaned_data.get(key)
        }

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        # The provider call happens here so that a refusal shows on the form, not as an error page.
        try:
            if not self.instance._state.adding:
                self.saved = services.update_instance(
                    instance=self.instance,
                    name=data["name"],
                    phone=data["phone"],
                    provider=data["provider"],
                    credentials=self.credentials(),
                    is_active=data["is_active"],
                )
            else:
                self.saved = services.create_instance(
                    name=data["name"], phone=data["phone"], provider=data["provider"], credentials=self.credentials()
                )
        except (ApplicationError, ProviderError) as exc:
            raise forms.ValidationError(_refusal(exc)) from exc
        return data

    def validate_unique(self):
        """The services check what must be unique."""


@admin.register(ServiceInstance)
class ServiceInstanceAdmin(admin.ModelAdmin):
    form = ServiceInstanceForm
    list_display = ["name", "phone", "provider", "connection_badge", "is_active", "profile_name", "last_webhook_at"]
    list_filter = ["provider", "connection_status", "is_active"]
    search_fields = ["name", "phone", "profile_name"]
    readonly_fields = [
        "qr_display",
        "connection_status",
        "provider_state",
        "profile_name",
        "last_webhook_at",
        "state_changed_at",
        "last_error",
        "created_at",
        "updated_at",
    ]
    actions = ["refresh_status_action", "connect_action", "reconfigure_webhook_action", "sync_action"]
    change_form_template = "admin/instances/serviceinstance/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted_at__isnull=True)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Django wraps this view in a transaction; the form calls the provider, which must never
        # happen inside one (the services own their short transactions).
        return self._changeform_view(request, object_id, form_url, extra_context)

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ["name", "phone", "provider", "is_active"]})
        evolution = (_("Evolution API credentials"), {"fields": list(CREDENTIAL_FIELDS[Provider.EVOLUTION_API])})
        meta = (_("Meta Cloud API credentials"), {"fields": list(CREDENTIAL_FIELDS[Provider.OFFICIAL_META])})
        if obj is None:
            return [main, evolution, meta]
        state = (_("Connection"), {"fields": self.readonly_fields})
        credentials = evolution if obj.provider == Provider.EVOLUTION_API else meta
        return [main, credentials, state]

    def save_model(self, request, obj, form, change):
        # The form's clean() already saved through the services.
        obj.pk = form.saved.pk

    def save_related(self, request, form, formsets, change):
        """No related objects are edited here."""

    def delete_model(self, request, obj):
        services.delete_instance(instance=obj)

    def delete_queryset(self, request, queryset):
        for instance in queryset:
            services.delete_instance(instance=instance)

    @admin.display(description=_("connection"), ordering="connection_status")
    def connection_badge(self, obj):
        colours = {
            ConnectionStatus.CONNECTED: "#1e8e3e",
            ConnectionStatus.CONNECTING: "#b06000",
            ConnectionStatus.ERROR: "#c5221f",
        }
        return format_html(
            '<strong style="color:{}">{}</strong>',
            colours.get(obj.connection_status, "#5f6368"),
            obj.get_connection_status_display(),
        )

    @admin.display(description=_("QR code"))
    def qr_display(self, obj):
        if obj.connection_status == ConnectionStatus.CONNECTED:
            return _("Connected: no QR code needed.")
        if obj.provider != Provider.EVOLUTION_API:
            return _("Meta Cloud API numbers are not paired by QR code.")
        refresh = reverse("admin:instances_serviceinstance_qrcode", args=[obj.pk])
        if not obj.qr_code:
            return format_html('<a class="button" href="{}">{}</a>', refresh, _("Generate QR code"))
        pairing = (
            format_html("<p>{}: <code>{}</code></p>", _("Pairing code"), obj.pairing_code) if obj.pairing_code else ""
        )
        return format_html(
            '<img src="{}" alt="QR" width="264" height="264" style="image-rendering:pixelated">{}'
            '<p><a class="button" href="{}">{}</a></p>',
            obj.qr_code,
            pairing,
            refresh,
            _("New QR code"),
        )

    def get_urls(self):
        return [
            path(
                "<uuid:object_id>/qrcode/",
                self.admin_site.admin_view(self.qrcode_view),
                name="instances_serviceinstance_qrcode",
            ),
            *super().get_urls(),
        ]

    def qrcode_view(self, request, object_id):
        instance = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, instance):
            return HttpResponseRedirect(reverse("admin:index"))
        try:
            services.connect_instance(instance=instance)
        except (ApplicationError, ProviderError) as exc:
            self.message_user(request, _refusal(exc), level=messages.ERROR)
        return HttpResponseRedirect(reverse("admin:instances_serviceinstance_change", args=[object_id]))

    def _each(self, request, queryset, operation, done_message):
        done = 0
        for instance in queryset:
            try:
                operation(instance)
                done += 1
            except (ApplicationError, ProviderError) as exc:
                self.message_user(request, f"{instance}: {_refusal(exc)}", level=messages.ERROR)
        if done:
            self.message_user(request, done_message % {"count": done})

    @admin.action(description=_("Ask the provider for the connection status"))
    def refresh_status_action(self, request, queryset):
        self._each(
            request, queryset, lambda i: services.refresh_status(instance=i), _("%(count)d instance(s) checked.")
        )

    @admin.action(description=_("Connect (new QR code)"))
    def connect_action(self, request, queryset):
        self._each(
            request, queryset, lambda i: services.connect_instance(instance=i), _("%(count)d instance(s) connecting.")
        )

    @admin.action(description=_("Point the webhook at this server again"))
    def reconfigure_webhook_action(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda i: services.reconfigure_webhook(instance=i),
            _("%(count)d webhook(s) reconfigured."),
        )

    @admin.action(description=_("Synchronise contacts from the provider"))
    def sync_action(self, request, queryset):
        self._each(request, queryset, lambda i: services.start_sync(instance=i), _("%(count)d sync job(s) started."))


@admin.register(SyncJob)
class SyncJobAdmin(admin.ModelAdmin):
    list_display = [
        "instance",
        "status",
        "contacts_synced",
        "contacts_total",
        "chats_total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = [field.name for field in SyncJob._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
