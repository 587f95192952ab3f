import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from webhooks import services
from webhooks.models import WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Read-only inbox: what providers sent, how processing went, and a replay."""

    list_display = ["id", "provider", "service_instance", "event_type", "state", "attempts", "received_at"]
    list_filter = ["state", "provider", "service_instance"]
    list_select_related = ["service_instance"]
    search_fields = ["event_type"]
    fields = [
        "provider",
        "service_instance",
        "event_type",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "received_at",
        "processed_at",
        "dedupe_key",
        "payload_pretty",
    ]
    readonly_fields = fields
    actions = ["replay_action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("webhooks.change_webhookevent")

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: WebhookEvent):
        pretty = json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre style="white-space:pre-wrap;max-height:40em;overflow:auto">{}</pre>', pretty)

    @admin.action(description=_("Replay"), permissions=["replay"])
    def replay_action(self, request, queryset):
        count = services.replay_events(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, _("%(count)d webhook event(s) queued again.") % {"count": count})
