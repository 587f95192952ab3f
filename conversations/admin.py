"""Django admin for supervisors: conversations (read-only, closed through the service), tabulations
(written through the services, soft deleted) and the closures the reports read.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts.models import Contact
from contacts.selectors import search_filter
from conversations import selectors
from conversations.models import Conversation, ConversationClosure, Message, Tabulation
from conversations.services import conversations as conversation_services
from conversations.services import tabulations as tabulation_services
from elsehub.api.errors import ApplicationError


def _tabulation_label(tabulation: Tabulation | None) -> str:
    if tabulation is None:
        return "-"
    if tabulation.deleted_at is not None:
        return _("%(name)s (deleted)") % {"name": tabulation.name}
    return tabulation.name


class ReadOnlyAdminMixin:
    """History is written by the services only: view, never add, change or delete here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# ------------------------------------------------------------------------------
# Conversations
# ------------------------------------------------------------------------------


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Message
    fields = ["timestamp", "direction", "via", "sender", "kind", "content", "media_type", "status"]
    readonly_fields = fields
    ordering = ["timestamp", "created_at"]
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sender")


class CloseConversationsForm(forms.Form):
    tabulation = forms.ModelChoiceField(
        label=Tabulation._meta.verbose_name, queryset=Tabulation.objects.none(), empty_label=None
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tabulation"].queryset = selectors.list_tabulations()


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["contact", "service_instance", "operator", "status", "start_time", "last_message_at"]
    list_filter = ["status", "service_instance", "operator"]
    list_select_related = ["contact", "service_instance", "operator"]
    search_fields = ["contact__name", "contact__phone"]
    date_hierarchy = "start_time"
    ordering = ["-start_time"]
    fields = [
        "contact",
        "service_instance",
        "operator",
        "status",
        "start_time",
        "assigned_at",
        "end_time",
        "tabulation_display",
        "message_count",
        "last_message_at",
        "last_inbound_at",
        "last_outbound_at",
    ]
    readonly_fields = fields
    inlines = [MessageInline]
    actions = ["close_with_tabulation"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("contact", "service_instance", "operator", "tabulation")

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            # The stock search is accent-sensitive; add the contacts' search (name or phone digits).
            results |= queryset.filter(contact__in=Contact.objects.filter(search_filter(search_term)))
        return results, may_have_duplicates

    @admin.display(description=Tabulation._meta.verbose_name)
    def tabulation_display(self, obj):
        return _tabulation_label(obj.tabulation)

    def has_close_permission(self, request):
        return request.user.has_perm("conversations.change_conversation")

    @admin.action(description=gettext_lazy("Close selected conversations with a tabulation"), permissions=["close"])
    def close_with_tabulation(self, request, queryset):
        form = CloseConversationsForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            closed = 0
            for conversation in queryset:
                try:
                    conversation_services.close_conversation(
                        conversation=conversation, tabulation=form.cleaned_data["tabulation"], closed_by=request.user
                    )
                    closed += 1
                except ApplicationError as exc:
                    self.message_user(request, f"{conversation}: {exc.message}", level=messages.ERROR)
            if closed:
                self.message_user(request, _("%(count)d conversation(s) closed.") % {"count": closed})
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Close conversations"),
            "form": form,
            "conversations": queryset,
            "action": "close_with_tabulation",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/conversations/conversation/close_with_tabulation.html", context)


# ------------------------------------------------------------------------------
# Tabulations
# ------------------------------------------------------------------------------


class TabulationForm(forms.ModelForm):
    """Runs the services' check in clean(), so a duplicate name shows on the form."""

    class Meta:
        model = Tabulation
        fields = ["name"]

    def clean(self):
        data = super().clean()
        if data.get("name"):
            try:
                tabulation_services.check_tabulation_change(
                    tabulation=self.instance if not self.instance._state.adding else None, name=data["name"]
                )
            except ApplicationError as exc:
                self.add_error("name", str(exc.message))
        return data

    def validate_unique(self):
        """Uniqueness is checked by the service, with the contract's message."""


class TabulationStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", _("In use")), ("deleted", _("Deleted"))]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(Tabulation)
class TabulationAdmin(admin.ModelAdmin):
    """Deleted tabulations stay listed (read-only): closed conversations still point at them."""

    form = TabulationForm
    list_display = ["name", "is_live", "created_at", "deleted_at"]
    list_filter = [TabulationStateFilter]
    search_fields = ["name"]
    ordering = ["name"]
    readonly_fields = ["created_at", "updated_at", "deleted_at"]

    @admin.display(description=gettext_lazy("in use"), boolean=True)
    def is_live(self, obj):
        return obj.deleted_at is None

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.deleted_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.deleted_at is not None:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # Writes go through the services, so admin and API keep the same rules.
        if change:
            saved = tabulation_services.update_tabulation(tabulation=obj, name=form.cleaned_data["name"])
        else:
            saved = tabulation_services.create_tabulation(name=form.cleaned_data["name"])
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        tabulation_services.delete_tabulation(tabulation=obj)

    def delete_queryset(self, request, queryset):
        for tabulation in queryset:
            tabulation_services.delete_tabulation(tabulation=tabulation)

    def get_deleted_objects(self, objs, request):
        # A soft delete removes nothing else, so the conversations that PROTECT the row must not
        # block it (the stock confirmation would refuse and list them).
        objs = list(objs)
        return [str(obj) for obj in objs], {self.opts.verbose_name_plural: len(objs)}, set(), []


# ------------------------------------------------------------------------------
# Closures
# ------------------------------------------------------------------------------


@admin.register(ConversationClosure)
class ConversationClosureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "conversation",
        "operator",
        "closed_by",
        "tabulation_display",
        "service_instance",
        "ended_at",
        "duration_seconds",
        "first_response_seconds",
        "avg_operator_response_seconds",
        "avg_customer_response_seconds",
        "inbound_count",
        "outbound_count",
    ]
    list_filter = ["tabulation", "service_instance", "operator", "ended_at"]
    list_select_related = [
        "conversation__contact",
        "conversation__service_instance",
        "operator",
        "closed_by",
        "tabulation",
        "service_instance",
    ]
    date_hierarchy = "ended_at"
    ordering = ["-ended_at"]

    @admin.display(description=Tabulation._meta.verbose_name, ordering="tabulation__name")
    def tabulation_display(self, obj):
        return _tabulation_label(obj.tabulation)
