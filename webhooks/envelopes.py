"""The little of each provider's envelope the inbox reads before processing: the body as JSON, the
event type for the admin list, the chat it concerns (its partition) and (Meta) which phone number
each change belongs to.

Everything else about the payloads is the adapters' business (``parse_webhook``).
"""

import json
from typing import Any

from instances.providers.evolution import jids
from webhooks.models import WebhookEvent

EVENT_TYPE_LENGTH = WebhookEvent._meta.get_field("event_type").max_length


class Malformed:
    """A body that is not JSON (or JSON that PostgreSQL cannot store, such as NaN)."""

    def __init__(self, text: str):
        self.text = text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _without_nul(value: Any) -> Any:
    # jsonb refuses U+0000 anywhere in a string: a body carrying one would fail every retry.
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def load_json(raw_body: bytes) -> Any:
    """The parsed body, or ``Malformed`` holding its text."""
    try:
        payload = json.loads(raw_body, parse_constant=_reject_constant)
    except ValueError:  # includes UnicodeDecodeError
        return Malformed(raw_body.decode("utf-8", errors="replace").replace("\x00", ""))
    return _without_nul(payload) if b"\\u0000" in raw_body else payload


# ------------------------------------------------------------------------------
# Evolution (evolution.md §5.1-5.3)
# ------------------------------------------------------------------------------


def evolution_event_type(payload: Any, slug: str | None = None) -> str:
    """``messages.upsert`` from the body, else from the by-events URL suffix (``messages-upsert``)."""
    raw = payload.get("event") if isinstance(payload, dict) else None
    if isinstance(raw, str) and raw.strip():
        name = raw.strip().lower().replace("_", ".")
    else:
        name = (slug or "").lower().replace("-", ".")
    return name[:EVENT_TYPE_LENGTH]


def evolution_chat_key(payload: Any) -> str:
    """The chat a call is about (``data.key.remoteJid`` or ``data.remoteJid``), or ``""``.

    A chat addressed by its LID names the phone too (``remoteJidAlt``): the phone is preferred, as
    the adapter prefers it for the chat id, so the customer's messages share one partition however
    WhatsApp addressed each of them.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, list):
        data = data[0] if data else None
    if not isinstance(data, dict):
        return ""
    key = data.get("key")
    source = key if isinstance(key, dict) and key.get("remoteJid") else data
    return jids.preferred(source.get("remoteJid"), source.get("remoteJidAlt")) or ""


# ------------------------------------------------------------------------------
# Meta (meta_cloud.md §3): object / entry[] / changes[] / value.metadata.phone_number_id
# ------------------------------------------------------------------------------


def _phone_number_id(change: Any) -> str | None:
    value = change.get("value") if isinstance(change, dict) else None
    metadata = value.get("metadata") if isinstance(value, dict) else None
    phone_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if isinstance(phone_id, int) and not isinstance(phone_id, bool):
        phone_id = str(phone_id)
    return phone_id if isinstance(phone_id, str) and phone_id else None


def _changes(payload: Any):
    entries = payload.get("entry") if isinstance(payload, dict) else None
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            yield index, entry, change


def meta_phone_number_ids(payload: Any) -> set[str]:
    return {phone_id for _index, _entry, change in _changes(payload) if (phone_id := _phone_number_id(change))}


def split_meta_batch(payload: Any) -> dict[str | None, Any]:
    """One envelope per phone number id, each holding only that number's changes.

    Changes without a number (``account_update``, template updates) go under ``None``. A body with
    no change at all is returned whole under ``None``.
    """
    groups: dict[str | None, dict[int, dict]] = {}
    for index, entry, change in _changes(payload):
        entries = groups.setdefault(_phone_number_id(change), {})
        if index not in entries:
            entries[index] = {**entry, "changes": []}
        entries[index]["changes"].append(change)
    if not groups:
        return {None: payload}
    envelope = {key: value for key, value in payload.items() if key != "entry"}
    return {phone_id: {**envelope, "entry": list(entries.values())} for phone_id, entries in groups.items()}


def meta_event_type(payload: Any) -> str:
    """``messages``, ``statuses``, ``messages+statuses``, ``account_update``... in order of appearance."""
    kinds: list[str] = []
    for _index, _entry, change in _changes(payload):
        field = change.get("field") if isinstance(change, dict) else None
        value = change.get("value") if isinstance(change, dict) else None
        if field == "messages" and isinstance(value, dict):
            kinds.extend([key for key in ("messages", "statuses", "errors") if value.get(key)] or ["messages"])
        else:
            kinds.append(field if isinstance(field, str) and field else "unknown")
    return "+".join(dict.fromkeys(kinds))[:EVENT_TYPE_LENGTH]


def meta_chat_key(payload: Any) -> str:
    """The first customer a Meta part is about (a message's ``from``, a status's ``recipient_id``)."""
    for _index, _entry, change in _changes(payload):
        value = change.get("value") if isinstance(change, dict) else None
        if not isinstance(value, dict):
            continue
        for field, name in (("messages", "from"), ("statuses", "recipient_id")):
            items = value.get(field)
            first = items[0] if isinstance(items, list) and items else None
            chat = first.get(name) if isinstance(first, dict) else None
            if isinstance(chat, str) and chat:
                return chat
    return ""
