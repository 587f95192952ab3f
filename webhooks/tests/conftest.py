"""Webhook fixtures: the adapters' payload files (sent as their exact bytes), a Meta signer, one
instance per provider, and a stand-in for ``conversations.services.inbound`` that records calls."""

import json
import pathlib
import sys
import types

import pytest

from instances.models import ConnectionStatus, Provider
from instances.providers.meta.signature import sign
from instances.tests.factories import META_CREDENTIALS, ServiceInstanceFactory

PAYLOADS = pathlib.Path(__file__).resolve().parents[2] / "instances" / "tests" / "payloads"
EVOLUTION_URL = "/api/webhooks/evolution"
META_URL = "/api/webhooks/meta"
# The envelope values in the Evolution payload files.
EVOLUTION_INSTANCE_NAME = "acme-support"
EVOLUTION_APIKEY = "B7E2C9A4-5D1F-4E8B-A3C6-9F0D2E7B1A58"
# The phone number ids in the Meta payload files (batch__two_entries.json has both).
META_PHONE_ID = "106540352242922"
META_PHONE_ID_2 = "106540352242923"
APP_SECRET = "test-app-secret"
SUCCESS = {"success": True}


def raw(provider: str, name: str) -> bytes:
    return (PAYLOADS / provider / name).read_bytes()


def evolution_body(name: str, **changes) -> bytes:
    """A payload file with some envelope keys changed, serialised as Evolution does (compact)."""
    payload = {**json.loads(raw("evolution", name)), **changes}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def post_evolution(client, body: bytes, *, secret: str | None = None, url: str = EVOLUTION_URL, **headers):
    if secret is not None:
        headers["x-elsehub-secret"] = secret
    return client.post(url, data=body, content_type="application/json", headers=headers)


def post_meta(client, body: bytes, *, secret: str | None = APP_SECRET, signature: str | None = None, **headers):
    if signature is None and secret is not None:
        signature = sign(body, secret)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post(META_URL, data=body, content_type="application/json", headers=headers)


@pytest.fixture
def evolution_instance(db):
    return ServiceInstanceFactory(
        provider=Provider.EVOLUTION_API,
        connection_status=ConnectionStatus.DISCONNECTED,
        credentials={
            "serverUrl": "http://evolution.test:8080",
            "apiToken": EVOLUTION_APIKEY,
            "instanceName": EVOLUTION_INSTANCE_NAME,
        },
    )


@pytest.fixture
def meta_instance(db):
    return ServiceInstanceFactory(
        provider=Provider.OFFICIAL_META, credentials={**META_CREDENTIALS, "phoneId": META_PHONE_ID}
    )


@pytest.fixture
def app_secret(settings) -> str:
    settings.META_APP_SECRET = APP_SECRET
    return APP_SECRET


def _one_by_one(apply_provider_event):
    def apply_provider_events(*, instance, events):
        for event in events:
            apply_provider_event(instance=instance, event=event)

    return apply_provider_events


@pytest.fixture
def applied(monkeypatch) -> list:
    """(instance id, event) for every ``apply_provider_event`` call, whether or not the real module exists."""
    calls: list = []
    module = types.ModuleType("conversations.services.inbound")

    def apply_provider_event(*, instance, event):
        calls.append((instance.pk, event))

    module.apply_provider_event = apply_provider_event
    module.apply_provider_events = _one_by_one(apply_provider_event)
    monkeypatch.setitem(sys.modules, "conversations.services.inbound", module)
    return calls


@pytest.fixture
def failing_apply(monkeypatch) -> dict:
    """``apply_provider_event`` raising while ``state["fail"]`` is true; calls counted."""
    state = {"fail": True, "calls": 0}
    module = types.ModuleType("conversations.services.inbound")

    def apply_provider_event(*, instance, event):
        state["calls"] += 1
        if state["fail"]:
            raise RuntimeError("conversation store unavailable")

    module.apply_provider_event = apply_provider_event
    module.apply_provider_events = _one_by_one(apply_provider_event)
    monkeypatch.setitem(sys.modules, "conversations.services.inbound", module)
    return state
