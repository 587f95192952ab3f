"""Meta webhook authenticity: the ``X-Hub-Signature-256`` header and the GET verification handshake.

The signature is ``sha256=<hex>`` of HMAC-SHA256 over the **raw** request body with the App Secret as
key (Meta's Node SDK, ``src/api/webhooks.ts``). Always verify ``request.body`` as received: re-serialised
JSON has different bytes and fails.
"""

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(raw_body: bytes, app_secret: str) -> str:
    """The header value Meta would send for ``raw_body`` (used by the simulator and tests)."""
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return f"{_PREFIX}{digest}"


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Constant-time check of an ``X-Hub-Signature-256`` header; False for a missing or malformed one."""
    if not header or not app_secret or not isinstance(raw_body, bytes | bytearray):
        return False
    header = header.strip()
    if not header.lower().startswith(_PREFIX):
        return False
    received = header[len(_PREFIX) :].strip().lower()
    expected = hmac.new(app_secret.encode(), bytes(raw_body), hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.encode(), expected.encode())


def verify_token_for(credentials: Mapping[str, Any], webhook_secret: str) -> str:
    """The ``hub.verify_token`` this instance registers with Meta (and must expect back on GET)."""
    return str(credentials.get("verifyToken") or "") or webhook_secret


def verify_challenge(params: Mapping[str, Any], expected_token: str) -> str | None:
    """The GET handshake: the ``hub.challenge`` to echo when mode and token match, else None."""
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if params.get("hub.mode") != "subscribe" or not expected_token or not isinstance(token, str):
        return None
    if not hmac.compare_digest(token.encode(), expected_token.encode()):
        return None
    return challenge if isinstance(challenge, str) else None
