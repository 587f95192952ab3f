"""Evolution API v2 ``/message/send*``: validation, the 201 answer, and the phone's receipts.

After every accepted send the phone "answers": ``send.message``, then ``messages.update``
SERVER_ACK, DELIVERY_ACK and READ (1:1 chats only: Evolution does not forward group receipts).
A number whose digits end in ``0000`` is not on WhatsApp.
"""

import copy
import time
from collections.abc import Callable
from typing import Any

from instances.simulator import evolution_payloads as p
from instances.simulator.evolution import NAME, EvolutionAPI, error, require
from instances.simulator.media import decode_base64_media, extension_for, parse_multipart, sample_media
from instances.simulator.routing import Request, Response, Router, json_response
from instances.simulator.state import EvolutionInstance, MediaBlob, now_iso

RECEIPTS = ("SERVER_ACK", "DELIVERY_ACK", "READ")
MEDIA_DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "document": "application/octet-stream",
}
MIME_BY_EXTENSION = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "mp4": "video/mp4",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "txt": "text/plain",
    "webp": "image/webp",
    "csv": "text/csv",
    "zip": "application/zip",
}


class EvolutionSend:
    def __init__(self, api: EvolutionAPI):
        self.api = api
        self.state = api.state

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", f"/message/sendText/{NAME}", self.send_text, area="evolution")
        add("POST", f"/message/sendMedia/{NAME}", self.send_media, area="evolution")
        add("POST", f"/message/sendWhatsAppAudio/{NAME}", self.send_audio, area="evolution")
        add("POST", f"/message/sendSticker/{NAME}", self.send_sticker, area="evolution")
        add("POST", f"/message/sendReaction/{NAME}", self.send_reaction, area="evolution")

    # -- sending -------------------------------------------------------------------------------
    def _body(self, req: Request) -> dict[str, Any]:
        if req.content_type.startswith("multipart/form-data"):
            parts = parse_multipart(req.content_type, req.body)
            body: dict[str, Any] = {k: v.data.decode(errors="replace") for k, v in parts.items() if k != "file"}
            if "file" in parts:
                body["_file"] = parts["file"]
            return body
        return self.api.body(req)

    def _send(
        self,
        instance: EvolutionInstance,
        number: str,
        build: Callable[[str], tuple[str, Any, MediaBlob | None]],
        body: dict[str, Any],
    ) -> Response:
        if instance.status != "open":
            return error(400, ["Error: Connection Closed"])
        jid = p.to_jid(number)
        if not jid.endswith(("@g.us", "@lid")) and p.not_on_whatsapp(jid):
            user = jid.split("@")[0]
            return error(400, [{"jid": jid, "exists": False, "number": user}])
        delay = body.get("delay")
        if isinstance(delay, int | float) and delay > 0:
            time.sleep(min(delay / 1000, self.state.config.max_request_delay))
        message_type, content, blob = build(jid)
        answer = p.send_answer(instance, jid=jid, message_type=message_type, content=content)
        self._quote(instance, answer, body.get("quoted"))
        key_id = answer["key"]["id"]
        row = p.stored_row(copy.deepcopy(answer))
        with self.state.lock:
            if blob is not None:
                blob.id = key_id
                self.state.evolution_media[key_id] = blob
            instance.messages.append(row)
            self.state.sent.append(
                {
                    "provider": "evolution",
                    "instance": instance.name,
                    "id": key_id,
                    "to": jid,
                    "type": message_type,
                    "at": now_iso(),
                }
            )
        items = [self.api.outgoing(instance, "send.message", copy.deepcopy(answer), summary={"keyId": key_id})]
        if not jid.endswith("@g.us"):
            for status in RECEIPTS:
                items.append(
                    self.api.outgoing(
                        instance,
                        "messages.update",
                        p.status_update(instance, row, status),
                        on_deliver=self._advance(row, status),
                        summary={"keyId": key_id, "status": status},
                    )
                )
        self.api.dispatcher.send(items, statuses=True)
        return json_response(201, answer)

    def _advance(self, row: dict[str, Any], status: str) -> Callable[[], None]:
        def apply() -> None:
            with self.state.lock:
                row["MessageUpdate"].append({"status": status})
                if p.STATUS_NAMES.index(status) > p.STATUS_NAMES.index(row.get("status", "PENDING")):
                    row["status"] = status

        return apply

    def _quote(self, instance: EvolutionInstance, answer: dict[str, Any], quoted: Any) -> None:
        if not isinstance(quoted, dict) or not isinstance(quoted.get("key"), dict) or not quoted["key"].get("id"):
            return
        key = quoted["key"]
        original = self.api.find_row(instance, key["id"])
        quoted_message = quoted.get("message") or (original or {}).get("message") or {}
        context = answer.get("contextInfo") or {}
        context.update(
            {
                "stanzaId": key["id"],
                "participant": key.get("remoteJid") or answer["key"]["remoteJid"],
                "quotedMessage": quoted_message,
            }
        )
        answer["contextInfo"] = context

    def _media_blob(self, kind: str, source: Any, file: Any, mime: str | None, file_name: str | None) -> MediaBlob:
        sample = sample_media("voice" if kind == "voice" else kind)
        content = file.data if file is not None else decode_base64_media(str(source or ""))
        blob = MediaBlob(
            id="",
            content=content if content is not None else sample.content,
            mime_type=mime or sample.mime_type,
            file_name=file_name,
            width=sample.width,
            height=sample.height,
            seconds=sample.seconds,
        )
        return blob

    def send_text(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self.api.body(req)
        require(body, "number", "text")
        if not str(body["text"]).strip():
            return error(400, ["Text is required"])
        return self._send(instance, str(body["number"]), lambda jid: ("conversation", str(body["text"]), None), body)

    def send_media(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self._body(req)
        file = body.pop("_file", None)
        require(body, "number", "mediatype", *(() if file else ("media",)))
        kind = body["mediatype"]
        if kind not in MEDIA_DEFAULT_MIME:
            return error(400, ["mediatype is not one of enum values: image,document,video,audio"])
        file_name = body.get("fileName") or (file.filename if file else None)
        media = body.get("media")
        if kind == "document" and not file_name and decode_base64_media(str(media or "")) is not None:
            return error(400, ["For base64 the file name must be informed."])
        mime = body.get("mimetype") or (file.content_type if file else None)
        if file_name and "." in file_name:
            mime = MIME_BY_EXTENSION.get(file_name.rsplit(".", 1)[1].lower(), mime)
        if kind == "image":
            mime = "image/jpeg"  # Evolution re-encodes images with sharp
        mime = mime or MEDIA_DEFAULT_MIME[kind]

        def build(jid: str) -> tuple[str, Any, MediaBlob]:
            blob = self._media_blob(
                kind, media, file, mime, file_name or (f"file.{extension_for(mime)}" if kind == "document" else None)
            )
            message_type, content = p.media_content(kind, blob, caption=body.get("caption"))
            return message_type, content, blob

        return self._send(instance, str(body["number"]), build, body)

    def send_audio(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self._body(req)
        file = body.pop("_file", None)
        require(body, "number", *(() if file else ("audio",)))

        def build(jid: str) -> tuple[str, Any, MediaBlob]:
            blob = self._media_blob("voice", body.get("audio"), file, "audio/ogg; codecs=opus", None)
            return (*p.media_content("voice", blob), blob)

        return self._send(instance, str(body["number"]), build, body)

    def send_sticker(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self._body(req)
        file = body.pop("_file", None)
        require(body, "number", *(() if file else ("sticker",)))

        def build(jid: str) -> tuple[str, Any, MediaBlob]:
            blob = self._media_blob("sticker", body.get("sticker"), file, "image/webp", None)
            return (*p.media_content("sticker", blob), blob)

        return self._send(instance, str(body["number"]), build, body)

    def send_reaction(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self.api.body(req)
        key = body.get("key")
        if not isinstance(key, dict) or not all(k in key for k in ("id", "remoteJid", "fromMe")):
            return error(400, ['key requires properties "id", "remoteJid", "fromMe"'])
        reaction = body.get("reaction")
        if not isinstance(reaction, str) or len(reaction) > 10:
            return error(400, ['"reaction" must be an emoji'])

        def build(jid: str) -> tuple[str, Any, None]:
            content = {
                "key": {"remoteJid": key["remoteJid"], "fromMe": bool(key["fromMe"]), "id": key["id"]},
                "text": reaction,
                "senderTimestampMs": p.long_obj(int(time.time() * 1000), unsigned=False),
            }
            return "reactionMessage", content, None

        return self._send(instance, str(key["remoteJid"]), build, body)
