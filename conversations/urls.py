from django.urls import path

from conversations.api import conversations, tabulations

urlpatterns = [
    path("conversations", conversations.ConversationListView.as_view()),
    path("conversations/queue", conversations.QueueView.as_view()),
    path("conversations/<uuid:conversation_id>", conversations.ConversationDetailView.as_view()),
    path("conversations/<uuid:conversation_id>/assign", conversations.AssignView.as_view()),
    path("conversations/<uuid:conversation_id>/close", conversations.CloseView.as_view()),
    path("tabulations", tabulations.TabulationListView.as_view()),
    path("tabulations/<uuid:tabulation_id>", tabulations.TabulationDetailView.as_view()),
]
