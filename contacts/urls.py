from django.urls import path

from contacts import api

urlpatterns = [
    path("contacts", api.ContactListView.as_view()),
    path("contacts/import/csv", api.ContactImportView.as_view()),
    path("contacts/<uuid:contact_id>", api.ContactDetailView.as_view()),
]
