"""The one interface that the rest of Elsehub uses to talk to a WhatsApp provider.

An adapter is built for one instance (``ProviderInstance``). Every method either returns
neutral data from ``types`` or raises a ``ProviderError`` subclass. Operations a provider cannot
do raise ``ProviderUnsupported`` (the default here), so that the API can answer 400 clearly.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _

from instances.providers.exceptions import ProviderUnsupported
from instances.providers.types import (
    ConnectionInfo,
    ConnectResult,
    CreatedInstance,
    InboundMessage,
    MediaFile,
    MediaInput,
    MediaRef,
    Presence,
    Profile,
    ProviderEvent,
    ProviderInstance,
    RemoteChat,
    RemoteContact,
    RemoteInstance,
    SentMessage,
    WebhookInfo,
)


class CredentialsError(Exception):
    """Credentials that fail validation: one Portuguese sentence per problem, naming the field."""

    def __init__(self, messages: Sequence[str]):
        super().__init__("; ".join(str(message) for message in messages))
        self.messages = [str(message) for message in messages]


class Provider(ABC):
    #: the ``ServiceInstance.provider`` value this adapter serves
    key: ClassVar[str]
    #: whether the number is paired by scanning a QR code
    supports_qr: ClassVar[bool] = False
    #: credential fields: name -> (required, secret)
    credential_fields: ClassVar[Mapping[str, tuple[bool, bool]]] = {}

    def __init__(self, instance: ProviderInstance):
        self.instance = instance

    # -- credentials ------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def clean_credentials(cls, credentials: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise credentials; raise ``CredentialsError``. No network."""

    # -- lifecycle --------------------------------------------------------------------------
    @abstractmethod
    def create_remote(self) -> CreatedInstance:
        """Create (Evolution) or verify (Meta) the number on the provider; configures its webhook."""

    def connect(self, *, phone_number: str | None = None) -> ConnectResult:
        raise self.unsupported(_("QR code connection"))

    @abstractmethod
    def connection_state(self) -> ConnectionInfo: ...

    def logout(self) -> None:
        raise self.unsupported(_("disconnecting"))

    def restart(self) -> None:
        raise self.unsupported(_("restarting"))

    def delete_remote(self) -> None:
        raise self.unsupported(_("deleting the remote instance"))

    @abstractmethod
    def get_profile(self) -> Profile: ...

    def list_contacts(self) -> list[RemoteContact]:
        raise self.unsupported(_("listing the provider's contacts"))

    def list_chats(self) -> list[RemoteChat]:
        raise self.unsupported(_("listing chats"))

    def list_messages(self, *, chat_id: str, since: datetime | None = None, limit: int = 100) -> list[InboundMessage]:
        raise self.unsupported(_("reading message history"))

    @abstractmethod
    def get_webhook(self) -> WebhookInfo: ...

    @abstractmethod
    def configure_webhook(self) -> WebhookInfo: ...

    def list_remote_instances(self) -> list[RemoteInstance]:
        raise self.unsupported(_("listing remote instances"))

    def delete_remote_instance(self, *, name: str) -> None:
        raise self.unsupported(_("deleting remote instances"))

    # -- messaging --------------------------------------------------------------------------
    @abstractmethod
    def send_text(self, *, to: str, text: str, quoted_provider_id: str | None = None) -> SentMessage: ...

    @abstractmethod
    def send_media(
        self,
        *,
        to: str,
        kind: str,
        media: MediaInput,
        caption: str | None = None,
        quoted_provider_id: str | None = None,
    ) -> SentMessage:
        """``kind``: image, video, document or audio (plain audio file, not a voice note)."""

    @abstractmethod
    def send_audio(self, *, to: str, media: MediaInput) -> SentMessage:
        """A voice note (push-to-talk)."""

    @abstractmethod
    def send_sticker(self, *, to: str, media: MediaInput) -> SentMessage: ...

    def send_template(
        self, *, to: str, name: str, language: str, components: Sequence[Mapping[str, Any]] = ()
    ) -> SentMessage:
        raise self.unsupported(_("template messages"))

    @abstractmethod
    def send_reaction(self, *, to: str, provider_message_id: str, emoji: str, from_me: bool = False) -> SentMessage: ...

    @abstractmethod
    def mark_read(self, *, chat_id: str, provider_message_ids: Sequence[str]) -> None: ...

    def archive_chat(self, *, chat_id: str, archive: bool) -> None:
        raise self.unsupported(_("archiving chats"))

    def send_presence(self, *, chat_id: str, presence: Presence) -> None:
        raise self.unsupported(_("presence"))

    @abstractmethod
    def download_media(self, *, media: MediaRef, chat_id: str | None = None) -> MediaFile: ...

    # -- webhooks ---------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def parse_webhook(cls, payload: Mapping[str, Any]) -> list[ProviderEvent]:
        """Turn one webhook body into neutral events; unknown or ignored event types give ``[]``.

        Raises ``InvalidWebhookPayload`` only for a body that is not the provider's shape at all.
        """

    # -- helpers ----------------------------------------------------------------------------
    def unsupported(self, what) -> ProviderUnsupported:
        return ProviderUnsupported(
            _("%(operation)s is not available for %(provider)s instances") % {"operation": what, "provider": self.key}
        )
