"""A customer writes: build the provider's inbound webhook for one message and deliver it.

The spec is the ``POST /_sim/inbound`` body: ``instance`` (Evolution) or ``phoneId`` (Meta),
``from``, ``kind`` (text, image, video, audio, voice, document, location, reaction, sticker,
contact) and optional ``text``/``caption``, ``name``, ``group``, ``groupId``, ``reactTo``,
``emoji``, ``replyTo``, ``fileName``, ``latitude``/``longitude``/``locationName``/``address``,
``contactName``/``contactPhone``, ``addressing`` (``pn``/``lid``), ``hidePhone`` (the customer's
number is not shown: Meta names them by a business-scoped user id, Evolution by the LID alone) and,
Evolution only, ``fromMe`` (a message typed on the phone itself).
"""

import hashlib
import time
from typing import Any

from instances.simulator import evolution_payloads as p
from instances.simulator import meta_payloads as mp
from instances.simulator.evolution import EvolutionAPI
from instances.simulator.media import sample_media, sample_png, sha256_b64
from instances.simulator.meta import MetaAPI
from instances.simulator.state import EvolutionInstance, MediaBlob, new_cuid, now_iso, now_ts, whatsapp_id

KINDS = ("text", "image", "video", "audio", "voice", "document", "location", "reaction", "sticker", "contact")
MEDIA_KINDS = {"image", "video", "audio", "voice", "document", "sticker"}


class InboundError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _blob(kind: str, spec: dict[str, Any], media_id: str, owner: str | None = None) -> MediaBlob:
    sample = sample_media(kind)
    file_name = spec.get("fileName") or (sample.file_name if kind == "document" else None)
    return MediaBlob(
        id=media_id,
        content=sample.content,
        mime_type=sample.mime_type,
        file_name=file_name,
        owner=owner,
        width=sample.width,
        height=sample.height,
        seconds=sample.seconds,
    )


def _common(spec: dict[str, Any]) -> tuple[str, str, str]:
    kind = spec.get("kind") or "text"
    if kind not in KINDS:
        raise InboundError(400, f"kind must be one of {', '.join(KINDS)}")
    digits = p.digits_of(spec.get("from") or "")
    if len(digits) < 8:
        raise InboundError(400, "from must be a phone number, e.g. +5514999999999")
    digits = whatsapp_id(digits)  # what WhatsApp calls this customer in the webhook
    name = spec.get("name") or f"Cliente {digits[-4:]}"
    return kind, digits, name


def _vcard(name: str, phone: str) -> str:
    digits = p.digits_of(phone)
    return (
        f"BEGIN:VCARD\nVERSION:3.0\nN:;{name};;;\nFN:{name}\n"
        f"TEL;type=CELL;type=VOICE;waid={digits}:+{digits}\nEND:VCARD"
    )


# -- Evolution ---------------------------------------------------------------------------------
def inject_evolution(api: EvolutionAPI, spec: dict[str, Any]) -> dict[str, Any]:
    state = api.state
    kind, digits, name = _common(spec)
    with state.lock:
        instance = state.instances.get(str(spec.get("instance") or ""))
    if instance is None:
        raise InboundError(404, f"no Evolution instance named {spec.get('instance')!r}")
    if instance.status != "open":
        raise InboundError(409, f"instance {instance.name!r} is not connected (state {instance.status}); scan it first")
    from_me = bool(spec.get("fromMe"))
    phone_jid, lid = f"{digits}@s.whatsapp.net", p.lid_for(digits)
    group = bool(spec.get("group") or spec.get("groupId"))
    addressing = spec.get("addressing") or ("lid" if group else "pn")
    key_id = p.new_phone_key_id()
    if group:
        chat = p.to_jid(spec["groupId"]) if spec.get("groupId") else _group_of(instance)
        sender, alt = (lid, phone_jid) if addressing == "lid" else (phone_jid, lid)
        key = {
            "remoteJid": chat,
            "fromMe": from_me,
            "id": key_id,
            "participant": sender,
            "participantAlt": alt,
            "addressingMode": addressing,
        }
    else:
        hidden = bool(spec.get("hidePhone"))
        if hidden:
            addressing = "lid"
        chat = lid if addressing == "lid" else phone_jid
        key = {
            "remoteJid": chat,
            "remoteJidAlt": phone_jid if addressing == "lid" else lid,
            "fromMe": from_me,
            "id": key_id,
            "addressingMode": addressing,
        }
        if hidden:
            del key["remoteJidAlt"]
    message_type, content, blob = _evolution_content(instance, kind, spec, chat, key_id, group)
    message = {"conversation": content} if message_type == "conversation" else {message_type: content}
    message["messageContextInfo"] = p.message_context_info()
    data: dict[str, Any] = {
        "key": key,
        "pushName": (instance.profile_name or "Você") if from_me else name,
        "status": "SERVER_ACK" if from_me else "DELIVERY_ACK",
        "message": message,
        "messageType": message_type,
        "messageTimestamp": int(spec.get("timestamp") or now_ts()),
        "instanceId": instance.instance_id,
        "source": "android",
    }
    if spec.get("replyTo"):
        quoted = _find(instance, str(spec["replyTo"]))
        context = {
            "stanzaId": spec["replyTo"],
            "participant": instance.wuid
            if quoted is None or quoted["key"].get("fromMe")
            else quoted["key"]["remoteJid"],
            "quotedMessage": (quoted or {}).get("message") or {"conversation": ""},
        }
        data["contextInfo"] = context
        if isinstance(content, dict):
            content["contextInfo"] = context
    events: list[tuple[str, Any]] = [("messages.upsert", data)]
    with state.lock:
        if blob is not None:
            state.evolution_media[key_id] = blob
        instance.messages.append(p.stored_row(data))
        if not from_me:
            instance.unread[chat] = instance.unread.get(chat, 0) + 1
        contact_jid = phone_jid
        if contact_jid not in instance.contacts and not from_me:
            now = now_iso()
            contact = {
                "id": new_cuid(),
                "remoteJid": contact_jid,
                "pushName": name,
                "profilePicUrl": None,
                "createdAt": now,
                "updatedAt": now,
                "instanceId": instance.instance_id,
            }
            instance.contacts[contact_jid] = contact
            events.append(
                ("contacts.upsert", {k: contact[k] for k in ("remoteJid", "pushName", "profilePicUrl", "instanceId")})
            )
        if group and chat not in instance.contacts:
            instance.contacts[chat] = {
                "id": new_cuid(),
                "remoteJid": chat,
                "pushName": spec.get("groupName") or "Grupo simulado",
                "profilePicUrl": None,
                "createdAt": now_iso(),
                "updatedAt": now_iso(),
                "instanceId": instance.instance_id,
            }
        state.inbound.append(
            {
                "provider": "evolution",
                "instance": instance.name,
                "id": key_id,
                "from": digits,
                "kind": kind,
                "chatId": chat,
                "at": now_iso(),
            }
        )
    api.dispatcher.send(
        [api.outgoing(instance, event, payload, summary={"keyId": key_id}) for event, payload in events]
    )
    return {"provider": "evolution", "instance": instance.name, "id": key_id, "chatId": chat, "kind": kind}


def _group_of(instance: EvolutionInstance) -> str:
    return "120363" + str(int(hashlib.sha256(instance.name.encode()).hexdigest(), 16))[-12:] + "@g.us"


def _find(instance: EvolutionInstance, key_id: str) -> dict[str, Any] | None:
    return next((r for r in reversed(instance.messages) if r["key"]["id"] == key_id), None)


def _evolution_content(
    instance: EvolutionInstance, kind: str, spec: dict[str, Any], chat: str, key_id: str, group: bool
) -> tuple[str, Any, MediaBlob | None]:
    text = spec.get("text")
    if kind == "text":
        return "conversation", text or "Oi", None
    if kind in MEDIA_KINDS:
        blob = _blob(kind, spec, key_id)
        message_type, content = p.media_content(kind, blob, caption=spec.get("caption") or text)
        return message_type, content, blob
    if kind == "location":
        return (
            "locationMessage",
            {
                "degreesLatitude": float(spec.get("latitude", -22.2139)),
                "degreesLongitude": float(spec.get("longitude", -49.9458)),
                "name": spec.get("locationName") or "Praça simulada",
                "address": spec.get("address") or "Av. Simulada, 100 - Marília, SP",
                "jpegThumbnail": p.index_bytes(sample_png(4)[:24]),
            },
            None,
        )
    if kind == "reaction":
        target = spec.get("reactTo")
        reacted = (
            _find(instance, str(target))
            if target
            else next(
                (r for r in reversed(instance.messages) if r["key"]["remoteJid"] == chat and r["key"]["fromMe"]), None
            )
        )
        if not target and reacted is None:
            raise InboundError(400, "reactTo is required (no message of ours in this chat to react to)")
        reacted_key = {
            "remoteJid": chat,
            "fromMe": bool(reacted and reacted["key"].get("fromMe")),
            "id": str(target or reacted["key"]["id"]),
        }
        if group and reacted is not None and reacted["key"].get("participant"):
            reacted_key["participant"] = reacted["key"]["participant"]
        emoji = spec.get("emoji", text if text is not None else "👍")
        return (
            "reactionMessage",
            {
                "key": reacted_key,
                "text": emoji,
                "senderTimestampMs": p.long_obj(int(time.time() * 1000), unsigned=False),
            },
            None,
        )
    name = spec.get("contactName") or "Contato Simulado"
    phone = spec.get("contactPhone") or "+5514988887777"
    return "contactMessage", {"displayName": name, "vcard": _vcard(name, phone)}, None


# -- Meta --------------------------------------------------------------------------------------
def inject_meta(meta: MetaAPI, spec: dict[str, Any]) -> dict[str, Any]:
    state = meta.state
    kind, digits, name = _common(spec)
    phone_id = str(spec.get("phoneId") or state.config.meta_phone_id)
    with state.lock:
        number = state.meta_numbers.get(phone_id)
    if number is None:
        raise InboundError(404, f"no Meta number with phone id {phone_id!r}")
    if spec.get("fromMe"):
        raise InboundError(400, "fromMe is Evolution-only (Meta echoes are not simulated)")
    wamid = mp.new_wamid(digits, inbound=True)
    hidden = bool(spec.get("hidePhone"))
    sender = {"from_user_id": mp.user_id_for(digits)} if hidden else {"from": digits}
    message: dict[str, Any] = {**sender, "id": wamid, "timestamp": str(int(spec.get("timestamp") or now_ts()))}
    text = spec.get("text")
    media_id = None
    if kind == "text":
        message.update(type="text", text={"body": text or "Oi"})
    elif kind in MEDIA_KINDS:
        media_id = mp.new_media_id()
        blob = _blob(kind, spec, media_id, owner=phone_id)
        extra: dict[str, Any] = {}
        caption = spec.get("caption") or text
        if caption and kind in {"image", "video", "document"}:
            extra["caption"] = caption
        if kind == "document":
            extra["filename"] = blob.file_name
        if kind in {"audio", "voice"}:
            extra["voice"] = kind == "voice"
        if kind == "sticker":
            extra["animated"] = False
        wire = "audio" if kind == "voice" else kind
        message.update(
            {"type": wire, wire: mp.media_object(media_id, blob.mime_type, sha256_b64(blob.content), **extra)}
        )
        with state.lock:
            state.meta_media[media_id] = blob
    elif kind == "location":
        message.update(
            type="location",
            location={
                "latitude": float(spec.get("latitude", -22.2139)),
                "longitude": float(spec.get("longitude", -49.9458)),
                "name": spec.get("locationName") or "Praça simulada",
                "address": spec.get("address") or "Av. Simulada, 100 - Marília, SP",
            },
        )
    elif kind == "reaction":
        target = spec.get("reactTo") or _last_meta_sent(meta, phone_id, digits)
        if not target:
            raise InboundError(400, "reactTo is required (no message of ours to this number to react to)")
        message.update(type="reaction", reaction={"message_id": target, "emoji": spec.get("emoji", text or "👍")})
    else:
        contact_name = spec.get("contactName") or "Contato Simulado"
        contact_digits = p.digits_of(spec.get("contactPhone") or "+5514988887777")
        first, _, last = contact_name.partition(" ")
        message.update(
            type="contacts",
            contacts=[
                {
                    "name": {
                        "formatted_name": contact_name,
                        "first_name": first,
                        **({"last_name": last} if last else {}),
                    },
                    "phones": [{"phone": f"+{contact_digits}", "wa_id": contact_digits, "type": "CELL"}],
                }
            ],
        )
    if spec.get("replyTo"):
        message["context"] = {"from": number.display_phone_number, "id": spec["replyTo"]}
    if spec.get("group") or spec.get("groupId"):
        message["group_id"] = str(spec.get("groupId") or "120363" + number.phone_id[-12:])
    if hidden:
        profile = {"profile": {"name": name, "username": f"@cliente.{digits[-4:]}"}, "user_id": mp.user_id_for(digits)}
    else:
        profile = {"profile": {"name": name}, "wa_id": digits}
    value = {"contacts": [profile], "messages": [message]}
    with state.lock:
        state.inbound.append(
            {"provider": "meta", "phoneId": phone_id, "id": wamid, "from": digits, "kind": kind, "at": now_iso()}
        )
    meta.dispatcher.send([meta.outgoing(number, f"messages.{message['type']}", value, summary={"messageId": wamid})])
    result = {"provider": "meta", "phoneId": phone_id, "id": wamid, "kind": kind}
    if media_id:
        result["mediaId"] = media_id
    return result


def _last_meta_sent(meta: MetaAPI, phone_id: str, digits: str) -> str | None:
    with meta.state.lock:
        for record in reversed(list(meta.state.meta_messages.values())):
            if record["phoneId"] == phone_id and whatsapp_id(record["to"]) == digits:
                return record["id"]
    return None
