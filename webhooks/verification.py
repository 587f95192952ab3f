"""Who is calling: the checks that run before anything is stored.

Meta signs every POST with its App Secret (``X-Hub-Signature-256`` over the raw body,
meta_cloud.md §2) and checks a callback URL with a GET carrying a verify token (§1). Evolution
signs nothing (evolution.md §5.5): a call is genuine when it carries the per-instance secret
Elsehub put in the webhook's headers, or the instance's API key in the envelope's ``apikey``.
Secrets are compared in constant time; the instance always comes from a verified credential,
never from the body alone.
"""

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from instances.crypto import secret_digest
from instances.models import Provider, ServiceInstance
from instances.providers.evolution.provider import SECRET_HEADER as EVOLUTION_SECRET_HEADER
from instances.providers.meta.signature import SIGNATURE_HEADER as META_SIGNATURE_HEADER
from instances.providers.meta.signature import verify_challenge, verify_signature, verify_token_for
from instances.services import is_pending_verify_token

__all__ = [
    "EVOLUTION_SECRET_HEADER",
    "META_SIGNATURE_HEADER",
    "MetaSender",
    "evolution_instance_for",
    "meta_challenge",
    "meta_sender",
]


def _same(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


# ------------------------------------------------------------------------------
# Evolution
# ------------------------------------------------------------------------------


# Every Evolution call looks its instance up by secret: a few seconds of memory spare the hot path a
# query. A deleted instance or a replaced secret stops matching within WEBHOOK_SECRET_CACHE_SECONDS.
_by_digest: dict[str, tuple[float, ServiceInstance]] = {}


def _by_secret_digest(digest: str) -> ServiceInstance | None:
    now = time.monotonic()
    cached = _by_digest.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = (
        ServiceInstance.objects.alive().filter(provider=Provider.EVOLUTION_API, webhook_secret_digest=digest).first()
    )
    if found is None:
        _by_digest.pop(digest, None)
    else:
        if len(_by_digest) > 1000:
            _by_digest.clear()
        _by_digest[digest] = (now + settings.WEBHOOK_SECRET_CACHE_SECONDS, found)
    return found


def evolution_instance_for(*, secret: str | None, payload: Any) -> ServiceInstance | None:
    """The live Evolution instance this call is for, or None when it proves nothing.

    First the ``x-elsehub-secret`` header (looked up by its digest), then the envelope's
    ``apikey`` compared with the tokens of the instance named in ``instance`` (the instance's own
    token Evolution gave when we created it, or the API key it was registered with): several
    instances may share a name across Evolution servers, so every candidate is tried.
    """
    instances = ServiceInstance.objects.alive().filter(provider=Provider.EVOLUTION_API)
    if secret:
        found = _by_secret_digest(secret_digest(secret))
        if found is not None:
            return found
    if not isinstance(payload, Mapping):
        return None
    apikey, name = payload.get("apikey"), payload.get("instance")
    if not isinstance(apikey, str) or not apikey or not isinstance(name, str) or not name:
        return None
    for candidate in instances.filter(remote_id=name):
        tokens = (candidate.provider_token, str(candidate.credentials.get("apiToken") or ""))
        if any(_same(apikey, token) for token in tokens):
            return candidate
    return None


# ------------------------------------------------------------------------------
# Meta
# ------------------------------------------------------------------------------


def meta_challenge(params: Mapping[str, Any]) -> str | None:
    """The ``hub.challenge`` to echo when the verify token is META_VERIFY_TOKEN or a Meta instance's."""
    if settings.META_VERIFY_TOKEN:
        challenge = verify_challenge(params, settings.META_VERIFY_TOKEN)
        if challenge is not None:
            return challenge
    if params.get("hub.mode") != "subscribe" or not params.get("hub.verify_token"):
        return None
    # A number being created is not saved yet when Meta checks its callback (see create_instance).
    if is_pending_verify_token(str(params.get("hub.verify_token"))):
        return verify_challenge(params, str(params.get("hub.verify_token")))
    # Rare (Meta calls it when a callback URL is saved) and few instances: decrypting each is fine.
    for instance in ServiceInstance.objects.alive().filter(provider=Provider.OFFICIAL_META):
        challenge = verify_challenge(params, verify_token_for(instance.credentials, instance.webhook_secret))
        if challenge is not None:
            return challenge
    return None


@dataclass(frozen=True)
class MetaSender:
    """What a verified Meta POST may speak for.

    ``app_secret``: signed with META_APP_SECRET, which vouches for every Meta number.
    ``instances``: phone number id -> live instance the signature vouches for (META_APP_SECRET,
    or the instance's own ``appSecret``). ``refused``: ids of live instances it does not vouch for
    (signed with another instance's appSecret); their changes are not accepted.
    """

    app_secret: bool
    instances: dict[str, ServiceInstance] = field(default_factory=dict)
    refused: frozenset[str] = frozenset()


def meta_sender(*, raw_body: bytes, signature: str | None, phone_number_ids: set[str]) -> MetaSender | None:
    """None unless the signature over the raw body holds for META_APP_SECRET or a named instance's appSecret."""
    if not signature:
        return None
    app_secret = bool(settings.META_APP_SECRET) and verify_signature(raw_body, signature, settings.META_APP_SECRET)
    known: dict[str, ServiceInstance] = {}
    if phone_number_ids:
        for instance in ServiceInstance.objects.alive().filter(
            provider=Provider.OFFICIAL_META, remote_id__in=phone_number_ids
        ):
            known.setdefault(instance.remote_id, instance)
    if app_secret:
        return MetaSender(app_secret=True, instances=known)
    vouched = {}
    for phone_id, instance in known.items():
        own_secret = str(instance.credentials.get("appSecret") or "")
        if own_secret and verify_signature(raw_body, signature, own_secret):
            vouched[phone_id] = instance
    if not vouched:
        return None
    return MetaSender(app_secret=False, instances=vouched, refused=frozenset(known.keys() - vouched.keys()))
