"""WhatsApp addresses (JIDs) and the neutral phone numbers derived from them.

``5511900000001@s.whatsapp.net`` is a phone (PN) user, ``…@g.us`` a group, ``…@lid`` a
privacy-preserving "linked identity" that hides the phone: a phone may only be taken from a PN
JID, never from a LID (evolution.md §6.1, gotcha 7).
"""

import re
from typing import Any

PHONE_SERVERS = ("s.whatsapp.net", "c.us")
_DIGITS = re.compile(r"\d{6,15}")
_NUMBER_NOISE = re.compile(r"[\s()+\-.]")


def is_jid(value: Any) -> bool:
    return isinstance(value, str) and "@" in value


def server(jid: Any) -> str:
    return jid.rsplit("@", 1)[1].lower() if is_jid(jid) else ""


def user(jid: str) -> str:
    """The part before ``@``, without a ``:device`` suffix."""
    return jid.rsplit("@", 1)[0].split(":", 1)[0]


def is_group(jid: Any) -> bool:
    return server(jid) == "g.us"


def is_lid(jid: Any) -> bool:
    return server(jid) == "lid"


def is_phone_jid(jid: Any) -> bool:
    return server(jid) in PHONE_SERVERS and user(jid).isdigit()


def is_broadcast(jid: Any) -> bool:
    return server(jid) in {"broadcast", "newsletter"}


def phone_from_jid(jid: Any) -> str | None:
    """E.164 with ``+`` for a phone JID; ``None`` for groups, LIDs and anything else."""
    return f"+{user(jid)}" if is_phone_jid(jid) else None


def preferred(jid: Any, alt: Any) -> str | None:
    """The phone form of an address when Evolution gave both (``remoteJidAlt``/``participantAlt``).

    Evolution 2.3.7 already swaps ``remoteJid`` to the phone form, 2.3.6 does not, and neither
    swaps ``participant``; choosing here makes both versions give the same chat id.
    """
    primary = jid if is_jid(jid) else None
    alternative = alt if is_jid(alt) else None
    if primary and is_lid(primary) and alternative and is_phone_jid(alternative):
        return canonical(alternative)
    return canonical(primary) if primary else (canonical(alternative) if alternative else None)


def lid_of(jid: Any, alt: Any) -> str | None:
    """The LID form of an address, whichever of the two Evolution gave carries it."""
    return next((canonical(value) for value in (jid, alt) if is_jid(value) and is_lid(value) and user(value)), None)


def canonical(jid: str) -> str:
    """Drop a ``:device`` suffix from a user JID (``5511…:12@s.whatsapp.net``)."""
    if is_group(jid) or ":" not in jid:
        return jid
    return f"{user(jid)}@{jid.rsplit('@', 1)[1]}"


def digits(number: str) -> str | None:
    """Digits of a phone number written as E.164, with spaces or punctuation; ``None`` if invalid."""
    cleaned = _NUMBER_NOISE.sub("", number or "")
    return cleaned if _DIGITS.fullmatch(cleaned) else None


def recipient(to: str) -> str | None:
    """What Evolution's ``number`` field gets: digits for a person, the JID for a group or LID."""
    to = (to or "").strip()
    if is_jid(to):
        if is_phone_jid(to):
            return user(to)
        return to if server(to) in {"g.us", "lid", "broadcast"} and user(to) else None
    return digits(to)


def chat_jid(to: str) -> str | None:
    """The full JID of a chat: as given for a JID, ``<digits>@s.whatsapp.net`` for a phone."""
    to = (to or "").strip()
    if is_jid(to):
        return canonical(to) if user(to) else None
    number = digits(to)
    return f"{number}@s.whatsapp.net" if number else None


def display_name(name: Any, jid: Any) -> str | None:
    """A contact's push name, unless it is empty or merely repeats the number."""
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    if is_jid(jid) and name.lstrip("+") == user(jid):
        return None
    return name
