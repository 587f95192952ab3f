from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import selectors
from conversations.message_serializers import MessageOutput, MessageSendInput
from conversations.services import outbound
from elsehub.api.io import paginated, validated
from elsehub.api.pagination import PagePagination
from elsehub.api.permissions import ADMIN, OPERATOR, SUPERVISOR, rule
from elsehub.api.schema import ErrorOutput

EVERYONE = rule(ADMIN, SUPERVISOR, OPERATOR)
TAGS = ["messages"]


class SendView(APIView):
    roles = {"POST": EVERYONE}

    @extend_schema(
        request=MessageSendInput,
        responses={
            201: MessageOutput,
            400: OpenApiResponse(
                ErrorOutput,
                description="Malformed JSON, the service instance is inactive, or (operators) the conversation "
                "is still in the queue: take it first.",
            ),
            403: OpenApiResponse(
                ErrorOutput, description="The role may not call this, or an operator used a via other than CHAT_MANUAL."
            ),
            404: OpenApiResponse(ErrorOutput, description="Conversation not found or closed."),
            422: OpenApiResponse(
                ErrorOutput, description="Invalid conversationId, content, via or quotedMessageId (one sentence each)."
            ),
        },
        tags=TAGS,
        summary="Send a text message",
        description=(
            "Stores the message as pending (the outbox) and answers 201 at once; a worker then hands it to the "
            "provider. The final status (sent with its externalId, uncertain when the provider did not answer, "
            "or failed with statusCode and statusReason) arrives as message:status events. Operators send only "
            "in conversations assigned to them."
        ),
    )
    def post(self, request: Request) -> Response:
        data = validated(MessageSendInput, request.data)
        try:
            conversation = selectors.get_conversation_for_user(
                user=request.user, conversation_id=data["conversationId"]
            )
        except Http404:
            raise outbound.conversation_unavailable() from None
        message = outbound.send_message(
            user=request.user,
            conversation=conversation,
            content=data["content"],
            via=data["via"],
            quoted_message_id=data.get("quotedMessageId"),
        )
        return Response(MessageOutput(message).data, status=status.HTTP_201_CREATED)


class ConversationMessagesView(APIView):
    roles = {"GET": EVERYONE}
    pagination_class = PagePagination

    @extend_schema(
        responses={200: MessageOutput(many=True)},
        tags=TAGS,
        summary="List a conversation's messages",
        description="Oldest first. The body is the bare array; X-Total-Count and Link carry the paging.",
    )
    def get(self, request: Request, conversation_id) -> Response:
        conversation = selectors.get_conversation_for_user(user=request.user, conversation_id=conversation_id)
        return paginated(
            self, request, selectors.list_messages_for_conversation(conversation=conversation), MessageOutput
        )


class MessageDetailView(APIView):
    roles = {"GET": EVERYONE}

    @extend_schema(responses={200: MessageOutput}, tags=TAGS, summary="Get a message")
    def get(self, request: Request, message_id) -> Response:
        return Response(MessageOutput(selectors.get_message_for_user(user=request.user, message_id=message_id)).data)
