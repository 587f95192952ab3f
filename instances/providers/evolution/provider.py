"""``EvolutionProvider``: the Evolution API v2 (Baileys) adapter.

Section numbers (§) refer to the project's Evolution API notes (evolution.md, read from the
Evolution source at 2.3.6/2.3.7); the routes are in Evolution's ``src/api/routes/*.router.ts``.
Every instance-scoped route is ``/<group>/<action>/{instanceName}`` with the ``apikey`` header.
"""

import mimetypes
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

from django.utils.translation import gettext_lazy as _

from instances.providers import http as provider_http
from instances.providers.base import Provider
from instances.providers.evolution import answers, jids
from instances.providers.evolution import credentials as credential_rules
from instances.providers.evolution.client import build_http, expect_dict, expect_list, raise_for_quirk
from instances.providers.evolution.messages import as_dict, as_str, parse_record
from instances.providers.evolution.parsing import connection_info, connection_state, parse_webhook, qr_code
from instances.providers.exceptions import ProviderAuthError, ProviderError, ProviderNotFound, ProviderRejected
from instances.providers.types import (
    ConnectionInfo,
    ConnectionState,
    ConnectResult,
    CreatedInstance,
    InboundMessage,
    MediaFile,
    MediaInput,
    MediaRef,
    Presence,
    Profile,
    ProviderEvent,
    RemoteChat,
    RemoteContact,
    RemoteInstance,
    SentMessage,
    WebhookInfo,
)

SECRET_HEADER = "x-elsehub-secret"
WEBHOOK_EVENTS = (
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "MESSAGES_DELETE",
    "MESSAGES_EDITED",
    "SEND_MESSAGE",
    "CONNECTION_UPDATE",
    "QRCODE_UPDATED",
    "CONTACTS_UPSERT",
    "CONTACTS_UPDATE",
    "PRESENCE_UPDATE",
    "LOGOUT_INSTANCE",
    "REMOVE_INSTANCE",
)
MEDIA_TYPES = frozenset({"image", "video", "document", "audio"})
# sendPresence requires a delay and holds the request open for it (§4).
PRESENCE_DELAY_MS = 1200

INCOMPLETE_CREDENTIALS = _("The Evolution API credentials of this instance are incomplete")
INVALID_RECIPIENT = _("The recipient is not a valid phone number or WhatsApp address")
EMPTY_TEXT = _("The message text is empty")
UNKNOWN_MEDIA_TYPE = _("This kind of media cannot be sent through the Evolution API")
INVALID_PAIRING_NUMBER = _("The phone number for the pairing code is invalid")
CONNECT_FAILED = _("The Evolution API could not start the connection")
RESTART_FAILED = _("The Evolution API could not restart the instance; connect it first if it is disconnected")
NO_MEDIA = _("This message has no media to download")
INVALID_INSTANCE_NAME = _("The instance name is invalid")


class EvolutionProvider(Provider):
    key = "EVOLUTION_API"
    supports_qr = True
    credential_fields = {"serverUrl": (True, False), "apiToken": (True, True), "instanceName": (True, False)}

    @classmethod
    def clean_credentials(cls, credentials: Mapping[str, Any]) -> dict[str, Any]:
        return credential_rules.clean_credentials(credentials)

    # -- plumbing ---------------------------------------------------------------------------
    @cached_property
    def http(self) -> provider_http.ProviderHTTPClient:
        stored = self.instance.credentials or {}
        server_url, token = stored.get("serverUrl"), stored.get("apiToken")
        if not server_url or not token or not stored.get("instanceName"):
            raise ProviderAuthError(INCOMPLETE_CREDENTIALS)
        return build_http(base_url=server_url, api_token=token)

    @property
    def name(self) -> str:
        return str((self.instance.credentials or {}).get("instanceName") or "")

    def _path(self, prefix: str, name: str | None = None) -> str:
        return f"{prefix}/{quote(name or self.name, safe='')}"

    def _webhook(self) -> dict[str, Any]:
        secret = self.instance.webhook_secret
        return {
            "url": self.instance.webhook_url,
            "byEvents": False,
            "base64": False,
            "headers": {SECRET_HEADER: secret} if secret else {},
            # Must be a list: a missing one fails the creation (§1.1); [] would mean "all events".
            "events": list(WEBHOOK_EVENTS),
        }

    # -- lifecycle --------------------------------------------------------------------------
    def create_remote(self) -> CreatedInstance:
        body = {
            "instanceName": self.name,
            "integration": "WHATSAPP-BAILEYS",
            "qrcode": True,
            "webhook": self._webhook(),
        }
        answer = expect_dict(self.http.request("POST", "/instance/create", json=body, idempotent=False))
        raw = str(as_dict(answer.get("instance")).get("status") or "")
        token = answer.get("hash")
        if isinstance(token, dict):  # v1 answered {"hash": {"apikey": ...}}
            token = token.get("apikey")
        return CreatedInstance(
            connection=ConnectionInfo(state=connection_state(raw), raw_state=raw),
            qr=qr_code(answer.get("qrcode")),
            instance_token=token if isinstance(token, str) and token else None,
        )

    def connect(self, *, phone_number: str | None = None) -> ConnectResult:
        params = {}
        if phone_number:
            number = jids.digits(phone_number)
            if number is None:
                raise ProviderRejected(INVALID_PAIRING_NUMBER)
            params["number"] = number
        answer = expect_dict(self.http.request("GET", self._path("/instance/connect"), params=params or None))
        raise_for_quirk(answer, CONNECT_FAILED)
        if isinstance(answer.get("instance"), dict):  # already open: the connectionState shape
            return ConnectResult(connection=connection_info(answer["instance"]))
        # Otherwise the current QR, or only {"count": 0} before the first one is ready (§1.2).
        return ConnectResult(
            connection=ConnectionInfo(state=ConnectionState.CONNECTING, raw_state="connecting"),
            qr=qr_code(answer),
        )

    def connection_state(self) -> ConnectionInfo:
        answer = expect_dict(self.http.request("GET", self._path("/instance/connectionState")))
        return connection_info(as_dict(answer.get("instance")))

    def logout(self) -> None:
        try:
            self.http.request("DELETE", self._path("/instance/logout"))
        except ProviderRejected as exc:
            # 400 'The "x" instance is not connected' means it is logged out already (§1.6).
            if "not connected" not in (exc.details or "").lower():
                raise

    def restart(self) -> None:
        answer = self.http.request("POST", self._path("/instance/restart"), idempotent=False)
        raise_for_quirk(answer, RESTART_FAILED)

    def delete_remote(self) -> None:
        self.delete_remote_instance(name=self.name)

    def delete_remote_instance(self, *, name: str) -> None:
        if not credential_rules.valid_instance_name(name):
            raise ProviderRejected(INVALID_INSTANCE_NAME)
        try:
            self.http.request("DELETE", self._path("/instance/delete", name))
        except ProviderNotFound:
            pass  # already gone

    def list_remote_instances(self) -> list[RemoteInstance]:
        rows = expect_list(self.http.request("GET", "/instance/fetchInstances"))
        return [instance for row in rows if (instance := answers.remote_instance(row)) is not None]

    def get_profile(self) -> Profile:
        answer = expect_dict(self.http.request("POST", self._path("/chat/fetchProfile"), json={}))
        row = {}
        if not (answer.get("wuid") and answer.get("name") and answer.get("picture")):
            row = self._own_row()
        return answers.profile(answer, row)

    def _own_row(self) -> dict[str, Any]:
        """This instance's ``fetchInstances`` row; best effort, ``{}`` when it cannot be read."""
        try:
            rows = self.http.request("GET", "/instance/fetchInstances", params={"instanceName": self.name})
        except ProviderError:
            return {}
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("name") == self.name:
                return row
        return {}

    # -- chats and history ------------------------------------------------------------------
    def list_contacts(self) -> list[RemoteContact]:
        rows = expect_list(self.http.request("POST", self._path("/chat/findContacts"), json={"where": {}}))
        return [contact for row in rows if (contact := answers.remote_contact(row)) is not None]

    def list_chats(self) -> list[RemoteChat]:
        rows = expect_list(self.http.request("POST", self._path("/chat/findChats"), json={}))
        return [chat for row in rows if (chat := answers.remote_chat(row)) is not None]

    def list_messages(self, *, chat_id: str, since: datetime | None = None, limit: int = 100) -> list[InboundMessage]:
        """The chat's newest ``limit`` messages (from ``since`` on), returned oldest first."""
        where: dict[str, Any] = {"key": {"remoteJid": chat_id}}
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            where["messageTimestamp"] = {"gte": since.astimezone(UTC).isoformat().replace("+00:00", "Z")}
        body = {"where": where, "page": 1, "offset": max(1, int(limit))}
        answer = expect_dict(self.http.request("POST", self._path("/chat/findMessages"), json=body))
        records = as_dict(answer.get("messages")).get("records")
        messages = []
        for record in records if isinstance(records, list) else []:
            key = as_dict(as_dict(record).get("key"))
            # 2.3.7 may not narrow by remoteJid alone (§4), so the chat is checked here too.
            if chat_id not in (key.get("remoteJid"), key.get("remoteJidAlt")):
                continue
            message = parse_record(record)
            if isinstance(message, InboundMessage):
                messages.append(message)
        return sorted(messages, key=lambda message: message.timestamp)

    # -- webhook ----------------------------------------------------------------------------
    def get_webhook(self) -> WebhookInfo:
        answer = self.http.request("GET", self._path("/webhook/find"))
        return answers.webhook_info(answer, secret=self.instance.webhook_secret, header=SECRET_HEADER)

    def configure_webhook(self) -> WebhookInfo:
        body = {"webhook": {"enabled": True, **self._webhook()}}
        answer = self.http.request("POST", self._path("/webhook/set"), json=body)
        return answers.webhook_info(answer, secret=self.instance.webhook_secret, header=SECRET_HEADER)

    # -- messaging --------------------------------------------------------------------------
    def _send(self, action: str, body: dict[str, Any]) -> SentMessage:
        # Never repeated after a read timeout or a 5xx: the message may have gone out (STYLE rule 4).
        answer = self.http.request("POST", self._path(f"/message/{action}"), json=body, idempotent=False)
        return answers.sent_message(expect_dict(answer), action=action)

    @staticmethod
    def _number(to: str) -> str:
        number = jids.recipient(to)
        if number is None:
            raise ProviderRejected(INVALID_RECIPIENT)
        return number

    @staticmethod
    def _chat_jid(chat_id: str) -> str:
        jid = jids.chat_jid(chat_id)
        if jid is None:
            raise ProviderRejected(INVALID_RECIPIENT)
        return jid

    @staticmethod
    def _quoted(quoted_provider_id: str | None) -> dict[str, Any]:
        # Evolution looks the quoted message up in its database by key.id (§3).
        return {"quoted": {"key": {"id": quoted_provider_id}}} if quoted_provider_id else {}

    def send_text(self, *, to: str, text: str, quoted_provider_id: str | None = None) -> SentMessage:
        if not isinstance(text, str) or not text.strip():
            raise ProviderRejected(EMPTY_TEXT)
        return self._send("sendText", {"number": self._number(to), "text": text, **self._quoted(quoted_provider_id)})

    def send_media(
        self,
        *,
        to: str,
        kind: str,
        media: MediaInput,
        caption: str | None = None,
        quoted_provider_id: str | None = None,
    ) -> SentMessage:
        if kind not in MEDIA_TYPES:
            raise ProviderRejected(UNKNOWN_MEDIA_TYPE, details=str(kind))
        body: dict[str, Any] = {"number": self._number(to), "mediatype": kind, "media": answers.media_source(media)}
        if media.mime_type:
            body["mimetype"] = media.mime_type
        if caption:
            body["caption"] = caption
        file_name = media.file_name
        if not file_name and kind == "document" and not media.url:
            # A base64 document without fileName is refused with 400 (§3).
            file_name = "document" + (mimetypes.guess_extension(media.mime_type or "") or "")
        if file_name:
            body["fileName"] = file_name
        return self._send("sendMedia", body | self._quoted(quoted_provider_id))

    def send_audio(self, *, to: str, media: MediaInput) -> SentMessage:
        return self._send("sendWhatsAppAudio", {"number": self._number(to), "audio": answers.media_source(media)})

    def send_sticker(self, *, to: str, media: MediaInput) -> SentMessage:
        return self._send("sendSticker", {"number": self._number(to), "sticker": answers.media_source(media)})

    def send_reaction(self, *, to: str, provider_message_id: str, emoji: str, from_me: bool = False) -> SentMessage:
        key = {"remoteJid": self._chat_jid(to), "fromMe": bool(from_me), "id": provider_message_id}
        return self._send("sendReaction", {"key": key, "reaction": emoji})

    def mark_read(self, *, chat_id: str, provider_message_ids: Sequence[str]) -> None:
        remote_jid = self._chat_jid(chat_id)
        if not provider_message_ids:
            return
        # Evolution silently skips @lid keys here (§4); nothing else can be done for them.
        keys = [{"remoteJid": remote_jid, "fromMe": False, "id": message_id} for message_id in provider_message_ids]
        self.http.request("POST", self._path("/chat/markMessageAsRead"), json={"readMessages": keys})

    def archive_chat(self, *, chat_id: str, archive: bool) -> None:
        body = {"archive": bool(archive), "chat": self._chat_jid(chat_id)}
        self.http.request("POST", self._path("/chat/archiveChat"), json=body)

    def send_presence(self, *, chat_id: str, presence: Presence) -> None:
        body = {"number": self._number(chat_id), "presence": Presence(presence).value, "delay": PRESENCE_DELAY_MS}
        self.http.request("POST", self._path("/chat/sendPresence"), json=body)

    def download_media(self, *, media: MediaRef, chat_id: str | None = None) -> MediaFile:
        mime_type = media.mime_type or "application/octet-stream"
        if media.inline_base64:
            return MediaFile(
                content=answers.decode_base64(media.inline_base64), mime_type=mime_type, file_name=media.file_name
            )
        # The full message lets Evolution download without its database; a bare key.id needs it (§4).
        message = media.provider_payload or (
            {"key": {"id": media.provider_media_id}} if media.provider_media_id else None
        )
        if not message:
            raise ProviderRejected(NO_MEDIA)
        body = {"message": message, "convertToMp4": False}
        answer = expect_dict(self.http.request("POST", self._path("/chat/getBase64FromMediaMessage"), json=body))
        return MediaFile(
            content=answers.decode_base64(answer.get("base64")),
            mime_type=as_str(answer.get("mimetype")) or mime_type,
            file_name=as_str(answer.get("fileName")) or media.file_name,
        )

    # -- webhooks ---------------------------------------------------------------------------
    @classmethod
    def parse_webhook(cls, payload: Mapping[str, Any]) -> list[ProviderEvent]:
        return parse_webhook(payload)
