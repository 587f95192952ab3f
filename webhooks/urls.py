from django.urls import path

from webhooks import views

urlpatterns = [
    path("webhooks/meta", views.MetaWebhookView.as_view(), name="webhooks-meta"),
    path("webhooks/evolution", views.EvolutionWebhookView.as_view(), name="webhooks-evolution"),
    # Evolution's "webhook by events" appends the event to the URL (evolution.md §5.3).
    path("webhooks/evolution/<slug:event>", views.EvolutionEventWebhookView.as_view(), name="webhooks-evolution-event"),
]
