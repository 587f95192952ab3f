from django.urls import path

from conversations.api import messages

urlpatterns = [
    path("messages/send", messages.SendView.as_view()),
    path("messages/conversation/<uuid:conversation_id>", messages.ConversationMessagesView.as_view()),
    path("messages/<uuid:message_id>", messages.MessageDetailView.as_view()),
]
