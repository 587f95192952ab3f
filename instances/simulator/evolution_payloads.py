"""Evolution API v2 bodies: send answers, stored rows, webhook envelopes and ``data`` payloads.

Shapes follow Evolution 2.3.6/2.3.7 (``prepareMessage`` with ``deserializeMessageBuffers``): bytes
are index objects ``{"0": 146, ...}``, 64-bit integers are Long objects ``{"low", "high",
"unsigned"}``, ``messageTimestamp`` is a plain number.
"""

import hashlib
import secrets
from typing import Any

from instances.simulator.state import EvolutionInstance, MediaBlob, new_cuid, now_iso, now_ts, whatsapp_id

STATUS_NAMES = ("ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED")
MEDIA_TYPES = {
    "image": "imageMessage",
    "video": "videoMessage",
    "audio": "audioMessage",
    "voice": "audioMessage",
    "document": "documentMessage",
    "sticker": "stickerMessage",
}


# -- protobuf JSON encodings (2.3.6+) ----------------------------------------------------------
def index_bytes(data: bytes) -> dict[str, int]:
    return {str(i): b for i, b in enumerate(data)}


def long_obj(value: int, *, unsigned: bool = True) -> dict[str, Any]:
    def int32(v: int) -> int:
        v &= 0xFFFFFFFF
        return v - 0x100000000 if v & 0x80000000 else v

    return {"low": int32(value), "high": int32(value >> 32), "unsigned": unsigned}


# -- addresses and ids -------------------------------------------------------------------------
def digits_of(value: str) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


def to_jid(number: str) -> str:
    """Evolution's ``createJid`` with its Brazilian ninth-digit rule (not the Mexican/Argentinian ones)."""
    number = str(number).strip()
    if "@" in number:
        user, _, server = number.partition("@")
        return f"{user.split(':')[0]}@{server}"
    if "-" in number and len(number) >= 24:
        return f"{number}@g.us"
    digits = digits_of(number.split(":")[0])
    if len(digits) >= 18:
        return f"{digits}@g.us"
    return f"{whatsapp_id(digits)}@s.whatsapp.net"


def not_on_whatsapp(number: str) -> bool:
    """The simulator's rule: a number whose digits end in ``0000`` has no WhatsApp account."""
    return digits_of(number.split("@")[0]).endswith("0000")


def lid_for(digits: str) -> str:
    """A stable fake ``@lid`` identity for a phone number."""
    value = int(hashlib.sha256(digits.encode()).hexdigest()[:12], 16) % 10**15
    return f"{value:015d}@lid"


def new_send_key_id() -> str:
    """Baileys' own ids: ``3EB0`` + 18 hex characters (22 in all), which Evolution reports as web."""
    return "3EB0" + secrets.token_hex(9).upper()


def new_phone_key_id() -> str:
    return secrets.token_hex(16).upper()


def new_group_jid() -> str:
    return "120363" + "".join(secrets.choice("0123456789") for _ in range(12)) + "@g.us"


# -- message content ---------------------------------------------------------------------------
def media_content(kind: str, blob: MediaBlob, *, caption: str | None = None) -> tuple[str, dict[str, Any]]:
    """``(messageType, content)`` for a media message with these bytes."""
    message_type = MEDIA_TYPES[kind]
    digest = hashlib.sha256(blob.content).digest()
    path_id = f"{secrets.randbelow(10**18)}_{secrets.randbelow(10**16)}_n.enc"
    content: dict[str, Any] = {
        "url": f"https://mmg.whatsapp.net/v/t62.7118-24/{path_id}?ccb=11-4&oh=01_Q5Aa{secrets.token_hex(6)}"
        f"&oe=694A1B2C&_nc_sid=5e03e0&mms3=true",
        "mimetype": blob.mime_type,
        "fileSha256": index_bytes(digest),
        "fileLength": long_obj(len(blob.content)),
        "mediaKey": index_bytes(secrets.token_bytes(32)),
        "fileEncSha256": index_bytes(secrets.token_bytes(32)),
        "directPath": f"/v/t62.7118-24/{path_id}?ccb=11-4&oh=01_Q5Aa{secrets.token_hex(6)}&oe=694A1B2C&_nc_sid=5e03e0",
        "mediaKeyTimestamp": long_obj(now_ts(), unsigned=False),
    }
    if kind in {"image", "video", "sticker"}:
        content["height"], content["width"] = blob.height or 16, blob.width or 16
    if kind in {"video", "audio", "voice"}:
        content["seconds"] = blob.seconds or 1
    if kind == "video":
        content["gifPlayback"] = False
    if kind in {"audio", "voice"}:
        content["ptt"] = kind == "voice"
        if kind == "voice":
            content["waveform"] = index_bytes(bytes(secrets.randbelow(100) for _ in range(64)))
    if kind == "document":
        content.update({"title": blob.file_name, "fileName": blob.file_name, "pageCount": 1, "contactVcard": False})
    if kind == "sticker":
        content.update(
            {
                "isAnimated": False,
                "stickerSentTs": long_obj(now_ts() * 1000, unsigned=False),
                "isAvatar": False,
                "isAiSticker": False,
                "isLottie": False,
            }
        )
    if kind == "image":
        content["viewOnce"] = False
    if caption and kind in {"image", "video", "document"}:
        content["caption"] = caption
    return message_type, content


def message_context_info() -> dict[str, Any]:
    return {"messageSecret": index_bytes(secrets.token_bytes(32))}


def own_context_info() -> dict[str, Any]:
    """What Evolution injects into 1:1 sends (it appears at the top level of the answer)."""
    return {
        "mentionedJid": [],
        "groupMentions": [],
        "ephemeralSettingTimestamp": long_obj(now_ts() - 48 * 3600, unsigned=False),
        "disappearingMode": {"initiator": 0},
    }


# -- sends -------------------------------------------------------------------------------------
def send_answer(
    instance: EvolutionInstance, *, jid: str, message_type: str, content: Any, key_id: str | None = None
) -> dict[str, Any]:
    """The 201 body of every ``/message/send*`` (and the ``send.message`` webhook's ``data``)."""
    message = {"conversation": content} if message_type == "conversation" else {message_type: content}
    answer: dict[str, Any] = {
        "key": {"remoteJid": jid, "fromMe": True, "id": key_id or new_send_key_id()},
        "pushName": "Você",
        "status": "PENDING",
        "message": message,
        "contextInfo": own_context_info() if not jid.endswith("@g.us") else None,
        "messageType": message_type,
        "messageTimestamp": now_ts(),
        "instanceId": instance.instance_id,
        "source": "web",
    }
    if answer["contextInfo"] is None:
        del answer["contextInfo"]
    return answer


def stored_row(data: dict[str, Any]) -> dict[str, Any]:
    """A ``Message`` row as ``findMessages`` returns it."""
    row = {"id": new_cuid(), **data, "MessageUpdate": []}
    row.setdefault("contextInfo", None)
    return row


def status_update(instance: EvolutionInstance, row: dict[str, Any], status: str) -> dict[str, Any]:
    key = row["key"]
    data = {
        "messageId": row["id"],
        "keyId": key["id"],
        "remoteJid": key["remoteJid"],
        "fromMe": key.get("fromMe", True),
        "status": status,
        "instanceId": instance.instance_id,
    }
    if status == "READ" and not key["remoteJid"].endswith("@g.us"):
        data["participant"] = key["remoteJid"]
    return data


# -- webhooks ----------------------------------------------------------------------------------
def envelope(instance: EvolutionInstance, event: str, data: Any, *, server_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": event,
        "instance": instance.name,
        "data": data,
        "destination": (instance.webhook or {}).get("url"),
        "date_time": now_iso(),
    }
    if instance.wuid:
        body["sender"] = instance.wuid
    body["server_url"] = server_url
    body["apikey"] = instance.token
    return body


def event_config_name(event: str) -> str:
    """``messages.upsert`` -> ``MESSAGES_UPSERT`` (the name used in ``webhook.events``)."""
    return event.replace(".", "_").replace("-", "_").upper()


def connection_data(instance: EvolutionInstance, state: str, reason: int = 200) -> dict[str, Any]:
    if state in {"open", "refused"}:
        return {
            "instance": instance.name,
            "wuid": instance.wuid,
            "profileName": instance.profile_name,
            "profilePictureUrl": instance.profile_picture_url,
            "state": state,
            "statusReason": reason,
        }
    return {"instance": instance.name, "state": state, "statusReason": reason}


def qr_object(instance: EvolutionInstance) -> dict[str, Any]:
    return {
        "pairingCode": instance.pairing_code,
        "code": instance.qr_code,
        "base64": instance.qr_image,
        "count": instance.qr_count,
    }


def new_qr_code() -> str:
    def b64(n: int) -> str:
        return secrets.token_urlsafe(n).replace("-", "+").replace("_", "/") + "="

    return f"2@{secrets.token_urlsafe(48)},{b64(32)},{b64(32)},{b64(16)}"


def new_pairing_code() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


def webhook_row(instance: EvolutionInstance) -> dict[str, Any] | None:
    return dict(instance.webhook) if instance.webhook else None


def instance_row(instance: EvolutionInstance) -> dict[str, Any]:
    """One item of ``fetchInstances`` (a Prisma ``Instance`` row with relations)."""
    chats = {row["key"]["remoteJid"] for row in instance.messages}
    return {
        "id": instance.instance_id,
        "name": instance.name,
        "connectionStatus": instance.status if instance.status != "refused" else "close",
        "ownerJid": instance.wuid,
        "profileName": instance.profile_name,
        "profilePicUrl": instance.profile_picture_url,
        "integration": instance.integration,
        "number": instance.number,
        "businessId": None,
        "token": instance.token,
        "clientName": "evolution_simulator",
        "disconnectionReasonCode": instance.disconnection_reason,
        "disconnectionObject": None,
        "disconnectionAt": instance.disconnection_at,
        "createdAt": instance.created_at,
        "updatedAt": instance.updated_at,
        "Chatwoot": None,
        "Proxy": None,
        "Rabbitmq": None,
        "Nats": None,
        "Sqs": None,
        "Websocket": None,
        "Setting": {"id": new_cuid(), **instance.settings, "instanceId": instance.instance_id},
        "_count": {"Message": len(instance.messages), "Contact": len(instance.contacts), "Chat": len(chats)},
    }
