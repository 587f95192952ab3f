from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts import services
from accounts.models import User
from elsehub.api.errors import ApplicationError


class _UserForm(forms.ModelForm):
    """Runs the services' checks in clean(), so a refusal shows on the form, not as an error page."""

    class Meta:
        model = User
        fields = ["name", "email", "role", "is_active"]

    def clean(self):
        data = super().clean()
        existing = self.instance if self.instance.pk else None
        try:
            services.check_user_change(
                user=existing, email=data.get("email"), role=data.get("role"), is_active=data.get("is_active")
            )
        except ApplicationError as exc:
            raise forms.ValidationError(str(exc.message)) from exc
        return data

    def validate_unique(self):
        """Uniqueness is checked by the service, with the contract's message."""


class UserCreationForm(_UserForm):
    password = forms.CharField(label=_("password"), widget=forms.PasswordInput, min_length=8, strip=False)


class UserChangeForm(_UserForm):
    new_password = forms.CharField(
        label=_("new password"),
        widget=forms.PasswordInput,
        min_length=8,
        strip=False,
        required=False,
        help_text=_("Leave empty to keep the current password."),
    )


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "role", "is_active", "is_online", "online_since", "created_at"]
    list_filter = ["role", "is_active", "is_online"]
    search_fields = ["name", "email"]
    ordering = ["name"]
    readonly_fields = ["is_online", "online_since", "last_conversation_assigned_at", "created_at", "updated_at"]
    actions = ["delete_selected_users"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted_at__isnull=True)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = UserChangeForm if obj else UserCreationForm
        # The model fields only (the password inputs are declared on the forms); a list, not None,
        # because the admin extends it into ``exclude`` for a view-only user.
        kwargs["fields"] = list(_UserForm.Meta.fields)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        fields = ["name", "email", "role", "is_active"]
        if obj is None:
            return [*fields, "password"]
        return [*fields, "new_password", *self.readonly_fields]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the stock bulk delete would bypass the soft delete
        return actions

    def save_model(self, request, obj, form, change):
        # Writes go through the services, so admin and API keep the same rules.
        data = form.cleaned_data
        if change:
            saved = services.update_user(
                user=User.objects.get(pk=obj.pk),
                name=data["name"],
                email=data["email"],
                role=data["role"],
                is_active=data["is_active"],
                password=data.get("new_password") or None,
            )
        else:
            saved = services.create_user(
                name=data["name"],
                email=data["email"],
                password=data["password"],
                role=data["role"],
                is_active=data["is_active"],
            )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.delete_user(user=obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:  # e.g. the last active admin: a message, not a 500
            self.message_user(request, str(exc.message), level=messages.ERROR)
            return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[object_id]))

    @admin.action(description=_("Delete selected users (history is kept)"), permissions=["delete"])
    def delete_selected_users(self, request, queryset):
        deleted = 0
        for user in queryset:
            try:
                services.delete_user(user=user)
                deleted += 1
            except ApplicationError as exc:
                self.message_user(request, f"{user}: {exc.message}", level=messages.ERROR)
        if deleted:
            self.message_user(request, _("%(count)d user(s) deleted.") % {"count": deleted})
