"""Every provider failure is one of these; no ``requests`` exception leaves ``providers/``.

Each carries the provider's own code (when it gave one), the HTTP status it answered, and a
translatable message that the API shows as it is.
"""

from django.utils.translation import gettext_lazy as _


class ProviderError(Exception):
    """Base of the tree. ``retryable``: the same call may succeed later."""

    default_message = _("The WhatsApp provider failed")
    retryable = False

    def __init__(
        self,
        message=None,
        *,
        provider_code: str | int | None = None,
        http_status: int | None = None,
        details: str | None = None,
    ):
        self.message = message or self.default_message
        self.provider_code = None if provider_code is None else str(provider_code)
        self.http_status = http_status
        self.details = details  # the provider's own words, for logs and admins (never secrets)
        super().__init__(str(self.message))


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (DNS, refused, TLS, connect timeout): nothing was sent."""

    default_message = _("Could not reach the WhatsApp provider")
    retryable = True


class ProviderTimeout(ProviderError):
    """The provider took too long to answer: the call may or may not have taken effect."""

    default_message = _("The WhatsApp provider did not answer in time")
    retryable = True


class ProviderUnavailable(ProviderError):
    """5xx: the provider failed on its side."""

    default_message = _("The WhatsApp provider is unavailable")
    retryable = True


class ProviderRateLimited(ProviderError):
    default_message = _("The WhatsApp provider refused for too many requests; try again later")
    retryable = True

    def __init__(self, message=None, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    default_message = _("The WhatsApp provider refused the credentials (invalid or expired token)")


class ProviderNotFound(ProviderError):
    default_message = _("The instance does not exist on the WhatsApp provider")


class ProviderConflict(ProviderError):
    default_message = _("An instance with this name already exists on the WhatsApp provider")


class ProviderRejected(ProviderError):
    """A 4xx the provider explained: invalid parameter, number not on WhatsApp, window closed..."""

    default_message = _("The WhatsApp provider rejected the request")


class ProviderUnsupported(ProviderError):
    """The operation does not exist for this provider (e.g. a QR code on the Meta Cloud API)."""

    default_message = _("This operation is not available for this provider")


class ProviderBadResponse(ProviderError):
    """The provider answered something we cannot read."""

    default_message = _("The WhatsApp provider sent an unexpected answer")
    retryable = True


class InvalidWebhookPayload(ProviderError):
    """A webhook body that does not have the provider's shape."""

    default_message = _("Webhook payload not recognised")
