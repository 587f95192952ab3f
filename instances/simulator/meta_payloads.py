"""WhatsApp Cloud API bodies: ids, Graph errors, the webhook envelope, statuses and inbound messages."""

import base64
import hashlib
import secrets
from typing import Any

from instances.simulator.state import MetaNumber, fbtrace_id, new_digits, now_ts

UNSUPPORTED_OBJECT = (
    "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing "
    "permissions, or does not support this operation. Please read the Graph API documentation at "
    "https://developers.facebook.com/docs/graph-api"
)


def new_wamid(phone: str, *, inbound: bool = False) -> str:
    """Shaped like real wamids: base64 of the chat's phone and a message id (outbound 18, inbound 22 chars)."""
    phone_bytes = "".join(ch for ch in phone if ch.isdigit()).encode()
    if inbound:
        tail = b"\x12\x18\x16" + ("3EB0" + secrets.token_hex(9).upper()).encode()
    else:
        tail = b"\x11\x18\x12" + secrets.token_hex(9).upper().encode()
    raw = b"\x1c\x18" + bytes([len(phone_bytes)]) + phone_bytes + b"\x15\x02\x00" + tail + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


def new_media_id() -> str:
    return new_digits(16)


def graph_error(
    code: int, message: str, *, type_: str = "OAuthException", subcode: int | None = None, details: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if details is not None:
        body["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        body["error_subcode"] = subcode
    body["fbtrace_id"] = fbtrace_id()
    return {"error": body}


def envelope(number: MetaNumber, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": number.waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": number.display_phone_number,
                                "phone_number_id": number.phone_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def user_id_for(digits: str) -> str:
    """A stable fake business-scoped user id (BSUID) for a customer who hides their number."""
    return f"BR.{int(hashlib.sha256(digits.encode()).hexdigest()[:16], 16) % 10**20:020d}"


def status_object(
    wamid: str,
    status: str,
    recipient: str,
    *,
    conversation_id: str,
    template: bool = False,
    errors: list[dict[str, Any]] | None = None,
    biz_opaque: str | None = None,
) -> dict[str, Any]:
    # A send to a business-scoped user id is reported with recipient_user_id instead of recipient_id.
    recipient_key = "recipient_id" if recipient.isdigit() else "recipient_user_id"
    body: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(now_ts()), recipient_key: recipient}
    if biz_opaque:
        body["biz_opaque_callback_data"] = biz_opaque
    if status == "failed":
        body["errors"] = errors or []
        return body
    category = "marketing" if template else "service"
    if status == "sent":
        body["conversation"] = {
            "id": conversation_id,
            "expiration_timestamp": str(now_ts() + 86400),
            "origin": {"type": category},
        }
    body["pricing"] = {
        "billable": template,
        "pricing_model": "PMP",
        "category": category,
        "type": "regular" if template else "free_customer_service",
    }
    return body


UNDELIVERABLE = {
    "code": 131026,
    "title": "Message undeliverable",
    "message": "Message undeliverable",
    "error_data": {"details": "Message Undeliverable."},
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}


def media_object(media_id: str, mime_type: str, sha256_b64: str, **extra: Any) -> dict[str, Any]:
    return {"mime_type": mime_type, "sha256": sha256_b64, "id": media_id, **extra}
