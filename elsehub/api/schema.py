"""OpenAPI generation that documents each operation's roles and the contract's error bodies."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from elsehub.api.permissions import PUBLIC, describe_rule, required_roles


class BearerTokenScheme(SimpleJWTScheme):
    """Declares the bearer access token, so that /api/docs/ offers "Authorize" for protected operations."""

    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"


class ErrorOutput(serializers.Serializer):
    statusCode = serializers.IntegerField()
    message = serializers.JSONField(help_text="A sentence, or a list of sentences for 422.")
    error = serializers.CharField()


class RoleAwareAutoSchema(AutoSchema):
    def _roles(self):
        return required_roles(self.view, self.method)

    def get_operation(self, *args, **kwargs):
        # Not get_description(): @extend_schema(description=...) overrides that in a subclass.
        operation = super().get_operation(*args, **kwargs)
        if operation is not None:
            roles = f"**Roles:** {describe_rule(self._roles())}."
            operation["description"] = f"{operation.get('description', '')}\n\n{roles}".strip()
        return operation

    def _get_response_bodies(self, direction="response"):
        bodies = super()._get_response_bodies(direction)
        errors = {"429": "Rate limit exceeded."}
        if self.method in ("POST", "PUT", "PATCH"):
            errors["400"] = "Malformed JSON body."
            errors["422"] = "Validation failed: one sentence per invalid field."
        if self._roles() != PUBLIC:
            errors["401"] = "Invalid, expired or missing token."
            errors["403"] = "The user's role may not perform this action."
        if "{" in self.path:
            errors["404"] = "Resource not found."
        for code, text in errors.items():
            if code not in bodies:
                bodies[code] = self._get_response_for_code(OpenApiResponse(ErrorOutput, description=text), code)
        return bodies
