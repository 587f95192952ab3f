from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elsehub.api.io import paginated, validated
from elsehub.api.permissions import ADMIN, SUPERVISOR, rule
from instances import selectors, services
from instances.serializers import (
    ConnectInput,
    ConnectOutput,
    MessageStatusOutput,
    OrphanOutput,
    OrphansDeletedOutput,
    OrphansDeleteInput,
    ProfileOutput,
    QRCodeOutput,
    RemoteContactOutput,
    ServiceInstanceCreatedOutput,
    ServiceInstanceCreateInput,
    ServiceInstanceOutput,
    ServiceInstanceUpdateInput,
    StatusOutput,
    SyncInput,
    SyncJobOutput,
    SyncStartedOutput,
    WebhookOutput,
    qrcode_body,
)

STAFF = rule(ADMIN, SUPERVISOR)
ADMINS = rule(ADMIN)
TAGS = ["service instances"]


class InstanceListView(APIView):
    roles = {"GET": STAFF, "POST": ADMINS}

    @extend_schema(
        parameters=[OpenApiParameter("includeInactive", bool, description="Include inactive instances.")],
        responses={200: ServiceInstanceOutput(many=True)},
        tags=TAGS,
        summary="List service instances",
    )
    def get(self, request: Request) -> Response:
        include = request.query_params.get("includeInactive", "false").lower() in {"true", "1"}
        return paginated(self, request, selectors.list_instances(include_inactive=include), ServiceInstanceOutput)

    @extend_schema(
        request=ServiceInstanceCreateInput,
        responses={201: ServiceInstanceCreatedOutput},
        tags=TAGS,
        summary="Create a service instance",
        description="Evolution: creates the instance on the server, configures its webhook and returns the QR "
        "code. Meta: verifies the credentials against the Graph API before saving.",
    )
    def post(self, request: Request) -> Response:
        data = validated(ServiceInstanceCreateInput, request.data)
        instance = services.create_instance(
            name=data["name"], phone=data["phone"], provider=data["provider"], credentials=data["credentials"]
        )
        return Response(ServiceInstanceCreatedOutput(instance).data, status=status.HTTP_201_CREATED)


class InstanceDetailView(APIView):
    roles = {"GET": STAFF, "PATCH": ADMINS, "DELETE": ADMINS}

    @extend_schema(responses={200: ServiceInstanceOutput}, tags=TAGS, summary="Get a service instance")
    def get(self, request: Request, instance_id) -> Response:
        return Response(ServiceInstanceOutput(selectors.get_instance(instance_id=instance_id)).data)

    @extend_schema(
        request=ServiceInstanceUpdateInput,
        responses={200: ServiceInstanceOutput},
        tags=TAGS,
        summary="Update a service instance",
        description="Credentials are merged over the stored ones; omitted or masked values are kept.",
    )
    def patch(self, request: Request, instance_id) -> Response:
        instance = selectors.get_instance(instance_id=instance_id)
        data = validated(ServiceInstanceUpdateInput, request.data)
        instance = services.update_instance(
            instance=instance,
            name=data.get("name"),
            phone=data.get("phone"),
            provider=data.get("provider"),
            credentials=data.get("credentials"),
            is_active=data.get("isActive"),
        )
        return Response(ServiceInstanceOutput(instance).data)

    @extend_schema(responses={204: None}, tags=TAGS, summary="Delete a service instance (not on the provider)")
    def delete(self, request: Request, instance_id) -> Response:
        services.delete_instance(instance=selectors.get_instance(instance_id=instance_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class QRCodeView(APIView):
    roles = {"GET": STAFF}

    @extend_schema(responses={200: QRCodeOutput}, tags=TAGS, summary="QR code to pair the number (Evolution)")
    def get(self, request: Request, instance_id) -> Response:
        instance = services.current_qrcode(instance=selectors.get_instance(instance_id=instance_id))
        body = qrcode_body(instance)
        body["instanceName"] = instance.credentials.get("instanceName")
        return Response(body)


class ConnectView(APIView):
    roles = {"POST": STAFF}

    @extend_schema(request=ConnectInput, responses={200: ConnectOutput}, tags=TAGS, summary="Start pairing")
    def post(self, request: Request, instance_id) -> Response:
        instance = selectors.get_instance(instance_id=instance_id)
        data = validated(ConnectInput, request.data)
        instance = services.connect_instance(instance=instance, phone_number=data.get("phoneNumber"))
        return Response(
            {"message": _("Connection started"), "status": instance.connection_status, "qrcode": qrcode_body(instance)}
        )


class StatusView(APIView):
    roles = {"GET": STAFF}

    @extend_schema(responses={200: StatusOutput}, tags=TAGS, summary="Connection status, asked of the provider")
    def get(self, request: Request, instance_id) -> Response:
        instance = services.refresh_status(instance=selectors.get_instance(instance_id=instance_id))
        return Response({"state": instance.provider_state, "status": instance.connection_status})


class DisconnectView(APIView):
    roles = {"POST": ADMINS}

    @extend_schema(request=None, responses={200: MessageStatusOutput}, tags=TAGS, summary="Log the number out")
    def post(self, request: Request, instance_id) -> Response:
        instance = services.disconnect_instance(instance=selectors.get_instance(instance_id=instance_id))
        return Response({"message": _("Instance disconnected"), "status": instance.connection_status})


class RestartView(APIView):
    roles = {"POST": STAFF}

    @extend_schema(request=None, responses={200: MessageStatusOutput}, tags=TAGS, summary="Restart the session")
    def post(self, request: Request, instance_id) -> Response:
        instance = services.restart_instance(instance=selectors.get_instance(instance_id=instance_id))
        return Response({"message": _("Instance restarted"), "status": instance.connection_status})


class RecreateView(APIView):
    roles = {"POST": ADMINS}

    @extend_schema(
        request=None,
        responses={200: ServiceInstanceCreatedOutput},
        tags=TAGS,
        summary="Delete and create the remote instance again (Evolution)",
    )
    def post(self, request: Request, instance_id) -> Response:
        instance = services.recreate_instance(instance=selectors.get_instance(instance_id=instance_id))
        return Response(ServiceInstanceCreatedOutput(instance).data)


class ProfileView(APIView):
    roles = {"GET": STAFF}

    @extend_schema(responses={200: ProfileOutput}, tags=TAGS, summary="The number's WhatsApp profile")
    def get(self, request: Request, instance_id) -> Response:
        profile = services.fetch_profile(instance=selectors.get_instance(instance_id=instance_id))
        return Response(
            {
                "name": profile.name,
                "number": profile.phone,
                "profilePictureUrl": profile.picture_url,
                "status": profile.about,
                "isBusiness": profile.is_business,
            }
        )


class ProviderContactsView(APIView):
    roles = {"GET": STAFF}

    @extend_schema(responses={200: RemoteContactOutput(many=True)}, tags=TAGS, summary="The provider's contacts")
    def get(self, request: Request, instance_id) -> Response:
        contacts = services.fetch_provider_contacts(instance=selectors.get_instance(instance_id=instance_id))
        rows = [
            {
                "id": contact.chat_id,
                "phone": contact.phone,
                "name": contact.name,
                "profilePictureUrl": contact.picture_url,
                "isGroup": contact.is_group,
            }
            for contact in contacts
        ]
        return paginated(self, request, rows, RemoteContactOutput)


class WebhookView(APIView):
    roles = {"GET": STAFF}

    @extend_schema(responses={200: WebhookOutput}, tags=TAGS, summary="Webhook configured on the provider")
    def get(self, request: Request, instance_id) -> Response:
        body = services.webhook_status(instance=selectors.get_instance(instance_id=instance_id))
        return Response(WebhookOutput(body).data)


class WebhookReconfigureView(APIView):
    roles = {"POST": ADMINS}

    @extend_schema(request=None, responses={200: WebhookOutput}, tags=TAGS, summary="Point the webhook here again")
    def post(self, request: Request, instance_id) -> Response:
        body = services.reconfigure_webhook(instance=selectors.get_instance(instance_id=instance_id))
        return Response({"message": _("Webhook reconfigured"), **WebhookOutput(body).data})


class SyncView(APIView):
    roles = {"POST": STAFF}

    @extend_schema(request=SyncInput, responses={202: SyncStartedOutput}, tags=TAGS, summary="Start a sync job")
    def post(self, request: Request, instance_id) -> Response:
        instance = selectors.get_instance(instance_id=instance_id)
        data = validated(SyncInput, request.data)
        job = services.start_sync(instance=instance, full_sync=data["fullSync"])
        return Response({"message": _("Synchronisation started"), "syncId": str(job.id)}, status=202)


class SyncJobView(APIView):
    roles = {"GET": STAFF}

    @extend_schema(responses={200: SyncJobOutput}, tags=TAGS, summary="Progress of a sync job")
    def get(self, request: Request, instance_id, sync_id) -> Response:
        instance = selectors.get_instance(instance_id=instance_id)
        return Response(SyncJobOutput(selectors.get_sync_job(instance=instance, sync_id=sync_id)).data)


class OrphansView(APIView):
    roles = {"GET": ADMINS, "DELETE": ADMINS}

    @extend_schema(responses={200: OrphanOutput(many=True)}, tags=TAGS, summary="Remote instances unknown here")
    def get(self, request: Request) -> Response:
        return paginated(self, request, services.list_orphans(), OrphanOutput)

    @extend_schema(
        request=OrphansDeleteInput,
        responses={200: OrphansDeletedOutput},
        tags=TAGS,
        summary="Delete orphans on the Evolution servers",
        description="Without a body every orphan listed by GET is deleted; `instanceNames` limits it.",
    )
    def delete(self, request: Request) -> Response:
        data = validated(OrphansDeleteInput, request.data) if request.data else {}
        deleted = services.delete_orphans(names=data.get("instanceNames"))
        return Response({"deleted": OrphanOutput(deleted, many=True).data, "count": len(deleted)})
