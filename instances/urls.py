from django.urls import path

from instances import api

prefix = "service-instances/<uuid:instance_id>"
urlpatterns = [
    path("service-instances", api.InstanceListView.as_view()),
    path("service-instances/orphans", api.OrphansView.as_view()),
    path(prefix, api.InstanceDetailView.as_view()),
    path(f"{prefix}/qrcode", api.QRCodeView.as_view()),
    path(f"{prefix}/connect", api.ConnectView.as_view()),
    path(f"{prefix}/status", api.StatusView.as_view()),
    path(f"{prefix}/disconnect", api.DisconnectView.as_view()),
    path(f"{prefix}/restart", api.RestartView.as_view()),
    path(f"{prefix}/recreate", api.RecreateView.as_view()),
    path(f"{prefix}/profile", api.ProfileView.as_view()),
    path(f"{prefix}/contacts", api.ProviderContactsView.as_view()),
    path(f"{prefix}/webhook", api.WebhookView.as_view()),
    path(f"{prefix}/webhook/reconfigure", api.WebhookReconfigureView.as_view()),
    path(f"{prefix}/sync", api.SyncView.as_view()),
    path(f"{prefix}/sync/<uuid:sync_id>", api.SyncJobView.as_view()),
]
