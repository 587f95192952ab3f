from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from elsehub.api.views import api_not_found, health

urlpatterns = [
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("accounts.urls")),
    path("api/", include("contacts.urls")),
    path("api/", include("instances.urls")),
    path("api/", include("conversations.urls")),
    path("api/", include("conversations.message_urls")),
    path("api/", include("webhooks.urls")),
    # Anything else under /api/ answers in the contract's error format, never an HTML page.
    re_path(r"^api(?:/.*)?$", api_not_found),
]
