from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts import selectors as contact_selectors
from conversations import selectors
from conversations.models import ChatStatus
from conversations.serializers import (
    ConversationAssignInput,
    ConversationCloseInput,
    ConversationCreateInput,
    ConversationListParams,
    ConversationOutput,
)
from conversations.services import conversations as services
from elsehub.api.io import paginated, validated
from elsehub.api.pagination import PagePagination
from elsehub.api.permissions import ADMIN, OPERATOR, SUPERVISOR, rule
from elsehub.api.schema import ErrorOutput
from instances import selectors as instance_selectors

EVERYONE = rule(ADMIN, SUPERVISOR, OPERATOR)
TAGS = ["conversations"]


class ConversationListView(APIView):
    roles = {"GET": EVERYONE, "POST": EVERYONE}
    pagination_class = PagePagination

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=ChatStatus.values),
            OpenApiParameter("operatorId", OpenApiTypes.UUID),
            OpenApiParameter("serviceInstanceId", OpenApiTypes.UUID),
            OpenApiParameter("search", str, description="Contact name (any case, with or without accents) or phone."),
        ],
        responses={200: ConversationOutput(many=True)},
        tags=TAGS,
        summary="List conversations",
        description="Operators see only their own conversations (the queue has its own list); "
        "supervisors and admins see all. Most recent activity first.",
    )
    def get(self, request: Request) -> Response:
        params = validated(ConversationListParams, request.query_params)
        conversations = selectors.list_conversations_for_user(
            user=request.user,
            status=params.get("status"),
            operator_id=params.get("operatorId"),
            service_instance_id=params.get("serviceInstanceId"),
            search=params.get("search"),
        )
        return paginated(self, request, conversations, ConversationOutput)

    @extend_schema(
        request=ConversationCreateInput,
        responses={
            201: ConversationOutput,
            400: OpenApiResponse(ErrorOutput, description="The service instance is inactive."),
            404: OpenApiResponse(ErrorOutput, description="Contact, service instance or operator not found."),
            409: OpenApiResponse(ErrorOutput, description="The contact already has an open conversation there."),
        },
        tags=TAGS,
        summary="Open a conversation",
        description="An operator who opens a conversation becomes its operator; supervisors and admins open it "
        "in the queue unless they pass operatorId.",
    )
    def post(self, request: Request) -> Response:
        data = validated(ConversationCreateInput, request.data)
        contact = contact_selectors.get_contact(contact_id=data["contactId"])
        instance = instance_selectors.get_instance(instance_id=data["serviceInstanceId"])
        operator = selectors.get_assignable_user(user_id=data["operatorId"]) if data.get("operatorId") else None
        conversation = services.create_conversation(
            contact=contact, service_instance=instance, operator=operator, created_by=request.user
        )
        return Response(ConversationOutput(conversation).data, status=status.HTTP_201_CREATED)


class QueueView(APIView):
    roles = {"GET": EVERYONE}
    pagination_class = PagePagination

    @extend_schema(
        responses={200: ConversationOutput(many=True)},
        tags=TAGS,
        summary="Conversations waiting for an operator",
        description="Open conversations nobody has taken, on active service instances, oldest first.",
    )
    def get(self, request: Request) -> Response:
        return paginated(self, request, selectors.list_queue(user=request.user), ConversationOutput)


class ConversationDetailView(APIView):
    roles = {"GET": EVERYONE}

    @extend_schema(
        responses={200: ConversationOutput},
        tags=TAGS,
        summary="Get a conversation",
        description="Operators may read their own conversations and the queue; any other id is 404.",
    )
    def get(self, request: Request, conversation_id) -> Response:
        conversation = selectors.get_conversation_for_user(user=request.user, conversation_id=conversation_id)
        return Response(ConversationOutput(conversation).data)


class AssignView(APIView):
    roles = {"PATCH": EVERYONE}

    @extend_schema(
        request=ConversationAssignInput,
        responses={
            200: ConversationOutput,
            400: OpenApiResponse(ErrorOutput, description="The conversation is already assigned or closed."),
            403: OpenApiResponse(ErrorOutput, description="An operator may only take a conversation for themselves."),
            404: OpenApiResponse(ErrorOutput, description="Conversation not found, or no such active user."),
        },
        tags=TAGS,
        summary="Assign a conversation",
        description="Operators take a queued conversation for themselves (operatorId must be their own id); "
        "one that someone else took first is 400, like a closed one. Supervisors and admins give an open "
        "conversation to any active user, and may reassign one that is already taken.",
    )
    def patch(self, request: Request, conversation_id) -> Response:
        conversation = selectors.get_conversation_to_assign(user=request.user, conversation_id=conversation_id)
        data = validated(ConversationAssignInput, request.data)
        operator = selectors.get_assignable_user(user_id=data["operatorId"])
        conversation = services.assign_conversation(
            conversation=conversation, operator=operator, assigned_by=request.user
        )
        return Response(ConversationOutput(conversation).data)


class CloseView(APIView):
    roles = {"POST": EVERYONE}

    @extend_schema(
        request=ConversationCloseInput,
        responses={
            204: None,
            400: OpenApiResponse(ErrorOutput, description="The conversation is already closed."),
            403: OpenApiResponse(ErrorOutput, description="An operator must take a queued conversation first."),
            404: OpenApiResponse(ErrorOutput, description="Conversation or tabulation not found."),
        },
        tags=TAGS,
        summary="Close a conversation with a tabulation",
        description="Operators close only conversations assigned to them. Stores the closure's duration and "
        "response times for the reports.",
    )
    def post(self, request: Request, conversation_id) -> Response:
        conversation = selectors.get_conversation_for_user(user=request.user, conversation_id=conversation_id)
        data = validated(ConversationCloseInput, request.data)
        tabulation = selectors.get_tabulation(tabulation_id=data["tabulationId"])
        services.close_conversation(conversation=conversation, tabulation=tabulation, closed_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
