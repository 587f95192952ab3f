import re
from datetime import timedelta

import pytest
from django.utils import timezone

from instances.crypto import secret_digest
from instances.models import ConnectionStatus, Provider, ServiceInstance, SyncJob
from instances.providers.exceptions import ProviderAuthError, ProviderConflict, ProviderConnectionError
from instances.providers.types import ConnectionState, RemoteChat, RemoteContact, RemoteInstance
from instances.tests.factories import EVOLUTION_CREDENTIALS, META_CREDENTIALS, ServiceInstanceFactory

pytestmark = pytest.mark.django_db

INSTANCE_KEYS = {
    "id",
    "name",
    "phone",
    "provider",
    "credentials",
    "isActive",
    "status",
    "state",
    "profileName",
    "profilePictureUrl",
    "lastWebhookAt",
    "stateChangedAt",
    "lastError",
    "createdAt",
    "updatedAt",
}
PNG_DATA_URI = re.compile(r"^data:image/png;base64,[A-Za-z0-9+/=]+$")


def evolution_body(**overrides):
    body = {
        "name": "WhatsApp Vendas",
        "phone": "(11) 99999-9999",
        "provider": "EVOLUTION_API",
        "credentials": dict(EVOLUTION_CREDENTIALS),
    }
    body.update(overrides)
    return body


def meta_body(**overrides):
    body = {
        "name": "WhatsApp Oficial",
        "phone": "5511988887777",
        "provider": "OFFICIAL_META",
        "credentials": dict(META_CREDENTIALS),
    }
    body.update(overrides)
    return body


# ------------------------------------------------------------------------------ create


def test_create_evolution_instance_creates_remote_and_returns_qr(admin_client, fake_provider, settings):
    settings.APP_URL = "https://elsehub.example.com"
    response = admin_client.post("/api/service-instances", evolution_body(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == INSTANCE_KEYS | {"qrcode"}
    assert body["phone"] == "5511999999999"
    assert body["provider"] == "EVOLUTION_API"
    assert body["credentials"] == {
        "serverUrl": "http://evolution.test:8080",
        "apiToken": "••••S3cp",
        "instanceName": "vendas01",
    }
    assert body["status"] == "connecting"
    assert PNG_DATA_URI.match(body["qrcode"]["qrcode"])
    assert body["qrcode"]["base64"] == body["qrcode"]["qrcode"].split(",", 1)[1]

    ((_name, call),) = [c for c in fake_provider.calls if c[0] == "create_remote"]
    assert call["webhook_url"] == "https://elsehub.example.com/api/webhooks/evolution"
    instance = ServiceInstance.objects.get(pk=body["id"])
    assert call["webhook_secret"] == instance.webhook_secret
    assert instance.webhook_secret_digest == secret_digest(call["webhook_secret"])
    assert "xrgr4qjcxh" not in instance.credentials_encrypted  # encrypted at rest
    assert instance.credentials["apiToken"] == EVOLUTION_CREDENTIALS["apiToken"]


def test_create_meta_instance_is_connected_without_qr(admin_client, fake_provider):
    response = admin_client.post("/api/service-instances", meta_body(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "connected"
    assert body["qrcode"] is None
    assert body["credentials"]["accessToken"] == "••••1234"


def test_create_meta_with_wrong_token_is_401_and_saves_nothing(admin_client, fake_provider):
    fake_provider.fail_next = ProviderAuthError()
    response = admin_client.post("/api/service-instances", meta_body(), format="json")
    assert response.status_code == 401
    assert set(response.json()) == {"statusCode", "message", "error"}
    assert "credenciais" in response.json()["message"]
    assert ServiceInstance.objects.count() == 0


@pytest.mark.parametrize(("error", "status_code"), [(ProviderConnectionError(), 400), (ProviderConflict(), 400)])
def test_create_provider_refusals_are_clear_4xx(admin_client, fake_provider, error, status_code):
    fake_provider.fail_next = error
    response = admin_client.post("/api/service-instances", evolution_body(), format="json")
    assert response.status_code == status_code
    assert response.json()["message"] == str(error.message)
    assert ServiceInstance.objects.count() == 0


def test_create_same_remote_instance_twice_is_409(admin_client, fake_provider):
    assert admin_client.post("/api/service-instances", evolution_body(), format="json").status_code == 201
    again = admin_client.post("/api/service-instances", evolution_body(name="Outra"), format="json")
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (evolution_body(phone="123"), "phone"),
        (evolution_body(provider="TELEGRAM"), "provider"),
        (evolution_body(name=""), "name"),
        ({"name": "x", "phone": "5511999999999", "provider": "EVOLUTION_API"}, "credentials"),
    ],
)
def test_create_bad_input_is_422_naming_the_field(admin_client, fake_provider, body, field):
    response = admin_client.post("/api/service-instances", body, format="json")
    assert response.status_code == 422
    assert any(message.startswith(f"{field}:") for message in response.json()["message"])


@pytest.mark.parametrize("missing", ["serverUrl", "apiToken", "instanceName"])
def test_create_evolution_credentials_are_validated(admin_client, fake_provider, missing):
    credentials = dict(EVOLUTION_CREDENTIALS)
    del credentials[missing]
    response = admin_client.post("/api/service-instances", evolution_body(credentials=credentials), format="json")
    assert response.status_code == 422
    assert any(f"credentials.{missing}" in message for message in response.json()["message"])
    assert not fake_provider.calls


@pytest.mark.parametrize("missing", ["wabaId", "phoneId", "accessToken"])
def test_create_meta_credentials_are_validated(admin_client, fake_provider, missing):
    credentials = dict(META_CREDENTIALS)
    del credentials[missing]
    response = admin_client.post("/api/service-instances", meta_body(credentials=credentials), format="json")
    assert response.status_code == 422
    assert any(f"credentials.{missing}" in message for message in response.json()["message"])


def test_create_never_logs_the_token(admin_client, fake_provider, caplog):
    caplog.set_level("DEBUG")
    fake_provider.fail_next = ProviderAuthError()
    admin_client.post("/api/service-instances", evolution_body(), format="json")
    admin_client.post("/api/service-instances", evolution_body(), format="json")
    assert EVOLUTION_CREDENTIALS["apiToken"] not in caplog.text


# ------------------------------------------------------------------------------ read, update, delete


def test_list_hides_inactive_unless_asked(supervisor_client, fake_provider):
    active = ServiceInstanceFactory(name="A")
    ServiceInstanceFactory(name="B", is_active=False)
    ids = [row["id"] for row in supervisor_client.get("/api/service-instances").json()]
    assert ids == [str(active.id)]
    everything = supervisor_client.get("/api/service-instances?includeInactive=true")
    assert len(everything.json()) == 2
    assert everything["X-Total-Count"] == "2"


def test_list_query_count_is_constant(admin_client, django_assert_num_queries):
    for _ in range(3):
        ServiceInstanceFactory()
    with django_assert_num_queries(3):
        assert len(admin_client.get("/api/service-instances").json()) == 3
    for _ in range(20):
        ServiceInstanceFactory()
    with django_assert_num_queries(3):
        assert len(admin_client.get("/api/service-instances").json()) == 23


def test_get_instance_masks_secrets_and_unknown_is_404(supervisor_client):
    instance = ServiceInstanceFactory()
    body = supervisor_client.get(f"/api/service-instances/{instance.id}").json()
    assert set(body) == INSTANCE_KEYS
    assert body["credentials"]["apiToken"] == "••••S3cp"
    missing = supervisor_client.get("/api/service-instances/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def test_patch_without_credentials_keeps_them(admin_client):
    instance = ServiceInstanceFactory()
    before = instance.credentials
    response = admin_client.patch(
        f"/api/service-instances/{instance.id}", {"name": "Novo nome", "isActive": False}, format="json"
    )
    assert response.status_code == 200
    instance.refresh_from_db()
    assert instance.name == "Novo nome"
    assert instance.is_active is False
    assert instance.credentials == before


def test_patch_credentials_merges_and_ignores_masked_values(admin_client):
    instance = ServiceInstanceFactory()
    before = instance.credentials
    response = admin_client.patch(
        f"/api/service-instances/{instance.id}",
        {"credentials": {"apiToken": "••••S3cp", "serverUrl": "https://evo2.test"}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    instance.refresh_from_db()
    assert instance.credentials["serverUrl"] == "https://evo2.test"
    assert instance.credentials["apiToken"] == before["apiToken"]
    assert instance.credentials["instanceName"] == before["instanceName"]


def test_delete_hides_the_instance_without_touching_the_provider(admin_client, fake_provider):
    instance = ServiceInstanceFactory()
    assert admin_client.delete(f"/api/service-instances/{instance.id}").status_code == 204
    assert admin_client.get(f"/api/service-instances/{instance.id}").status_code == 404
    assert ServiceInstance.objects.filter(pk=instance.pk, deleted_at__isnull=False).exists()
    assert fake_provider.calls == []


# ------------------------------------------------------------------------------ lifecycle


def test_qrcode_of_a_meta_instance_is_400(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory(provider=Provider.OFFICIAL_META)
    response = supervisor_client.get(f"/api/service-instances/{instance.id}/qrcode")
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"


def test_qrcode_of_a_connected_instance_is_400(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory(connection_status=ConnectionStatus.CONNECTED)
    response = supervisor_client.get(f"/api/service-instances/{instance.id}/qrcode")
    assert response.status_code == 400


def test_qrcode_fetches_a_new_one_when_stale(
    supervisor_client, fake_provider, captured_events, django_capture_on_commit_callbacks
):
    instance = ServiceInstanceFactory(connection_status=ConnectionStatus.DISCONNECTED)
    with django_capture_on_commit_callbacks(execute=True):
        response = supervisor_client.get(f"/api/service-instances/{instance.id}/qrcode")
    assert response.status_code == 200
    body = response.json()
    assert PNG_DATA_URI.match(body["qrcode"])
    assert body["instanceName"] == instance.credentials["instanceName"]
    assert [call[0] for call in fake_provider.calls] == ["connect"]
    assert ("qrcode:updated", "supervisors") in {(e[0], e[2][0]) for e in captured_events}

    # fresh: answered from what is stored, no provider call
    fake_provider.calls.clear()
    assert supervisor_client.get(f"/api/service-instances/{instance.id}/qrcode").json()["qrcode"] == body["qrcode"]
    assert fake_provider.calls == []
    ServiceInstance.objects.filter(pk=instance.pk).update(qr_updated_at=timezone.now() - timedelta(minutes=2))
    supervisor_client.get(f"/api/service-instances/{instance.id}/qrcode")
    assert [call[0] for call in fake_provider.calls] == ["connect"]


def test_connect_with_phone_number_returns_pairing_code(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory(connection_status=ConnectionStatus.DISCONNECTED)
    response = supervisor_client.post(
        f"/api/service-instances/{instance.id}/connect", {"phoneNumber": "(14) 99999-9999"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "connecting"
    assert body["qrcode"]["pairingCode"] == "ABCD1234"
    assert fake_provider.calls[-1] == ("connect", {"instance": instance.name, "phone_number": "5514999999999"})


def test_connect_on_meta_is_400_with_a_clear_message(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory(provider=Provider.OFFICIAL_META)
    response = supervisor_client.post(f"/api/service-instances/{instance.id}/connect", {}, format="json")
    assert response.status_code == 400
    assert "QR code" in response.json()["message"]
    assert "indisponível" in response.json()["message"]


def test_status_asks_the_provider_and_publishes_a_change(
    supervisor_client, fake_provider, captured_events, django_capture_on_commit_callbacks
):
    instance = ServiceInstanceFactory(connection_status=ConnectionStatus.CONNECTING)
    fake_provider.state[str(instance.id)] = ConnectionState.CONNECTED
    with django_capture_on_commit_callbacks(execute=True):
        response = supervisor_client.get(f"/api/service-instances/{instance.id}/status")
    assert response.json() == {"state": "connected", "status": "connected"}
    ((event, data, groups),) = captured_events
    assert event == "instance:status"
    assert data["status"] == "connected"
    assert groups == ("supervisors", f"instance.{instance.id}")

    captured_events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        supervisor_client.get(f"/api/service-instances/{instance.id}/status")
    assert captured_events == []  # unchanged: nothing published


def test_status_records_provider_failure_as_error(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory()
    fake_provider.fail_next = ProviderConnectionError()
    response = supervisor_client.get(f"/api/service-instances/{instance.id}/status")
    assert response.status_code == 200
    assert response.json()["status"] == "error"
    instance.refresh_from_db()
    assert instance.last_error


def test_disconnect_logs_out(admin_client, fake_provider):
    instance = ServiceInstanceFactory()
    response = admin_client.post(f"/api/service-instances/{instance.id}/disconnect")
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
    assert fake_provider.calls[0][0] == "logout"


def test_recreate_deletes_and_creates_the_remote(admin_client, fake_provider):
    instance = ServiceInstanceFactory()
    response = admin_client.post(f"/api/service-instances/{instance.id}/recreate")
    assert response.status_code == 200
    assert [call[0] for call in fake_provider.calls] == ["delete_remote", "create_remote"]
    assert PNG_DATA_URI.match(response.json()["qrcode"]["qrcode"])


def test_profile_and_provider_contacts(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory()
    fake_provider.state["contacts"] = [
        RemoteContact(chat_id=f"55149000000{n:02d}@s.whatsapp.net", phone=f"+55149000000{n:02d}", name=f"C{n}")
        for n in range(30)
    ]
    profile = supervisor_client.get(f"/api/service-instances/{instance.id}/profile").json()
    assert profile == {
        "name": "Loja Fake",
        "number": "+5514900000001",
        "profilePictureUrl": "https://example.com/p.png",
        "status": "Olá",
        "isBusiness": None,
    }
    contacts = supervisor_client.get(f"/api/service-instances/{instance.id}/contacts?limit=10&page=3")
    assert contacts["X-Total-Count"] == "30"
    assert [row["name"] for row in contacts.json()] == [f"C{n}" for n in range(20, 30)]


def test_webhook_check_and_reconfigure(admin_client, fake_provider, settings):
    settings.APP_URL = "https://elsehub.example.com"
    instance = ServiceInstanceFactory()
    fake_provider.state["webhook_url"] = "https://old.example.com/hook"
    body = admin_client.get(f"/api/service-instances/{instance.id}/webhook").json()
    assert body["webhookUrl"] == "https://old.example.com/hook"
    assert body["expectedUrl"] == "https://elsehub.example.com/api/webhooks/evolution"
    assert body["matches"] is False
    fixed = admin_client.post(f"/api/service-instances/{instance.id}/webhook/reconfigure").json()
    assert fixed["matches"] is True
    assert fixed["webhookUrl"] == "https://elsehub.example.com/api/webhooks/evolution"


def test_sync_imports_provider_contacts_in_the_background(
    supervisor_client, fake_provider, django_capture_on_commit_callbacks, captured_events
):
    from contacts.models import Contact

    instance = ServiceInstanceFactory()
    fake_provider.state["contacts"] = [
        RemoteContact(chat_id="5514999990001@s.whatsapp.net", phone="+5514999990001", name="Maria"),
        RemoteContact(chat_id="120363@g.us", phone=None, name="Grupo", is_group=True),
    ]
    fake_provider.state["chats"] = [
        RemoteChat(chat_id="5514999990001@s.whatsapp.net", phone="+5514999990001", name="Maria")
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = supervisor_client.post(
            f"/api/service-instances/{instance.id}/sync", {"fullSync": True}, format="json"
        )
    assert response.status_code == 202
    job = SyncJob.objects.get(pk=response.json()["syncId"])
    assert job.status == "completed"
    assert Contact.objects.filter(phone="+5514999990001", name="Maria").exists()
    progress = supervisor_client.get(f"/api/service-instances/{instance.id}/sync/{job.id}").json()
    assert progress["contactsSynced"] == 1
    assert progress["chatsTotal"] == 1
    assert [e[1]["status"] for e in captured_events if e[0] == "sync:progress"][-1] == "completed"


def test_sync_of_a_disconnected_instance_is_400(supervisor_client, fake_provider):
    instance = ServiceInstanceFactory(connection_status=ConnectionStatus.DISCONNECTED)
    assert supervisor_client.post(f"/api/service-instances/{instance.id}/sync", {}, format="json").status_code == 400


def test_orphans_lists_and_deletes_only_unknown_remote_instances(admin_client, fake_provider):
    known = ServiceInstanceFactory()
    fake_provider.state["remote_instances"] = [
        RemoteInstance(name=known.credentials["instanceName"], state=ConnectionState.CONNECTED),
        RemoteInstance(name="lixo-1", state=ConnectionState.DISCONNECTED),
        RemoteInstance(name="lixo-2", state=ConnectionState.DISCONNECTED),
    ]
    listed = admin_client.get("/api/service-instances/orphans").json()
    assert sorted(row["instanceName"] for row in listed) == ["lixo-1", "lixo-2"]
    response = admin_client.delete("/api/service-instances/orphans", {"instanceNames": ["lixo-2"]}, format="json")
    assert response.json()["count"] == 1
    deleted = [call[1]["name"] for call in fake_provider.calls if call[0] == "delete_remote_instance"]
    assert deleted == ["lixo-2"]
