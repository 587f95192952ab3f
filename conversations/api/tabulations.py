from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import selectors
from conversations.serializers import TabulationCreateInput, TabulationOutput, TabulationUpdateInput
from conversations.services import tabulations as services
from elsehub.api.io import paginated, validated
from elsehub.api.pagination import PagePagination
from elsehub.api.permissions import ADMIN, OPERATOR, SUPERVISOR, rule
from elsehub.api.schema import ErrorOutput

EVERYONE = rule(ADMIN, SUPERVISOR, OPERATOR)
MANAGERS = rule(ADMIN, SUPERVISOR)
TAGS = ["tabulations"]
NAME_TAKEN = OpenApiResponse(ErrorOutput, description="A tabulation with this name (any case) already exists.")


class TabulationListView(APIView):
    roles = {"GET": EVERYONE, "POST": MANAGERS}
    pagination_class = PagePagination

    @extend_schema(responses={200: TabulationOutput(many=True)}, tags=TAGS, summary="List tabulations")
    def get(self, request: Request) -> Response:
        return paginated(self, request, selectors.list_tabulations(), TabulationOutput)

    @extend_schema(
        request=TabulationCreateInput,
        responses={201: TabulationOutput, 409: NAME_TAKEN},
        tags=TAGS,
        summary="Create a tabulation",
    )
    def post(self, request: Request) -> Response:
        data = validated(TabulationCreateInput, request.data)
        tabulation = services.create_tabulation(name=data["name"])
        return Response(TabulationOutput(tabulation).data, status=status.HTTP_201_CREATED)


class TabulationDetailView(APIView):
    roles = {"GET": EVERYONE, "PATCH": MANAGERS, "DELETE": MANAGERS}

    @extend_schema(responses={200: TabulationOutput}, tags=TAGS, summary="Get a tabulation")
    def get(self, request: Request, tabulation_id) -> Response:
        return Response(TabulationOutput(selectors.get_tabulation(tabulation_id=tabulation_id)).data)

    @extend_schema(
        request=TabulationUpdateInput,
        responses={200: TabulationOutput, 409: NAME_TAKEN},
        tags=TAGS,
        summary="Rename a tabulation",
    )
    def patch(self, request: Request, tabulation_id) -> Response:
        tabulation = selectors.get_tabulation(tabulation_id=tabulation_id)
        data = validated(TabulationUpdateInput, request.data)
        return Response(TabulationOutput(services.update_tabulation(tabulation=tabulation, name=data.get("name"))).data)

    @extend_schema(
        responses={204: None},
        tags=TAGS,
        summary="Delete a tabulation",
        description="The tabulation disappears from lists and lookups; conversations it closed keep it in "
        "their history.",
    )
    def delete(self, request: Request, tabulation_id) -> Response:
        services.delete_tabulation(tabulation=selectors.get_tabulation(tabulation_id=tabulation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
