"""Reading protobuf values as Evolution serialises them.

The same field arrives in three encodings depending on the Evolution version (evolution.md §7):
up to 2.3.5 bytes are base64 strings and 64-bit integers decimal strings; from 2.3.6 bytes are
index objects ``{"0": 146, "1": 129, ...}`` and 64-bit integers Long objects
``{"low": ..., "high": ..., "unsigned": ...}``; plain numbers also occur. Everything here accepts
all of them and answers ``None`` for anything else, never raising.
"""

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

_LONG_KEYS = frozenset({"low", "high", "unsigned"})
# Later than this, a timestamp can only be in milliseconds (year 5138 in seconds).
_MILLISECONDS_THRESHOLD = 100_000_000_000


def is_long(value: Any) -> bool:
    return isinstance(value, dict) and _LONG_KEYS.issuperset(value) and {"low", "high"} <= value.keys()


def to_int(value: Any) -> int | None:
    """An integer from a number, a decimal string or a Long object."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        return None
    if is_long(value):
        low, high = value.get("low"), value.get("high")
        if not isinstance(low, int) or not isinstance(high, int) or isinstance(low, bool) or isinstance(high, bool):
            return None
        if value.get("unsigned"):
            return ((high & 0xFFFFFFFF) << 32) | (low & 0xFFFFFFFF)
        return (high << 32) | (low & 0xFFFFFFFF)
    return None


def _index_object_bytes(value: dict) -> bytes | None:
    if not value or not all(isinstance(key, str) and key.isdigit() for key in value):
        return None
    if {int(key) for key in value} != set(range(len(value))):
        return None
    items = [value[str(index)] for index in range(len(value))]
    if not all(isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 255 for item in items):
        return None
    return bytes(items)


def to_bytes(value: Any) -> bytes | None:
    """Bytes from a base64 string, an index object, a Node ``Buffer`` JSON or a list of octets."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    if isinstance(value, dict):
        if value.get("type") == "Buffer" and isinstance(value.get("data"), list):
            value = value["data"]
        else:
            return _index_object_bytes(value)
    if isinstance(value, list) and all(isinstance(item, int) and 0 <= item <= 255 for item in value):
        return bytes(value)
    return None


def is_bytes_object(value: Any) -> bool:
    return isinstance(value, dict) and (
        (value.get("type") == "Buffer" and isinstance(value.get("data"), list))
        or _index_object_bytes(value) is not None
    )


def normalise(value: Any) -> Any:
    """A copy in the ≤2.3.5 ``toJSON`` form: bytes as base64, 64-bit integers as numbers.

    That form is compact and is what Baileys reads back when the message is handed to
    ``getBase64FromMediaMessage``.
    """
    if isinstance(value, dict):
        if is_long(value):
            return to_int(value)
        if is_bytes_object(value):
            return base64.b64encode(to_bytes(value) or b"").decode("ascii")
        return {key: normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    return value


def to_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from a Unix timestamp in seconds (or milliseconds), in any encoding."""
    number = to_int(value)
    if number is None and isinstance(value, float):
        number = int(value)
    if number is None or number <= 0:
        return None
    milliseconds = 0
    if number > _MILLISECONDS_THRESHOLD:
        number, milliseconds = divmod(number, 1000)
    try:
        return datetime.fromtimestamp(number, tz=UTC) + timedelta(milliseconds=milliseconds)
    except (OverflowError, OSError, ValueError):
        return None


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
