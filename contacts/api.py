from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts import importing, selectors, services
from contacts.serializers import (
    ContactCreateInput,
    ContactImportInput,
    ContactImportOutput,
    ContactListParams,
    ContactOutput,
    ContactUpdateInput,
)
from elsehub.api.io import paginated, validated
from elsehub.api.pagination import PagePagination
from elsehub.api.permissions import ADMIN, OPERATOR, SUPERVISOR, rule
from elsehub.api.schema import ErrorOutput

EVERYONE = rule(ADMIN, SUPERVISOR, OPERATOR)
# Room for the multipart boundaries and headers around a file of exactly the limit.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class ContactListView(APIView):
    roles = {"GET": EVERYONE, "POST": EVERYONE}
    pagination_class = PagePagination

    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="Name (any case, with or without accents) or phone.")],
        responses={200: ContactOutput(many=True)},
        tags=["contacts"],
        summary="List contacts",
    )
    def get(self, request: Request) -> Response:
        params = validated(ContactListParams, request.query_params)
        return paginated(self, request, selectors.list_contacts(search=params.get("search")), ContactOutput)

    @extend_schema(
        request=ContactCreateInput,
        responses={201: ContactOutput, 409: OpenApiResponse(ErrorOutput, description="Phone already exists.")},
        tags=["contacts"],
        summary="Create a contact",
    )
    def post(self, request: Request) -> Response:
        data = validated(ContactCreateInput, request.data)
        contact = services.create_contact(
            name=data["name"],
            phone=data["phone"],
            cpf=data.get("cpf"),
            additional1=data.get("additional1"),
            additional2=data.get("additional2"),
        )
        return Response(ContactOutput(contact).data, status=status.HTTP_201_CREATED)


class ContactDetailView(APIView):
    roles = {"GET": EVERYONE, "PATCH": rule(ADMIN, SUPERVISOR), "DELETE": rule(ADMIN, SUPERVISOR)}

    @extend_schema(responses={200: ContactOutput}, tags=["contacts"], summary="Get a contact")
    def get(self, request: Request, contact_id) -> Response:
        return Response(ContactOutput(selectors.get_contact(contact_id=contact_id)).data)

    @extend_schema(
        request=ContactUpdateInput,
        responses={200: ContactOutput, 409: OpenApiResponse(ErrorOutput, description="Phone already exists.")},
        tags=["contacts"],
        summary="Update a contact",
        description="Only the fields sent change; null clears cpf, additional1 or additional2.",
    )
    def patch(self, request: Request, contact_id) -> Response:
        contact = selectors.get_contact(contact_id=contact_id)
        data = validated(ContactUpdateInput, request.data, current_phone=contact.phone)
        return Response(ContactOutput(services.update_contact(contact=contact, **data)).data)

    @extend_schema(responses={204: None}, tags=["contacts"], summary="Delete a contact")
    def delete(self, request: Request, contact_id) -> Response:
        services.delete_contact(contact=selectors.get_contact(contact_id=contact_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _declared_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class ContactImportView(APIView):
    roles = {"POST": EVERYONE}

    @extend_schema(
        request={"multipart/form-data": ContactImportInput},
        responses={
            200: ContactImportOutput,
            400: OpenApiResponse(
                ErrorOutput, description="No file, not a CSV, empty or unreadable, or a required column is missing."
            ),
            413: OpenApiResponse(ErrorOutput, description="The file exceeds 5 MB."),
        },
        tags=["contacts"],
        summary="Import contacts from a CSV file",
        description=(
            "Columns name and phone are required; cpf, additional1 and additional2 are optional (Portuguese "
            "headers such as nome, telefone, celular work too). UTF-8 or Windows-1252, separated by , or ;. "
            "Good rows are saved even when others fail; each failed row is reported with its spreadsheet row "
            "number (the header is row 1)."
        ),
    )
    def post(self, request: Request) -> Response:
        # Refuse an oversized body before the multipart parser streams it anywhere.
        if _declared_length(request) > importing.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES:
            raise importing.FileTooLarge()
        upload = request.FILES.get("file")
        if upload is None:
            raise importing.missing_file_error()
        report = importing.import_contacts_csv(file=upload)
        return Response(ContactImportOutput(report).data)
