"""WhatsApp Cloud API (Graph) subset under any ``/vNN.N`` prefix, plus the media download URL.

A token is valid if it belongs to a known number; an object another token owns answers like a
missing one (Graph's "Unsupported get request", code 100). Recipients whose digits end in
``0000`` are accepted (200) and then fail asynchronously with 131026, as on the real API.
"""

import secrets
from typing import Any
from urllib.parse import parse_qsl

from instances.simulator import meta_payloads as mp
from instances.simulator.media import parse_multipart, sha256_hex
from instances.simulator.routing import BadJSON, HTTPFailure, Request, Response, Router, json_response
from instances.simulator.state import MediaBlob, MetaNumber, SimulatorState, now_iso, now_ts, whatsapp_id
from instances.simulator.webhooks import Outgoing, WebhookDispatcher

VERSION = r"/v\d+(?:\.\d+)?"
OBJECT = r"(?P<id>[^/]+)"
SEND_TYPES = {
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "template",
    "reaction",
    "location",
    "contacts",
    "interactive",
}
MEDIA_SEND_TYPES = {"image", "video", "audio", "document", "sticker"}
PHONE_FIELDS = (
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "id",
)


def graph(status: int, code: int, message: str, **kwargs: Any) -> Response:
    return json_response(status, mp.graph_error(code, message, **kwargs))


def invalid(message: str, details: str | None = None) -> HTTPFailure:
    return HTTPFailure(graph(400, 100, message, details=details))


def formatted_phone(digits: str) -> str:
    if digits.startswith("55") and len(digits) in {12, 13}:
        return f"+55 {digits[2:4]} {digits[4:-4]}-{digits[-4:]}"
    return f"+{digits}"


class MetaAPI:
    def __init__(self, state: SimulatorState, dispatcher: WebhookDispatcher):
        self.state = state
        self.dispatcher = dispatcher

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{VERSION}/{OBJECT}", self.get_object, area="meta")
        add("DELETE", f"{VERSION}/{OBJECT}", self.delete_object, area="meta")
        add("POST", f"{VERSION}/{OBJECT}/messages", self.messages, area="meta")
        add("POST", f"{VERSION}/{OBJECT}/media", self.upload_media, area="meta")
        add("GET", r"/media/(?P<id>[^/]+)", self.download, area="meta")

    def register_fallback(self, router: Router) -> None:
        """Last: any other ``/vNN.N/...`` path answers Graph's "Unknown path components"."""
        router.add("*", f"{VERSION}(?P<rest>/.*)?", self.unknown, area="meta")

    # -- auth and objects ----------------------------------------------------------------------
    def token(self, req: Request) -> str:
        header = req.header("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else req.query.get("access_token", "")
        if not token or token not in self.state.meta_tokens():
            raise HTTPFailure(graph(401, 190, "Invalid OAuth access token - Cannot parse access token"))
        return token

    def phone(self, req: Request, method: str = "get") -> MetaNumber:
        token = self.token(req)
        number = self.state.meta_numbers.get(req.params["id"])
        if number is None or number.access_token != token:
            raise self.unsupported(req, method)
        return number

    def waba(self, req: Request, method: str = "get") -> list[MetaNumber]:
        token = self.token(req)
        numbers = [n for n in self.state.numbers_of_waba(req.params["id"]) if n.access_token == token]
        if not numbers:
            raise self.unsupported(req, method)
        return numbers

    @staticmethod
    def unsupported(req: Request, method: str) -> HTTPFailure:
        message = mp.UNSUPPORTED_OBJECT.format(method=method, id=req.params.get("id", ""))
        return HTTPFailure(graph(400, 100, message, type_="GraphMethodException", subcode=33))

    @staticmethod
    def params(req: Request) -> dict[str, Any]:
        """Graph takes parameters as JSON, as a form, or in the query string."""
        values: dict[str, Any] = dict(req.query)
        if req.content_type.startswith("application/x-www-form-urlencoded"):
            values.update(parse_qsl(req.body.decode(errors="replace")))
            return values
        try:
            body = req.json()
        except BadJSON:
            raise invalid("(#100) Invalid parameter", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise invalid("(#100) Invalid parameter")
        values.update(body)
        return values

    # -- reads ---------------------------------------------------------------------------------
    def phone_fields(self, number: MetaNumber) -> dict[str, Any]:
        return {
            "verified_name": number.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": formatted_phone(number.display_phone_number),
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "name_status": "APPROVED",
            "messaging_limit_tier": "TIER_1K",
            "is_official_business_account": False,
            "id": number.phone_id,
        }

    def get_object(self, req: Request) -> Response:
        token = self.token(req)
        object_id = req.params["id"]
        with self.state.lock:
            number = self.state.meta_numbers.get(object_id)
            blob = self.state.meta_media.get(object_id)
            owner = self.state.meta_numbers.get(blob.owner) if blob and blob.owner else None
        if number is not None and number.access_token == token:
            available = self.phone_fields(number)
            wanted = [f.strip() for f in req.query.get("fields", "").split(",") if f.strip()] or list(PHONE_FIELDS)
            unknown = [f for f in wanted if f not in available]
            if unknown:
                return graph(
                    400,
                    100,
                    f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type "
                    "(WhatsAppBusinessPhoneNumber)",
                )
            return json_response(200, {f: available[f] for f in [*wanted, "id"]})
        if blob is not None and owner is not None and owner.access_token == token:
            url = f"{req.base_url}/media/{blob.id}?mid={blob.id}&ext={now_ts() + 300}&hash={secrets.token_urlsafe(18)}"
            return json_response(
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": url,
                    "mime_type": blob.mime_type,
                    "sha256": sha256_hex(blob.content),
                    "file_size": str(len(blob.content)),
                    "id": blob.id,
                },
            )
        raise self.unsupported(req, "get")

    def delete_object(self, req: Request) -> Response:
        token = self.token(req)
        with self.state.lock:
            blob = self.state.meta_media.get(req.params["id"])
            owner = self.state.meta_numbers.get(blob.owner) if blob and blob.owner else None
            if blob is None or owner is None or owner.access_token != token:
                raise self.unsupported(req, "delete")
            del self.state.meta_media[blob.id]
        return json_response(200, {"success": True})

    # -- messages ------------------------------------------------------------------------------
    def messages(self, req: Request) -> Response:
        number = self.phone(req, "post")
        body = self.params(req)
        if body.get("messaging_product") != "whatsapp":
            raise invalid("(#100) The parameter messaging_product is required.")
        if body.get("status") == "read":
            if not body.get("message_id"):
                raise invalid("(#100) The parameter message_id is required.")
            return json_response(200, {"success": True})
        to = "".join(ch for ch in str(body.get("to") or "") if ch.isdigit())
        user_id = str(body.get("recipient") or "") if not to else ""
        if not to and not user_id:
            raise invalid("(#100) The parameter to is required.")
        kind = body.get("type") or "text"
        if kind not in SEND_TYPES:
            raise invalid(f'(#100) Param type must be one of {{{", ".join(sorted(SEND_TYPES))}}} - got "{kind}".')
        self._validate(kind, body.get(kind))
        wamid = mp.new_wamid(to or user_id)
        record = {
            "provider": "meta",
            "phoneId": number.phone_id,
            "id": wamid,
            "to": to or user_id,
            "type": kind,
            "status": "accepted",
            "at": now_iso(),
        }
        with self.state.lock:
            self.state.meta_messages[wamid] = record
            self.state.sent.append(record)
        self._receipts(number, record, template=kind == "template", biz_opaque=body.get("biz_opaque_callback_data"))
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        return json_response(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [
                    {"input": str(body["to"]), "wa_id": whatsapp_id(to)}
                    if to
                    else {"input": user_id, "user_id": user_id}
                ],
                "messages": [message],
            },
        )

    @staticmethod
    def _validate(kind: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise invalid(f"(#100) The parameter {kind} is required.")
        if kind == "text":
            text = value.get("body")
            if not isinstance(text, str) or not text:
                raise invalid("(#100) The parameter text['body'] is required.")
            if len(text) > 4096:
                raise invalid("(#100) Invalid parameter", "Param text['body'] must be at most 4096 characters long.")
        elif kind in MEDIA_SEND_TYPES and not (value.get("link") or value.get("id")):
            raise invalid(f"(#100) Param {kind} must contain either link or id.")
        elif kind == "template" and not (value.get("name") and (value.get("language") or {}).get("code")):
            raise invalid("(#100) The parameters template['name'] and template['language']['code'] are required.")
        elif kind == "reaction" and not value.get("message_id"):
            raise invalid("(#100) The parameter reaction['message_id'] is required.")

    def _receipts(self, number: MetaNumber, record: dict[str, Any], *, template: bool, biz_opaque: Any) -> None:
        conversation = secrets.token_hex(16)
        if record["to"].endswith("0000"):
            plan = [("failed", [mp.UNDELIVERABLE])]
        else:
            plan = [("sent", None), ("delivered", None), ("read", None)]
        items = []
        for status, errors in plan:
            status_body = mp.status_object(
                record["id"],
                status,
                whatsapp_id(record["to"]),
                conversation_id=conversation,
                template=template,
                errors=errors,
                biz_opaque=str(biz_opaque) if biz_opaque else None,
            )
            items.append(
                self.outgoing(
                    number,
                    f"statuses.{status}",
                    {"statuses": [status_body]},
                    on_deliver=self._advance(record, status),
                    summary={"messageId": record["id"], "status": status},
                )
            )
        self.dispatcher.send(items, statuses=True)

    def _advance(self, record: dict[str, Any], status: str):
        order = ["accepted", "sent", "delivered", "read", "failed"]

        def apply() -> None:
            with self.state.lock:
                if order.index(status) > order.index(record["status"]):
                    record["status"] = status

        return apply

    def outgoing(self, number: MetaNumber, event: str, value: dict[str, Any], **extra: Any) -> Outgoing:
        with self.state.lock:
            subscription = self.state.subscriptions.get(number.waba_id) or {}
        url = subscription.get("override_callback_uri")
        return Outgoing(
            provider="meta",
            target=number.phone_id,
            event=event,
            url=url,
            payload=mp.envelope(number, value),
            sign_secret=number.app_secret,
            skip_reason=None if url else "WABA has no override_callback_uri",
            **extra,
        )

    # -- media ---------------------------------------------------------------------------------
    def upload_media(self, req: Request) -> Response:
        number = self.phone(req, "post")
        if not req.content_type.startswith("multipart/form-data"):
            raise invalid("(#100) The parameter file is required.")
        parts = parse_multipart(req.content_type, req.body)
        if "messaging_product" not in parts or parts["messaging_product"].data.decode() != "whatsapp":
            raise invalid("(#100) The parameter messaging_product is required.")
        file = parts.get("file")
        if file is None or not file.data:
            raise invalid("(#100) The parameter file is required.")
        declared = parts["type"].data.decode() if "type" in parts else None
        blob = MediaBlob(
            id=mp.new_media_id(),
            content=file.data,
            mime_type=declared or file.content_type or "application/octet-stream",
            file_name=file.filename,
            owner=number.phone_id,
        )
        with self.state.lock:
            self.state.meta_media[blob.id] = blob
        return json_response(200, {"id": blob.id})

    def download(self, req: Request) -> Response:
        with self.state.lock:
            blob = self.state.meta_media.get(req.params["id"])
            owner = self.state.meta_numbers.get(blob.owner) if blob and blob.owner else None
        token = self.token(req)
        if blob is None or owner is None or owner.access_token != token:
            return json_response(404, {"error": {"message": "Media not found", "code": 404}})
        return Response(
            status=200,
            body=blob.content,
            content_type=blob.mime_type,
            headers={"Content-Disposition": f'attachment; filename="{blob.file_name or blob.id}"'},
        )

    def unknown(self, req: Request) -> Response:
        self.token(req)
        rest = req.path.split("/", 2)[2] if req.path.count("/") >= 2 else ""
        return graph(400, 2500, f"Unknown path components: /{rest}")
