"""An in-process provider for unit tests: records every call, answers from a small state.

Swap it in with ``use_fake_provider()`` (the ``fake_provider`` fixture does); end-to-end tests use
the HTTP simulator and the real adapters instead.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from instances.providers import registry
from instances.providers.base import Provider
from instances.providers.exceptions import ProviderError
from instances.providers.types import (
    ConnectionInfo,
    ConnectionState,
    ConnectResult,
    CreatedInstance,
    MediaFile,
    Profile,
    QRCode,
    RemoteChat,
    RemoteContact,
    RemoteInstance,
    SentMessage,
    WebhookInfo,
)


class FakeProvider(Provider):
    key = "FAKE"
    calls: ClassVar[list[tuple[str, dict]]] = []
    #: raised by the next provider call (then cleared)
    fail_next: ClassVar[ProviderError | None] = None
    state: ClassVar[dict[str, Any]] = {}

    @classmethod
    def reset(cls) -> None:
        cls.calls.clear()
        cls.fail_next = None
        cls.state.clear()

    @classmethod
    def real_class(cls) -> type[Provider]:
        return registry.real_adapter_class(cls.key)

    @classmethod
    def clean_credentials(cls, credentials: Mapping[str, Any]) -> dict[str, Any]:
        return cls.real_class().clean_credentials(credentials)

    def _call(self, operation: str, /, **kwargs):
        self.calls.append((operation, {"instance": self.instance.name, **kwargs}))
        if FakeProvider.fail_next is not None:
            error, FakeProvider.fail_next = FakeProvider.fail_next, None
            raise error

    def _connection(self) -> ConnectionInfo:
        state = self.state.get(
            self.instance.id, ConnectionState.CONNECTING if self.supports_qr else ConnectionState.CONNECTED
        )
        return ConnectionInfo(state=state, raw_state=state.value, profile_name=self.state.get("profile_name"))

    def create_remote(self) -> CreatedInstance:
        self._call("create_remote", webhook_url=self.instance.webhook_url, webhook_secret=self.instance.webhook_secret)
        qr = QRCode(code="2@fake-qr-code", pairing_code=None) if self.supports_qr else None
        return CreatedInstance(connection=self._connection(), qr=qr, instance_token="fake-token")

    def connect(self, *, phone_number=None) -> ConnectResult:
        self._call("connect", phone_number=phone_number)
        connection = self._connection()
        if connection.state == ConnectionState.CONNECTED:
            return ConnectResult(connection=connection)
        return ConnectResult(
            connection=connection,
            qr=QRCode(code="2@fake-qr-refresh", pairing_code="ABCD1234" if phone_number else None),
        )

    def connection_state(self) -> ConnectionInfo:
        self._call("connection_state")
        return self._connection()

    def logout(self) -> None:
        self._call("logout")
        self.state[self.instance.id] = ConnectionState.DISCONNECTED

    def restart(self) -> None:
        self._call("restart")

    def delete_remote(self) -> None:
        self._call("delete_remote")

    def get_profile(self) -> Profile:
        self._call("get_profile")
        return Profile(
            phone="+" + self.instance.phone, name="Loja Fake", picture_url="https://example.com/p.png", about="Olá"
        )

    def list_contacts(self) -> list[RemoteContact]:
        self._call("list_contacts")
        return list(self.state.get("contacts", []))

    def list_chats(self) -> list[RemoteChat]:
        self._call("list_chats")
        return list(self.state.get("chats", []))

    def get_webhook(self) -> WebhookInfo:
        self._call("get_webhook")
        url = self.state.get("webhook_url", self.instance.webhook_url)
        return WebhookInfo(url=url, enabled=bool(url), events=("MESSAGES_UPSERT",))

    def configure_webhook(self) -> WebhookInfo:
        self._call("configure_webhook", url=self.instance.webhook_url)
        self.state["webhook_url"] = self.instance.webhook_url
        return self.get_webhook()

    def list_remote_instances(self) -> list[RemoteInstance]:
        self._call("list_remote_instances")
        return list(self.state.get("remote_instances", []))

    def delete_remote_instance(self, *, name: str) -> None:
        self._call("delete_remote_instance", name=name)

    def send_text(self, *, to, text, quoted_provider_id=None) -> SentMessage:
        self._call("send_text", to=to, text=text)
        return SentMessage(provider_message_id=f"fake-{len(self.calls)}")

    def send_media(self, *, to, kind, media, caption=None, quoted_provider_id=None) -> SentMessage:
        self._call("send_media", to=to, kind=kind)
        return SentMessage(provider_message_id=f"fake-{len(self.calls)}")

    def send_audio(self, *, to, media) -> SentMessage:
        self._call("send_audio", to=to)
        return SentMessage(provider_message_id=f"fake-{len(self.calls)}")

    def send_sticker(self, *, to, media) -> SentMessage:
        self._call("send_sticker", to=to)
        return SentMessage(provider_message_id=f"fake-{len(self.calls)}")

    def send_reaction(self, *, to, provider_message_id, emoji, from_me=False) -> SentMessage:
        self._call("send_reaction", to=to, emoji=emoji)
        return SentMessage(provider_message_id=f"fake-{len(self.calls)}")

    def mark_read(self, *, chat_id, provider_message_ids) -> None:
        self._call("mark_read", chat_id=chat_id)

    def download_media(self, *, media, chat_id=None) -> MediaFile:
        self._call("download_media")
        return MediaFile(content=b"fake", mime_type=media.mime_type or "application/octet-stream")

    @classmethod
    def parse_webhook(cls, payload):
        return cls.real_class().parse_webhook(payload)


class FakeEvolution(FakeProvider):
    key = "EVOLUTION_API"
    supports_qr = True


class FakeMeta(FakeProvider):
    """What the Cloud API cannot do stays unsupported, as in the real adapter."""

    key = "OFFICIAL_META"
    supports_qr = False
    connect = Provider.connect
    logout = Provider.logout
    restart = Provider.restart
    delete_remote = Provider.delete_remote
    list_contacts = Provider.list_contacts
    list_chats = Provider.list_chats
    list_remote_instances = Provider.list_remote_instances
    delete_remote_instance = Provider.delete_remote_instance


def use_fake_provider() -> None:
    FakeProvider.reset()
    registry._overrides.update({"EVOLUTION_API": FakeEvolution, "OFFICIAL_META": FakeMeta})


def stop_fake_provider() -> None:
    registry._overrides.clear()
    FakeProvider.reset()
