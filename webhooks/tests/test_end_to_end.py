"""Webhooks end to end: the provider simulator posts real webhooks (Evolution with our secret
header, Meta signed over the exact bytes) to a live test server, for instances created through
``instances.services.create_instance`` against the simulator.

Celery is eager, so each event is processed inside the live server's request thread right after
its commit; the tests poll the database for the effect. Only instance-side effects are asserted
for Evolution (the conversation store may not exist yet); the Meta test records
``apply_provider_event`` calls with the ``applied`` stand-in.
"""

import time

import pytest
import requests
from django.db import DEFAULT_DB_ALIAS, connections

from instances import services as instance_services
from instances.models import ConnectionStatus, Provider, ServiceInstance
from instances.providers.types import InboundMessage
from instances.simulator.server import run_in_thread
from webhooks.models import EventState, WebhookEvent

pytestmark = pytest.mark.slow

EVOLUTION_KEY = "sim-evolution-key"
META_APP_SECRET, META_TOKEN = "sim-app-secret", "sim-meta-token"
META_PHONE_ID, META_WABA_ID = "100000000000001", "200000000000001"


def _eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def sim(settings, live_server, monkeypatch):
    # The simulator keeps its HTTP connections alive, and with them a live server thread that
    # would hold a persistent database session past the test (and block dropping the database).
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    # The webhook pause leaves create_instance time to save the row before the first delivery
    # (it is saved after the provider call; see the report on instances.services.create_instance).
    handle = run_in_thread(webhook_delay=0.3, webhook_attempts=1, webhook_timeout=5.0, qr_refresh=1.0)
    settings.APP_URL = live_server.url
    settings.META_GRAPH_API_URL = f"{handle.url}/v23.0"
    settings.PROVIDER_RETRY_BACKOFF = 0.01
    settings.PROVIDER_CONNECT_TIMEOUT = 2.0
    settings.PROVIDER_READ_TIMEOUT = 10.0
    yield handle
    handle.wait_for_webhooks(10)
    handle.stop()


def _control(sim, path: str, body: dict) -> dict:
    response = requests.post(f"{sim.url}/_sim/{path}", json=body, timeout=5)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _delivered(sim, event: str) -> list[dict]:
    with sim.state.lock:
        return [d for d in sim.state.deliveries if d["event"] == event and d["result"] == "delivered"]


def _events(instance, event_type: str, state: str = EventState.PROCESSED):
    return WebhookEvent.objects.filter(service_instance=instance, event_type=event_type, state=state)


def test_evolution_qr_update_and_scan_reach_the_instance_through_webhooks(sim):
    instance = instance_services.create_instance(
        name="Loja E2E",
        phone="5514988887777",
        provider=Provider.EVOLUTION_API,
        credentials={"serverUrl": sim.url, "apiToken": EVOLUTION_KEY, "instanceName": "e2e01"},
    )
    first_qr = instance.qr_code_raw
    assert first_qr
    assert instance.connection_status == ConnectionStatus.CONNECTING

    # WhatsApp rotates the QR: the new one arrives only by webhook.
    def rotated():
        fresh = ServiceInstance.objects.get(pk=instance.pk)
        with sim.state.lock:
            current = sim.state.instances["e2e01"].qr_code
        return fresh if fresh.qr_code_raw not in ("", first_qr) and fresh.qr_code_raw == current else None

    fresh = _eventually(rotated)
    assert fresh, "the rotated QR never reached the instance"
    assert fresh.qr_code.startswith("data:image/png;base64,")
    assert _events(instance, "qrcode.updated").exists()

    _control(sim, "scan", {"instance": "e2e01", "number": "5514988887777", "profileName": "Loja Centro"})

    connected = _eventually(
        lambda: ServiceInstance.objects.filter(pk=instance.pk, connection_status=ConnectionStatus.CONNECTED).first()
    )
    assert connected, "the scan's connection update never reached the instance"
    assert connected.profile_name == "Loja Centro"
    assert connected.qr_code == ""
    assert _eventually(lambda: _events(instance, "connection.update").exists())
    assert sim.wait_for_webhooks(10)
    # Every delivery made after the row existed was answered 200; none was refused.
    with sim.state.lock:
        answered = [d.get("httpStatus") for d in sim.state.deliveries if d["result"] != "skipped"]
    assert _delivered(sim, "connection.update")
    assert set(answered) == {200}, answered
    assert not WebhookEvent.objects.filter(state=EventState.FAILED).exists()


def test_meta_handshake_and_signed_inbound_message_through_webhooks(sim, settings, applied):
    settings.META_APP_SECRET = META_APP_SECRET
    settings.META_VERIFY_TOKEN = "e2e-verify-token"
    # The simulator checks the callback URL with a GET (hub.challenge) before subscribing it.
    instance = instance_services.create_instance(
        name="Oficial E2E",
        phone="5514900000001",
        provider=Provider.OFFICIAL_META,
        credentials={
            "wabaId": META_WABA_ID,
            "phoneId": META_PHONE_ID,
            "accessToken": META_TOKEN,
            "verifyToken": "e2e-verify-token",
        },
    )
    with sim.state.lock:
        assert sim.state.subscriptions[META_WABA_ID]["override_callback_uri"] == f"{settings.APP_URL}/api/webhooks/meta"

    _control(sim, "inbound", {"phoneId": META_PHONE_ID, "from": "+5514999990001", "name": "Maria", "text": "Oi!"})

    assert _eventually(lambda: _events(instance, "messages").exists()), WebhookEvent.objects.values()
    (instance_id, event), *_ = applied
    assert instance_id == instance.pk
    assert isinstance(event, InboundMessage)
    assert event.text == "Oi!"
    assert _delivered(sim, "messages.text")


def test_meta_create_passes_the_callback_check_before_the_row_exists(sim, settings):
    # No META_VERIFY_TOKEN and no verifyToken: Meta checks with the instance's own webhook secret,
    # which only the instance being created knows.
    settings.META_VERIFY_TOKEN = ""
    instance = instance_services.create_instance(
        name="Oficial sem token",
        phone="5514900000001",
        provider=Provider.OFFICIAL_META,
        credentials={"wabaId": META_WABA_ID, "phoneId": META_PHONE_ID, "accessToken": META_TOKEN},
    )
    assert ServiceInstance.objects.filter(pk=instance.pk, connection_status=ConnectionStatus.CONNECTED).exists()
    with sim.state.lock:
        assert sim.state.subscriptions[META_WABA_ID]["override_callback_uri"] == f"{settings.APP_URL}/api/webhooks/meta"
    # Afterwards the remembered token is gone: the check now goes through the saved instance.
    assert not instance_services.is_pending_verify_token(instance.webhook_secret)
