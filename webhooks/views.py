"""Provider webhooks (contract section 10): verify, store, answer 200 at once.

Public endpoints: the credential is the provider's signature or our per-instance secret, never a
user token. Once a call is authenticated the answer is 200 ``{"success": true}`` whatever the
body holds, because a 4xx makes the provider drop the event for good (evolution.md §5.5); a
database failure is a 503, which both providers retry.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elsehub.api.errors import error_body
from elsehub.api.permissions import PUBLIC
from elsehub.api.schema import ErrorOutput
from webhooks import envelopes, services, verification

logger = logging.getLogger(__name__)

TAGS = ["webhooks"]
SUCCESS = {"success": True}
SuccessOutput = inline_serializer("WebhookSuccessOutput", {"success": serializers.BooleanField()})


class _AnyAccept(BaseContentNegotiation):
    """A provider's Accept header must never earn it a 406: always the first renderer (JSON)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _refused(message: str) -> Response:
    return Response(error_body(403, message), status=403)


class WebhookView(APIView):
    authentication_classes = ()  # no user credentials: a stray Authorization header is ignored
    parser_classes = (JSONParser,)  # documentation only: the views read the raw body themselves
    content_negotiation_class = _AnyAccept

    def handle_exception(self, exc):
        if isinstance(exc, DatabaseError):
            logger.exception("webhooks.receive.database_error", extra={"path": self.request.path})
            return Response(
                error_body(503, _("Service temporarily unavailable; try again later")),
                status=503,
                headers={"Retry-After": "10"},
            )
        if isinstance(exc, RequestDataTooBig):
            logger.error("webhooks.receive.body_too_large", extra={"path": self.request.path})
            return Response(error_body(413, _("The request body is too large")), status=413)
        return super().handle_exception(exc)


_FORBIDDEN = {403: OpenApiResponse(ErrorOutput, description="Missing or invalid credentials; nothing was stored.")}
_UNAVAILABLE = {503: OpenApiResponse(ErrorOutput, description="Could not store the event; the provider retries.")}


class MetaWebhookView(WebhookView):
    roles = {"GET": PUBLIC, "POST": PUBLIC}

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_meta_verify",
        summary="Meta webhook verification",
        description=(
            "Echoes `hub.challenge` as text/plain when `hub.mode` is `subscribe` and `hub.verify_token` is "
            "META_VERIFY_TOKEN or a Meta instance's verify token."
        ),
        parameters=[
            OpenApiParameter("hub.mode", str, required=True, description="Must be `subscribe`."),
            OpenApiParameter("hub.verify_token", str, required=True),
            OpenApiParameter("hub.challenge", str, required=True, description="Echoed back."),
        ],
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            403: OpenApiResponse(ErrorOutput, description="Wrong mode or verify token."),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        challenge = verification.meta_challenge(request.query_params)
        if challenge is None:
            logger.warning("webhooks.meta.verify_failed", extra={"mode": request.query_params.get("hub.mode")})
            return _refused(_("Invalid verification token"))
        return HttpResponse(challenge, content_type="text/plain; charset=utf-8")

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_meta_receive",
        summary="Receive a Meta (WhatsApp Cloud API) webhook",
        description=(
            "Requires `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret). The batch is "
            "stored, one event per phone number, and processed in the background."
        ),
        request=OpenApiTypes.OBJECT,
        responses={200: SuccessOutput, **_FORBIDDEN, **_UNAVAILABLE},
    )
    def post(self, request: Request) -> Response:
        raw_body = request.body
        signature = request.headers.get(verification.META_SIGNATURE_HEADER)
        if not signature:
            logger.warning("webhooks.meta.missing_signature")
            return _refused(_("Invalid webhook signature"))
        payload = envelopes.load_json(raw_body)
        sender = verification.meta_sender(
            raw_body=raw_body, signature=signature, phone_number_ids=envelopes.meta_phone_number_ids(payload)
        )
        if sender is None:
            logger.warning("webhooks.meta.invalid_signature")
            return _refused(_("Invalid webhook signature"))
        services.receive_meta(sender=sender, payload=payload, raw_body=raw_body)
        return Response(SUCCESS)


_EVOLUTION_DESCRIPTION = (
    "Authenticated by the instance's `x-elsehub-secret` header (set by Elsehub on the Evolution webhook), or by "
    "the envelope's `apikey` matching the API token of the instance named in `instance`."
)
_SECRET_PARAMETER = OpenApiParameter(
    "x-elsehub-secret", str, OpenApiParameter.HEADER, description="The instance's webhook secret."
)


class EvolutionWebhookView(WebhookView):
    roles = {"POST": PUBLIC}

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_evolution_receive",
        summary="Receive an Evolution API webhook",
        description=_EVOLUTION_DESCRIPTION,
        parameters=[_SECRET_PARAMETER],
        request=OpenApiTypes.OBJECT,
        responses={200: SuccessOutput, **_FORBIDDEN, **_UNAVAILABLE},
    )
    def post(self, request: Request, event: str | None = None) -> Response:
        raw_body = request.body
        payload = envelopes.load_json(raw_body)
        instance = verification.evolution_instance_for(
            secret=request.headers.get(verification.EVOLUTION_SECRET_HEADER), payload=payload
        )
        if instance is None:
            logger.warning("webhooks.evolution.forged", extra={"event": event or ""})
            return _refused(_("Invalid webhook credentials"))
        services.receive_evolution(instance=instance, payload=payload, raw_body=raw_body, slug=event)
        return Response(SUCCESS)


class EvolutionEventWebhookView(EvolutionWebhookView):
    """The same endpoint with Evolution's "webhook by events" on: the event is appended to the URL."""

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_evolution_receive_by_event",
        summary="Receive an Evolution API webhook (webhook by events)",
        description=_EVOLUTION_DESCRIPTION,
        parameters=[
            OpenApiParameter("event", str, OpenApiParameter.PATH, description="e.g. `messages-upsert`."),
            _SECRET_PARAMETER,
        ],
        request=OpenApiTypes.OBJECT,
        responses={200: SuccessOutput, **_FORBIDDEN, **_UNAVAILABLE},
    )
    def post(self, request: Request, event: str | None = None) -> Response:
        return super().post(request, event=event)
