"""The WhatsApp Business Cloud API (Meta Graph API) adapter.

A Cloud API number is never "created" nor paired by QR: ``create_remote`` only proves that the
credentials reach the number and that the number belongs to the WABA, then subscribes the app to the
WABA's webhooks. There is no history, no contact list and no archive in the Cloud API.
"""

import logging
import mimetypes
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from django.utils.translation import gettext_lazy as _

from instances.providers.base import CredentialsError, Provider
from instances.providers.exceptions import (
    ProviderBadResponse,
    ProviderNotFound,
    ProviderRejected,
)
from instances.providers.meta.client import GraphClient, is_template_code, template_problem
from instances.providers.meta.parsing import parse_webhook
from instances.providers.meta.signature import verify_token_for
from instances.providers.types import (
    ConnectionInfo,
    ConnectionState,
    CreatedInstance,
    MediaFile,
    MediaInput,
    MediaRef,
    Profile,
    ProviderEvent,
    SentMessage,
    WebhookInfo,
)

logger = logging.getLogger(__name__)

PHONE_FIELDS = "id,display_phone_number,verified_name,quality_rating"
PROFILE_FIELDS = "about,address,description,email,profile_picture_url,websites,vertical"
TEXT_LIMIT = 4096
MEDIA_KINDS = ("image", "video", "document", "audio")
CAPTIONED_KINDS = frozenset({"image", "video", "document"})
MAX_PHONE_PAGES = 10

_DIGITS = re.compile(r"[0-9]+")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")
# Business-scoped user id (2026), e.g. "US.13491208655302741918" or "US.ENT.11815799212886844830".
_BSUID = re.compile(r"[A-Z]{2}(\.[A-Z]+)?\.[0-9A-Za-z]+")


def _e164(display_number: Any) -> str | None:
    digits = re.sub(r"\D", "", display_number) if isinstance(display_number, str) else ""
    return f"+{digits}" if digits else None


class MetaProvider(Provider):
    key = "OFFICIAL_META"
    supports_qr = False
    credential_fields = {
        "wabaId": (True, False),
        "phoneId": (True, False),
        "accessToken": (True, True),
        "appSecret": (False, True),
        "verifyToken": (False, True),
    }

    # -- credentials ------------------------------------------------------------------------
    @classmethod
    def clean_credentials(cls, credentials: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(credentials, Mapping):
            raise CredentialsError(
                [_("The credentials must be an object with the fields wabaId, phoneId and accessToken")]
            )
        errors, cleaned = [], {}
        for name, (required, _secret) in cls.credential_fields.items():
            value = credentials.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and name in ("wabaId", "phoneId"):
                value = str(value)
            if value is None or (isinstance(value, str) and not value.strip()):
                if required:
                    errors.append(_("%(field)s is required") % {"field": name})
                continue
            if not isinstance(value, str):
                errors.append(_("%(field)s must be text") % {"field": name})
                continue
            value = value.strip()
            if name in ("wabaId", "phoneId") and not _DIGITS.fullmatch(value):
                errors.append(_("%(field)s must contain only digits") % {"field": name})
            elif name in ("accessToken", "appSecret") and any(char.isspace() for char in value):
                errors.append(_("%(field)s must not contain spaces") % {"field": name})
            else:
                cleaned[name] = value
        if errors:
            raise CredentialsError(errors)
        return cleaned

    # -- plumbing ---------------------------------------------------------------------------
    @cached_property
    def graph(self) -> GraphClient:
        return GraphClient(access_token=str(self.credentials.get("accessToken") or ""))

    @property
    def credentials(self) -> Mapping[str, Any]:
        return self.instance.credentials or {}

    @property
    def phone_id(self) -> str:
        return str(self.credentials.get("phoneId") or "")

    @property
    def waba_id(self) -> str:
        return str(self.credentials.get("wabaId") or "")

    # -- lifecycle --------------------------------------------------------------------------
    def create_remote(self) -> CreatedInstance:
        """Verify before anything is saved: the token reads the number, and the number is in the WABA."""
        try:
            number = self._phone_number()
        except ProviderNotFound as exc:
            raise ProviderRejected(
                _("The phoneId %(id)s does not exist on Meta or the access token cannot read it")
                % {"id": self.phone_id},
                provider_code=exc.provider_code,
                http_status=exc.http_status,
                details=exc.details,
            ) from exc
        try:
            waba_numbers = self._waba_phone_ids()
        except ProviderNotFound as exc:
            raise ProviderRejected(
                _("The wabaId %(id)s does not exist on Meta or the access token cannot read it") % {"id": self.waba_id},
                provider_code=exc.provider_code,
                http_status=exc.http_status,
                details=exc.details,
            ) from exc
        if self.phone_id not in waba_numbers:
            raise ProviderRejected(
                _("The phoneId %(phone)s does not belong to the WhatsApp Business account (wabaId) %(waba)s")
                % {"phone": self.phone_id, "waba": self.waba_id}
            )
        self.configure_webhook()
        return CreatedInstance(connection=self._connection(number))

    def connection_state(self) -> ConnectionInfo:
        """A ``ProviderAuthError`` here means the token no longer works (the caller records ERROR)."""
        return self._connection(self._phone_number())

    def get_profile(self) -> Profile:
        number = self._phone_number()
        answer = self.graph.get(f"{self.phone_id}/whatsapp_business_profile", params={"fields": PROFILE_FIELDS})
        profile = next(iter(_objects(answer.get("data"))), {})

        def text(key: str) -> str | None:
            value = profile.get(key)
            return value if isinstance(value, str) and value else None

        websites = profile.get("websites")
        extra = {
            "address": text("address"),
            "description": text("description"),
            "email": text("email"),
            "vertical": text("vertical"),
            "websites": [site for site in websites if isinstance(site, str)] if isinstance(websites, list) else [],
            "quality_rating": number.get("quality_rating") if isinstance(number.get("quality_rating"), str) else None,
        }
        return Profile(
            phone=_e164(number.get("display_phone_number")),
            name=number.get("verified_name") if isinstance(number.get("verified_name"), str) else None,
            picture_url=text("profile_picture_url"),
            about=text("about"),
            is_business=True,
            extra={key: value for key, value in extra.items() if value},
        )

    def get_webhook(self) -> WebhookInfo:
        answer = self.graph.get(f"{self.waba_id}/subscribed_apps")
        apps = _objects(answer.get("data"))
        url = next(
            (app["override_callback_uri"] for app in apps if isinstance(app.get("override_callback_uri"), str)), None
        )
        return WebhookInfo(url=url or None, enabled=bool(apps))

    def configure_webhook(self) -> WebhookInfo:
        """Subscribe the app to the WABA, overriding the callback with this instance's webhook URL.

        Meta calls the URL (GET, hub.challenge) before accepting the override, so the webhook view must
        already answer ``verify_token_for(credentials, webhook_secret)``. Running this twice is a no-op.
        """
        body: dict[str, Any] = {}
        if self.instance.webhook_url:
            body["override_callback_uri"] = self.instance.webhook_url
            body["verify_token"] = verify_token_for(self.credentials, self.instance.webhook_secret)
        self.graph.post(f"{self.waba_id}/subscribed_apps", json=body, idempotent=True)
        return self.get_webhook()

    # -- messaging --------------------------------------------------------------------------
    def send_text(self, *, to: str, text: str, quoted_provider_id: str | None = None) -> SentMessage:
        if not text or not text.strip():
            raise ProviderRejected(_("The message text is empty"))
        if len(text) > TEXT_LIMIT:
            raise ProviderRejected(
                _("The text has %(count)s characters; WhatsApp accepts at most %(limit)s")
                % {"count": len(text), "limit": TEXT_LIMIT}
            )
        return self._send(to, "text", {"body": text, "preview_url": False}, quoted_provider_id=quoted_provider_id)

    def send_media(
        self,
        *,
        to: str,
        kind: str,
        media: MediaInput,
        caption: str | None = None,
        quoted_provider_id: str | None = None,
    ) -> SentMessage:
        if kind not in MEDIA_KINDS:
            raise ProviderRejected(_("Unknown media kind %(kind)s") % {"kind": kind})
        recipient = self._recipient(to)
        content = self._media_object(media)
        if caption and kind in CAPTIONED_KINDS:
            content["caption"] = caption
        if kind == "document" and media.file_name:
            content["filename"] = media.file_name
        return self._send(recipient, kind, content, quoted_provider_id=quoted_provider_id)

    def send_audio(self, *, to: str, media: MediaInput) -> SentMessage:
        # The Cloud API plays an audio message as a voice note when the file is OGG with the OPUS codec.
        recipient = self._recipient(to)
        return self._send(recipient, "audio", self._media_object(media, default_mime="audio/ogg"))

    def send_sticker(self, *, to: str, media: MediaInput) -> SentMessage:
        recipient = self._recipient(to)
        return self._send(recipient, "sticker", self._media_object(media, default_mime="image/webp"))

    def send_template(
        self, *, to: str, name: str, language: str, components: Sequence[Mapping[str, Any]] = ()
    ) -> SentMessage:
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = _plain(list(components))
        try:
            return self._send(to, "template", template)
        except ProviderRejected as exc:
            if not is_template_code(exc.provider_code):
                raise
            raise ProviderRejected(
                _("Template %(name)s (%(language)s) refused: %(problem)s")
                % {"name": name, "language": language, "problem": template_problem(exc.provider_code)},
                provider_code=exc.provider_code,
                http_status=exc.http_status,
                details=exc.details,
            ) from exc

    def send_reaction(self, *, to: str, provider_message_id: str, emoji: str, from_me: bool = False) -> SentMessage:
        # from_me does not matter to Meta: a reaction names the message id only. "" removes the reaction.
        return self._send(to, "reaction", {"message_id": provider_message_id, "emoji": emoji})

    def mark_read(self, *, chat_id: str, provider_message_ids: Sequence[str]) -> None:
        """Marks the last id of ``provider_message_ids`` (oldest first); Meta marks everything before it too."""
        ids = [message_id for message_id in provider_message_ids if message_id]
        if not ids:
            return
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": ids[-1]}
        self.graph.post(f"{self.phone_id}/messages", json=body, idempotent=True)

    def download_media(self, *, media: MediaRef, chat_id: str | None = None) -> MediaFile:
        """Two steps even when the webhook carried a URL: the token is only ever sent to URLs Graph gave."""
        # Media ids are numeric; anything else (from an unsigned webhook, say) must not become a Graph path.
        if not media.provider_media_id or not _DIGITS.fullmatch(media.provider_media_id):
            raise ProviderRejected(_("This media has no Meta media id to download it with"))
        info = self.graph.get(media.provider_media_id)
        url = info.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ProviderBadResponse(details="media answer without a download url")
        response = self.graph.get_bytes(url)
        mime = info.get("mime_type") if isinstance(info.get("mime_type"), str) else None
        header_mime = (response.headers.get("Content-Type") or "").split(";")[0].strip() or None
        return MediaFile(
            content=response.content,
            mime_type=mime or media.mime_type or header_mime or "application/octet-stream",
            file_name=media.file_name,
        )

    # -- webhooks ---------------------------------------------------------------------------
    @classmethod
    def parse_webhook(cls, payload: Mapping[str, Any]) -> list[ProviderEvent]:
        return parse_webhook(payload)

    # -- helpers ----------------------------------------------------------------------------
    def _phone_number(self) -> dict[str, Any]:
        return self.graph.get(self.phone_id, params={"fields": PHONE_FIELDS})

    def _waba_phone_ids(self) -> set[str]:
        ids: set[str] = set()
        path: str | None = f"{self.waba_id}/phone_numbers"
        for _page in range(MAX_PHONE_PAGES):
            if path is None:
                break
            answer = self.graph.get(path)
            ids.update(str(item.get("id")) for item in _objects(answer.get("data")))
            paging = answer.get("paging") if isinstance(answer.get("paging"), Mapping) else {}
            next_url = paging.get("next")
            # Follow Graph's own paging links only: the bearer token must not go anywhere else.
            path = next_url if isinstance(next_url, str) and self.graph.same_origin(next_url) else None
        return ids

    @staticmethod
    def _connection(number: Mapping[str, Any]) -> ConnectionInfo:
        """A number Graph answers for is usable: the Cloud API has no session to lose."""
        quality = number.get("quality_rating")
        return ConnectionInfo(
            state=ConnectionState.CONNECTED,
            raw_state=quality if isinstance(quality, str) else "",
            phone=_e164(number.get("display_phone_number")),
            profile_name=number.get("verified_name") if isinstance(number.get("verified_name"), str) else None,
        )

    @staticmethod
    def _recipient(to: str) -> dict[str, str]:
        """``to`` for a phone (digits, no "+"), ``recipient`` for a business-scoped user id."""
        value = to.strip() if isinstance(to, str) else ""
        digits = _PHONE_PUNCTUATION.sub("", value.removeprefix("+"))
        if _DIGITS.fullmatch(digits):
            return {"to": digits}
        if _BSUID.fullmatch(value):
            return {"recipient": value}
        raise ProviderRejected(_("The recipient must be a phone number with country code"))

    def _send(
        self, to: str | dict[str, str], msg_type: str, content: dict[str, Any], *, quoted_provider_id: str | None = None
    ) -> SentMessage:
        recipient = to if isinstance(to, dict) else self._recipient(to)
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient}
        if quoted_provider_id:
            body["context"] = {"message_id": quoted_provider_id}
        body["type"] = msg_type
        body[msg_type] = content
        answer = self.graph.post(f"{self.phone_id}/messages", json=body, idempotent=False)
        message_id = next(iter(_objects(answer.get("messages"))), {}).get("id")
        if not isinstance(message_id, str) or not message_id:
            raise ProviderBadResponse(details="send answer without messages[0].id")
        return SentMessage(provider_message_id=message_id)

    def _media_object(self, media: MediaInput, *, default_mime: str | None = None) -> dict[str, Any]:
        if media.url:
            return {"link": media.url}
        if media.content:
            return {"id": self._upload(media, default_mime=default_mime)}
        raise ProviderRejected(_("The media needs a URL or the file content"))

    def _upload(self, media: MediaInput, *, default_mime: str | None) -> str:
        mime = (
            media.mime_type or (mimetypes.guess_type(media.file_name)[0] if media.file_name else None) or default_mime
        )
        if not mime:
            raise ProviderRejected(_("The file type (MIME type) is needed to upload the media"))
        file_name = media.file_name or f"file{mimetypes.guess_extension(mime.split(';')[0].strip()) or ''}"
        answer = self.graph.post_multipart(
            f"{self.phone_id}/media",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (file_name, media.content, mime)},
        )
        media_id = answer.get("id")
        if not isinstance(media_id, str | int) or not str(media_id):
            raise ProviderBadResponse(details="upload answer without id")
        return str(media_id)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a Graph ``data``-style list; anything else gives no items."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _plain(value: Any) -> Any:
    """Mappings and sequences as dicts and lists, so that ``json`` can encode the caller's components."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
