"""Evolution API v2 ``/chat/*``: read marks, archive, presence, media, profiles and the stored history.

Lists are built from what this simulator has seen for the instance: messages sent through it,
injected inbound messages, and the contacts those created.
"""

import base64
import copy
import math
import time
from datetime import UTC, datetime
from typing import Any

from instances.simulator import evolution_payloads as p
from instances.simulator.evolution import NAME, EvolutionAPI, error, require
from instances.simulator.media import extension_for
from instances.simulator.routing import HTTPFailure, Request, Response, Router, json_response
from instances.simulator.state import EvolutionInstance


class EvolutionChat:
    def __init__(self, api: EvolutionAPI):
        self.api = api
        self.state = api.state

    def register(self, router: Router) -> None:
        add = router.add
        add("POST", f"/chat/markMessageAsRead/{NAME}", self.mark_read, area="evolution")
        add("POST", f"/chat/archiveChat/{NAME}", self.archive, area="evolution")
        add("POST", f"/chat/sendPresence/{NAME}", self.presence, area="evolution")
        add("POST", f"/chat/getBase64FromMediaMessage/{NAME}", self.get_base64, area="evolution")
        add("POST", f"/chat/fetchProfile/{NAME}", self.fetch_profile, area="evolution")
        add("POST", f"/chat/fetchProfilePictureUrl/{NAME}", self.fetch_picture, area="evolution")
        add("POST", f"/chat/findContacts/{NAME}", self.find_contacts, area="evolution")
        add("POST", f"/chat/findChats/{NAME}", self.find_chats, area="evolution")
        add("POST", f"/chat/findMessages/{NAME}", self.find_messages, area="evolution")

    def mark_read(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        items = self.api.body(req).get("readMessages")
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and {"remoteJid", "fromMe", "id"} <= set(i) for i in items
        ):
            return error(400, ['readMessages items require properties "remoteJid", "fromMe", "id"'])
        with self.state.lock:
            for item in items:
                instance.unread.pop(item["remoteJid"], None)
        return json_response(201, {"message": "Read messages", "read": "success"})

    def archive(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self.api.body(req)
        chat = body.get("chat") or ((body.get("lastMessage") or {}).get("key") or {}).get("remoteJid")
        if "archive" not in body or not chat:
            return error(400, ['instance requires property "archive" and "lastMessage" or "chat"'])
        with self.state.lock:
            (instance.archived.add if body["archive"] else instance.archived.discard)(p.to_jid(chat))
        return json_response(201, {"chatId": chat, "archived": True})

    def presence(self, req: Request) -> Response:
        self.api.guarded(req)
        body = self.api.body(req)
        require(body, "number", "presence", "delay")
        if body["presence"] not in {"composing", "recording", "paused", "available", "unavailable"}:
            return error(400, ["presence is not one of enum values"])
        delay = body["delay"] if isinstance(body["delay"], int | float) else 0
        time.sleep(min(max(delay, 0) / 1000, self.state.config.max_request_delay))
        return json_response(201, {"presence": body["presence"]})

    def get_base64(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        message = self.api.body(req).get("message")
        key_id = ((message or {}).get("key") or {}).get("id") if isinstance(message, dict) else None
        if not key_id:
            return error(400, ['message requires property "key"'])
        row = self.api.find_row(instance, key_id)
        with self.state.lock:
            blob = self.state.evolution_media.get(key_id)
        if row is None:
            return error(400, ["Message not found"])
        message_type = row["messageType"]
        content = row["message"].get(message_type) if isinstance(row["message"], dict) else None
        if blob is None or not isinstance(content, dict) or message_type not in set(p.MEDIA_TYPES.values()):
            return error(400, ["The message is not of the media type"])
        file_name = content.get("fileName") or f"{key_id}.{extension_for(blob.mime_type)}"
        return json_response(
            201,
            {
                "mediaType": message_type,
                "fileName": file_name,
                "caption": content.get("caption"),
                "size": {
                    "fileLength": content.get("fileLength"),
                    "height": content.get("height"),
                    "width": content.get("width"),
                },
                "mimetype": blob.mime_type,
                "base64": base64.b64encode(blob.content).decode(),
                "buffer": None,
            },
        )

    def _profile_number(self, instance: EvolutionInstance, number: Any) -> str:
        jid = p.to_jid(str(number)) if number else (instance.wuid or "")
        if number and p.not_on_whatsapp(jid):
            raise HTTPFailure(error(400, [{"jid": jid, "exists": False, "number": jid.split("@")[0]}]))
        return jid

    def fetch_profile(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        number = self.api.body(req).get("number")
        jid = self._profile_number(instance, number)
        if not jid or instance.status != "open":
            return json_response(
                200,
                {"wuid": jid or None, "name": None, "picture": None, "status": None, "os": None, "isBusiness": False},
            )
        own = jid == instance.wuid
        contact = instance.contacts.get(jid) or {}
        return json_response(
            200,
            {
                "wuid": jid,
                "name": instance.profile_name if own else contact.get("pushName"),
                "numberExists": True,
                "picture": instance.profile_picture_url if own else None,
                "status": {"status": "Hey there! I am using WhatsApp.", "setAt": "2024-01-01T00:00:00.000Z"},
                "isBusiness": own,
                "email": None,
                "description": None,
                "website": None,
            },
        )

    def fetch_picture(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self.api.body(req)
        require(body, "number")
        jid = self._profile_number(instance, body["number"])
        url = instance.profile_picture_url if jid == instance.wuid else None
        return json_response(200, {"wuid": jid, "profilePictureUrl": url})

    def find_contacts(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        where = self.api.body(req).get("where") or {}
        with self.state.lock:
            rows = [
                dict(
                    c,
                    isGroup=c["remoteJid"].endswith("@g.us"),
                    isSaved=True,
                    type="group" if c["remoteJid"].endswith("@g.us") else "contact",
                )
                for c in instance.contacts.values()
            ]
        for field in ("remoteJid", "id", "pushName"):
            if where.get(field):
                rows = [r for r in rows if r.get(field) == where[field]]
        return json_response(200, rows)

    def find_chats(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self.api.body(req)
        where = body.get("where") or {}
        chats: dict[str, dict[str, Any]] = {}
        with self.state.lock:
            for row in instance.messages:
                chats[row["key"]["remoteJid"]] = row  # rows are in time order: the last one wins
            result = []
            for jid, last in chats.items():
                contact = instance.contacts.get(jid) or {}
                inbound = [
                    r["messageTimestamp"]
                    for r in instance.messages
                    if r["key"]["remoteJid"] == jid and not r["key"]["fromMe"]
                ]
                start = max(inbound) if inbound else None
                result.append(
                    {
                        "id": contact.get("id"),
                        "remoteJid": jid,
                        "pushName": contact.get("pushName"),
                        "profilePicUrl": None,
                        "updatedAt": _iso(last["messageTimestamp"]),
                        "windowStart": _iso(start) if start else None,
                        "windowExpires": _iso(start + 86400) if start else None,
                        "windowActive": bool(start and start + 86400 > time.time()),
                        "lastMessage": _clean(last),
                        "unreadCount": instance.unread.get(jid, 0),
                        "isSaved": bool(contact),
                    }
                )
        if where.get("remoteJid"):
            result = [c for c in result if c["remoteJid"] == where["remoteJid"]]
        result.sort(key=lambda c: c["lastMessage"]["messageTimestamp"], reverse=True)
        skip, take = int(body.get("skip") or 0), body.get("take")
        return json_response(200, result[skip : skip + int(take)] if take else result[skip:])

    def find_messages(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        body = self.api.body(req)
        where = body.get("where") or {}
        key = where.get("key") or {}
        with self.state.lock:
            rows = [copy.deepcopy(r) for r in instance.messages]
        for field in ("remoteJid", "fromMe", "id", "participant"):
            if field in key and key[field] is not None:
                rows = [
                    r
                    for r in rows
                    if r["key"].get(field) == key[field]
                    or (field == "remoteJid" and r["key"].get("remoteJidAlt") == key[field])
                ]
        if where.get("messageType"):
            rows = [r for r in rows if r["messageType"] == where["messageType"]]
        bounds = where.get("messageTimestamp") or {}
        if bounds.get("gte"):
            rows = [r for r in rows if r["messageTimestamp"] >= _epoch(bounds["gte"])]
        if bounds.get("lte"):
            rows = [r for r in rows if r["messageTimestamp"] <= _epoch(bounds["lte"])]
        rows.sort(key=lambda r: r["messageTimestamp"], reverse=True)
        size = max(1, int(body.get("offset") or 50))
        page = max(1, int(body.get("page") or 1))
        return json_response(
            200,
            {
                "messages": {
                    "total": len(rows),
                    "pages": math.ceil(len(rows) / size),
                    "currentPage": page,
                    "records": rows[(page - 1) * size : page * size],
                }
            },
        )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """``lastMessage`` of findChats: media keys stripped (``cleanMessageData``)."""
    row = copy.deepcopy(row)
    row.pop("MessageUpdate", None)
    for content in row.get("message", {}).values():
        if isinstance(content, dict):
            for secret in ("mediaKey", "fileEncSha256", "directPath", "jpegThumbnail", "url"):
                content.pop(secret, None)
    if row["key"].get("fromMe"):
        row["pushName"] = "Você"
    return row
