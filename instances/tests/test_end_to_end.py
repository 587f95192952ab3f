"""Service instances end to end: the real Evolution and Meta adapters talk over real HTTP to the
provider simulator (``instances.simulator``), driven through the REST API and the Django admin.

No fake provider and no mocks: each test starts its own simulator on a free port and steers the
"phone" through the simulator's control API (``/_sim/``). Nothing listens at ``APP_URL`` (the
webhook views do not exist yet), so it points at a closed local port: the simulator's webhook
deliveries fail at once, and the tests read what was configured from the simulator's state.
"""

import base64
import re
import socket

import pytest
import requests
from django.urls import reverse

from accounts.models import Role
from instances.models import ConnectionStatus, ServiceInstance
from instances.simulator.server import run_in_thread

pytestmark = pytest.mark.django_db

EVOLUTION_KEY = "sim-evolution-key"
META_TOKEN, META_PHONE_ID, META_WABA_ID = "sim-meta-token", "100000000000001", "200000000000001"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI_PREFIX = "data:image/png;base64,"
SECRET_HEADER = "x-elsehub-secret"

# The contract's Portuguese messages (locale/pt_BR), as the API and the admin show them.
CREDENTIALS_REFUSED = "O provedor de WhatsApp recusou as credenciais (token inválido ou expirado)"
NAME_TAKEN = "Já existe uma instância com este nome no provedor de WhatsApp"
UNREACHABLE = "Não foi possível contatar o provedor de WhatsApp"
UNAVAILABLE = "O provedor de WhatsApp está indisponível"
META_NO_QR = "Operação indisponível para instâncias OFFICIAL_META: conexão por QR code"

ADMIN_LOGIN = "/admin/login/"
ADMIN_CHANGELIST = "/admin/instances/serviceinstance/"
ADMIN_ADD = "/admin/instances/serviceinstance/add/"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _png_of(data_uri: str) -> bytes:
    assert data_uri.startswith(DATA_URI_PREFIX), data_uri[:40]
    png = base64.b64decode(data_uri.removeprefix(DATA_URI_PREFIX), validate=True)
    assert png[:8] == PNG_SIGNATURE
    return png


class Simulator:
    """The running simulator, seen from outside: its provider routes and its control API."""

    def __init__(self, handle):
        self.handle = handle
        self.url = handle.url

    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/_sim/{path}", timeout=5, **kwargs)

    def evolution(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", headers={"apikey": EVOLUTION_KEY}, timeout=5, **kwargs)

    def state(self) -> dict:
        response = self.control("GET", "state")
        assert response.status_code == 200, response.text
        return response.json()

    def instance(self, name: str) -> dict | None:
        return next((row for row in self.state()["instances"] if row["name"] == name), None)

    def qr_code(self, name: str) -> str | None:
        """The code behind the QR the simulator currently shows (not part of the state snapshot)."""
        with self.handle.state.lock:
            return self.handle.state.instances[name].qr_code

    def scan(self, name: str, **extra) -> dict:
        response = self.control("POST", "scan", json={"instance": name, **extra})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "open"
        return response.json()

    def inbound(self, name: str, sender: str, customer: str, text: str) -> None:
        spec = {"instance": name, "from": sender, "name": customer, "kind": "text", "text": text}
        response = self.control("POST", "inbound", json=spec)
        assert response.status_code == 201, response.text

    def faults(self, **values) -> dict:
        response = self.control("POST", "faults", json=values)
        assert response.status_code == 200, response.text
        return response.json()

    def create_remote(self, name: str) -> None:
        """An instance made on the server by someone else (not through Elsehub)."""
        body = {"instanceName": name, "integration": "WHATSAPP-BAILEYS", "qrcode": False}
        response = self.evolution("POST", "/instance/create", json=body)
        assert response.status_code == 201, response.text


@pytest.fixture
def sim(settings):
    # verify_meta_callback=False: the simulator would check the Meta callback URL with a GET
    # hub.challenge, and /api/webhooks/meta does not exist yet.
    handle = run_in_thread(webhook_delay=0.01, webhook_attempts=1, webhook_timeout=1.0, verify_meta_callback=False)
    settings.APP_URL = f"http://127.0.0.1:{_closed_port()}"
    settings.META_GRAPH_API_URL = f"{handle.url}/v23.0"
    settings.PROVIDER_RETRY_BACKOFF = 0.01
    settings.PROVIDER_CONNECT_TIMEOUT = 2.0
    settings.PROVIDER_READ_TIMEOUT = 5.0
    yield Simulator(handle)
    handle.stop()


def evolution_body(sim: Simulator, instance_name: str = "vendas01", **credentials) -> dict:
    return {
        "name": "WhatsApp Vendas",
        "phone": "(14) 98888-7777",
        "provider": "EVOLUTION_API",
        "credentials": {"serverUrl": sim.url, "apiToken": EVOLUTION_KEY, "instanceName": instance_name, **credentials},
    }


def meta_body(**credentials) -> dict:
    return {
        "name": "WhatsApp Oficial",
        "phone": "5514900000001",
        "provider": "OFFICIAL_META",
        "credentials": {"wabaId": META_WABA_ID, "phoneId": META_PHONE_ID, "accessToken": META_TOKEN, **credentials},
    }


def create_evolution(client, sim: Simulator, instance_name: str = "vendas01") -> dict:
    response = client.post("/api/service-instances", evolution_body(sim, instance_name), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def create_connected(client, sim: Simulator, instance_name: str = "vendas01") -> dict:
    created = create_evolution(client, sim, instance_name)
    sim.scan(instance_name, number="5514988887777", profileName="Loja Centro")
    status = client.get(f"/api/service-instances/{created['id']}/status").json()
    assert status["status"] == "connected", status
    return created


# ------------------------------------------------------------------------------
# Evolution through the API
# ------------------------------------------------------------------------------


def test_evolution_create_returns_the_simulators_qr_and_configures_the_webhook(admin_client, sim, settings):
    response = admin_client.post("/api/service-instances", evolution_body(sim), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "connecting"
    assert body["credentials"] == {"serverUrl": sim.url, "apiToken": "••••-key", "instanceName": "vendas01"}
    _png_of(body["qrcode"]["qrcode"])
    assert body["qrcode"]["base64"] == body["qrcode"]["qrcode"].removeprefix(DATA_URI_PREFIX)

    instance = ServiceInstance.objects.get(pk=body["id"])
    assert instance.qr_code_raw == sim.qr_code("vendas01")
    remote = sim.instance("vendas01")
    assert remote["status"] == "connecting"
    assert remote["webhook"]["enabled"] is True
    assert remote["webhook"]["url"] == f"{settings.APP_URL}/api/webhooks/evolution"
    assert remote["webhook"]["headers"] == {SECRET_HEADER: instance.webhook_secret}
    assert {"MESSAGES_UPSERT", "CONNECTION_UPDATE", "QRCODE_UPDATED"} <= set(remote["webhook"]["events"])
    # The instance's own token, which Evolution's webhooks carry as apikey, is kept (encrypted).
    assert instance.provider_token == remote["token"] and remote["token"] not in instance.provider_token_encrypted


def test_evolution_qrcode_and_status_follow_the_scan(
    admin_client, supervisor_client, sim, captured_events, django_capture_on_commit_callbacks
):
    created = create_evolution(admin_client, sim)
    url = f"/api/service-instances/{created['id']}"

    qr = supervisor_client.get(f"{url}/qrcode")
    assert qr.status_code == 200, qr.json()
    assert qr.json()["instanceName"] == "vendas01"
    _png_of(qr.json()["qrcode"])
    assert supervisor_client.get(f"{url}/status").json() == {"state": "connecting", "status": "connecting"}

    sim.scan("vendas01", profileName="Loja Centro")
    with django_capture_on_commit_callbacks(execute=True):
        status = supervisor_client.get(f"{url}/status")

    assert status.json() == {"state": "open", "status": "connected"}
    ((event, data, groups),) = captured_events
    assert event == "instance:status"
    assert data["serviceInstanceId"] == created["id"]
    assert data["status"] == "connected"
    assert groups == ("supervisors", f"instance.{created['id']}")
    detail = supervisor_client.get(url).json()
    assert detail["status"] == "connected"
    assert supervisor_client.get(f"{url}/qrcode").status_code == 400  # nothing left to scan


def test_evolution_profile_and_contacts_of_a_connected_number(admin_client, sim):
    created = create_connected(admin_client, sim)
    url = f"/api/service-instances/{created['id']}"
    sim.inbound("vendas01", "+5514999990001", "Maria", "Oi, tudo bem?")
    sim.inbound("vendas01", "+5514999990002", "João", "Quero um orçamento")

    profile = admin_client.get(f"{url}/profile")
    contacts = admin_client.get(f"{url}/contacts")

    assert profile.status_code == 200, profile.json()
    assert profile.json()["name"] == "Loja Centro"
    assert profile.json()["number"] == "+5514988887777"
    assert contacts.status_code == 200, contacts.json()
    assert {(row["phone"], row["name"], row["isGroup"]) for row in contacts.json()} == {
        ("+5514999990001", "Maria", False),
        ("+5514999990002", "João", False),
    }


def test_evolution_webhook_check_detects_and_fixes_a_moved_app_url(admin_client, sim, settings):
    created = create_evolution(admin_client, sim)
    url = f"/api/service-instances/{created['id']}/webhook"
    first = admin_client.get(url).json()
    assert first["matches"] is True
    assert first["configured"] is True
    assert first["webhookUrl"] == f"{settings.APP_URL}/api/webhooks/evolution"

    settings.APP_URL = f"http://127.0.0.1:{_closed_port()}"
    moved = admin_client.get(url).json()
    assert moved["matches"] is False
    assert moved["expectedUrl"] == f"{settings.APP_URL}/api/webhooks/evolution"
    assert moved["webhookUrl"] == first["webhookUrl"]

    fixed = admin_client.post(f"{url}/reconfigure")
    assert fixed.status_code == 200, fixed.json()
    assert fixed.json()["matches"] is True
    hook = sim.instance("vendas01")["webhook"]
    assert hook["url"] == f"{settings.APP_URL}/api/webhooks/evolution"
    assert hook["headers"] == {SECRET_HEADER: ServiceInstance.objects.get(pk=created["id"]).webhook_secret}


def test_evolution_sync_imports_the_numbers_contacts(admin_client, sim, django_capture_on_commit_callbacks):
    created = create_connected(admin_client, sim)
    sim.inbound("vendas01", "+5514999990001", "Maria", "Oi")
    sim.inbound("vendas01", "+5514999990002", "João", "Olá")

    with django_capture_on_commit_callbacks(execute=True):
        started = admin_client.post(f"/api/service-instances/{created['id']}/sync", {"fullSync": True}, format="json")
    assert started.status_code == 202, started.json()
    job = admin_client.get(f"/api/service-instances/{created['id']}/sync/{started.json()['syncId']}").json()

    assert job["status"] == "completed", job
    assert (job["contactsTotal"], job["contactsSynced"], job["chatsTotal"]) == (2, 2, 2)
    contacts = admin_client.get("/api/contacts").json()
    assert {(row["phone"], row["name"]) for row in contacts} == {
        ("+5514999990001", "Maria"),
        ("+5514999990002", "João"),
    }


def test_evolution_disconnect_closes_the_session_on_the_simulator(admin_client, sim):
    created = create_connected(admin_client, sim)
    url = f"/api/service-instances/{created['id']}"

    response = admin_client.post(f"{url}/disconnect")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "disconnected"
    assert sim.instance("vendas01")["status"] == "close"
    assert admin_client.get(f"{url}/status").json() == {"state": "close", "status": "disconnected"}


def test_evolution_recreate_gives_a_fresh_qr(admin_client, sim):
    created = create_connected(admin_client, sim)
    before = sim.instance("vendas01")

    response = admin_client.post(f"/api/service-instances/{created['id']}/recreate")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "connecting"
    _png_of(body["qrcode"]["qrcode"])
    after = sim.instance("vendas01")
    assert after["instanceId"] != before["instanceId"]
    assert after["status"] == "connecting"
    assert ServiceInstance.objects.get(pk=created["id"]).qr_code_raw == sim.qr_code("vendas01")
    assert after["webhook"]["url"] == before["webhook"]["url"]
    assert after["token"] != before["token"]
    assert ServiceInstance.objects.get(pk=created["id"]).provider_token == after["token"]


def test_evolution_orphans_lists_and_deletes_only_unknown_instances(admin_client, sim):
    create_evolution(admin_client, sim, "vendas01")
    sim.create_remote("esquecida")

    listed = admin_client.get("/api/service-instances/orphans")

    assert listed.status_code == 200, listed.json()
    assert [(row["serverUrl"], row["instanceName"]) for row in listed.json()] == [(sim.url, "esquecida")]
    deleted = admin_client.delete("/api/service-instances/orphans", {"instanceNames": ["esquecida"]}, format="json")
    assert deleted.status_code == 200, deleted.json()
    assert deleted.json()["count"] == 1
    assert sim.instance("esquecida") is None
    assert sim.instance("vendas01") is not None
    assert admin_client.get("/api/service-instances/orphans").json() == []


# ------------------------------------------------------------------------------
# Evolution failures
# ------------------------------------------------------------------------------


def test_evolution_create_with_wrong_api_key_is_401_and_saves_nothing(admin_client, sim):
    response = admin_client.post("/api/service-instances", evolution_body(sim, apiToken="not-the-key"), format="json")

    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": CREDENTIALS_REFUSED, "error": "Unauthorized"}
    assert not ServiceInstance.objects.exists()
    assert sim.state()["instances"] == []


def test_evolution_create_with_a_name_taken_on_the_server_is_400(admin_client, sim):
    sim.create_remote("vendas01")

    response = admin_client.post("/api/service-instances", evolution_body(sim, "vendas01"), format="json")

    assert response.status_code == 400
    assert response.json()["message"] == NAME_TAKEN
    assert not ServiceInstance.objects.exists()
    assert sim.instance("vendas01")["webhook"] is None  # the other owner's instance is left alone


def test_evolution_create_with_an_unreachable_server_is_400(admin_client, sim):
    body = evolution_body(sim, serverUrl=f"http://127.0.0.1:{_closed_port()}")

    response = admin_client.post("/api/service-instances", body, format="json")

    assert response.status_code == 400
    assert response.json()["message"] == UNREACHABLE
    assert not ServiceInstance.objects.exists()


@pytest.mark.slow  # the simulator's 429 says Retry-After: 1, which the client honours
def test_evolution_create_absorbs_a_429_burst_with_retries(admin_client, sim):
    sim.faults(rate_limit_burst=2)

    response = admin_client.post("/api/service-instances", evolution_body(sim), format="json")

    assert response.status_code == 201, response.json()
    assert sim.state()["faults"]["rate_limit_burst"] == 0  # both 429s were answered, then the retry won
    assert sim.instance("vendas01")["status"] == "connecting"
    assert ServiceInstance.objects.count() == 1


def test_evolution_status_while_the_server_fails_is_recorded_as_error(admin_client, sim):
    created = create_evolution(admin_client, sim)
    url = f"/api/service-instances/{created['id']}"
    sim.faults(error_rate=1.0)

    response = admin_client.get(f"{url}/status")

    assert response.status_code == 200, response.json()
    assert response.json() == {"state": "error", "status": "error"}
    detail = admin_client.get(url).json()
    assert (detail["status"], detail["lastError"]) == ("error", UNAVAILABLE)

    sim.faults(reset=True)
    assert admin_client.get(f"{url}/status").json()["status"] == "connecting"


# ------------------------------------------------------------------------------
# Meta Cloud API
# ------------------------------------------------------------------------------


def test_meta_create_verifies_the_number_and_subscribes_the_webhook(admin_client, sim, settings):
    response = admin_client.post("/api/service-instances", meta_body(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "connected"
    assert body["qrcode"] is None
    assert body["profileName"] == "Elsehub Simulator"
    assert body["credentials"]["accessToken"] == "••••oken"
    subscription = sim.state()["metaSubscriptions"][META_WABA_ID]
    assert subscription["override_callback_uri"] == f"{settings.APP_URL}/api/webhooks/meta"
    assert subscription["verify_token"]


def test_meta_create_with_wrong_token_is_401_and_saves_nothing(admin_client, sim):
    response = admin_client.post("/api/service-instances", meta_body(accessToken="EAAwrong"), format="json")

    assert response.status_code == 401
    assert response.json()["message"] == CREDENTIALS_REFUSED
    assert not ServiceInstance.objects.exists()
    assert sim.state()["metaSubscriptions"] == {}


def test_meta_create_with_unknown_phone_id_is_400(admin_client, sim):
    response = admin_client.post("/api/service-instances", meta_body(phoneId="100000000009999"), format="json")

    assert response.status_code == 400
    assert response.json()["message"] == (
        "O phoneId 100000000009999 não existe na Meta ou o token de acesso não tem acesso a ele"
    )
    assert not ServiceInstance.objects.exists()


def test_meta_create_with_phone_id_of_another_waba_is_400(admin_client, sim):
    number = {
        "phone_id": "100000000000002",
        "waba_id": "200000000000002",
        "access_token": META_TOKEN,
        "display_phone_number": "5514900000002",
    }
    assert sim.control("POST", "meta/numbers", json=number).status_code == 201

    response = admin_client.post("/api/service-instances", meta_body(phoneId="100000000000002"), format="json")

    assert response.status_code == 400
    assert response.json()["message"] == (
        f"O phoneId 100000000000002 não pertence à conta do WhatsApp Business (wabaId) {META_WABA_ID}"
    )
    assert not ServiceInstance.objects.exists()
    assert sim.state()["metaSubscriptions"] == {}


def test_meta_qrcode_and_connect_are_400_with_a_clear_message(admin_client, sim):
    created = admin_client.post("/api/service-instances", meta_body(), format="json").json()
    url = f"/api/service-instances/{created['id']}"

    qrcode = admin_client.get(f"{url}/qrcode")
    connect = admin_client.post(f"{url}/connect", {}, format="json")

    assert (qrcode.status_code, qrcode.json()["message"]) == (400, META_NO_QR)
    assert (connect.status_code, connect.json()["message"]) == (400, META_NO_QR)
    assert admin_client.get(url).json()["status"] == "connected"


# ------------------------------------------------------------------------------
# Django admin
# ------------------------------------------------------------------------------


@pytest.fixture
def admin_browser(client, make_user, password):
    user = make_user(Role.ADMIN, email="ana@example.com")
    response = client.post(ADMIN_LOGIN, {"username": user.email, "password": password, "next": "/admin/"})
    assert response.status_code == 302, "the admin sign-in must succeed for this test"
    return client


def admin_form(sim: Simulator, instance_name: str = "loja01", **overrides) -> dict:
    data = {
        "name": "Loja Centro",
        "phone": "5514988887777",
        "provider": "EVOLUTION_API",
        "is_active": "on",
        "serverUrl": sim.url,
        "apiToken": EVOLUTION_KEY,
        "instanceName": instance_name,
        "wabaId": "",
        "phoneId": "",
        "accessToken": "",
        "appSecret": "",
        "verifyToken": "",
        "_save": "Salvar",
    }
    data.update(overrides)
    return data


def change_url(instance: ServiceInstance) -> str:
    return reverse("admin:instances_serviceinstance_change", args=[instance.pk])


def shown_qr(page) -> str:
    found = re.search(r'<img src="(data:image/png;base64,[A-Za-z0-9+/=]+)"', page.content.decode())
    assert found, "the change page shows no QR image"
    return found.group(1)


def admin_create(browser, sim: Simulator, instance_name: str = "loja01") -> ServiceInstance:
    response = browser.post(ADMIN_ADD, admin_form(sim, instance_name))
    assert response.status_code == 302, "the admin add form must be accepted for this test"
    return ServiceInstance.objects.get()


def test_admin_add_evolution_instance_creates_it_and_shows_the_qr(admin_browser, sim, settings):
    response = admin_browser.post(ADMIN_ADD, admin_form(sim))

    assert response.status_code == 302
    assert response["Location"] == ADMIN_CHANGELIST
    instance = ServiceInstance.objects.get()
    assert (instance.name, instance.phone, instance.connection_status) == ("Loja Centro", "5514988887777", "connecting")
    assert instance.credentials == {"serverUrl": sim.url, "apiToken": EVOLUTION_KEY, "instanceName": "loja01"}
    assert sim.instance("loja01")["webhook"]["url"] == f"{settings.APP_URL}/api/webhooks/evolution"
    page = admin_browser.get(change_url(instance))
    assert page.status_code == 200
    _png_of(shown_qr(page))
    assert shown_qr(page) == instance.qr_code


def test_admin_qrcode_link_fetches_a_new_qr_from_the_server(admin_browser, sim):
    instance = admin_create(admin_browser, sim)
    old_qr = instance.qr_code
    # The pairing was dropped on the server: the stored QR is stale.
    assert sim.evolution("DELETE", "/instance/logout/loja01").status_code == 200
    link = reverse("admin:instances_serviceinstance_qrcode", args=[instance.pk])
    assert f'href="{link}"' in admin_browser.get(change_url(instance)).content.decode()

    response = admin_browser.get(link, follow=True)

    assert response.redirect_chain == [(change_url(instance), 302)]
    instance.refresh_from_db()
    assert instance.qr_code != old_qr
    assert instance.qr_code_raw == sim.qr_code("loja01")
    assert shown_qr(response) == instance.qr_code
    assert sim.instance("loja01")["status"] == "connecting"


def test_admin_refresh_status_action_shows_the_number_connected(admin_browser, sim):
    instance = admin_create(admin_browser, sim)
    sim.scan("loja01")
    data = {"action": "refresh_status_action", "_selected_action": [str(instance.pk)], "index": "0"}

    response = admin_browser.post(ADMIN_CHANGELIST, data, follow=True)

    assert response.status_code == 200
    assert [row.connection_status for row in response.context["cl"].result_list] == [ConnectionStatus.CONNECTED]
    assert '<strong style="color:#1e8e3e">' in response.content.decode()
    instance.refresh_from_db()
    assert (instance.connection_status, instance.qr_code) == (ConnectionStatus.CONNECTED, "")


def test_admin_add_with_wrong_api_key_shows_the_error_on_the_form(admin_browser, sim):
    response = admin_browser.post(ADMIN_ADD, admin_form(sim, apiToken="not-the-key"))

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [CREDENTIALS_REFUSED]
    assert CREDENTIALS_REFUSED in response.content.decode()
    assert not ServiceInstance.objects.exists()
    assert sim.state()["instances"] == []


def test_admin_supervisor_can_view_the_changelist(client, make_user, password, admin_client, sim):
    created = create_evolution(admin_client, sim)
    supervisor = make_user(Role.SUPERVISOR, email="sergio@example.com")
    assert client.post(ADMIN_LOGIN, {"username": supervisor.email, "password": password}).status_code == 302

    response = client.get(ADMIN_CHANGELIST)

    assert response.status_code == 200
    assert [str(row.pk) for row in response.context["cl"].result_list] == [created["id"]]
