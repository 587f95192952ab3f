"""The Evolution API adapter: credentials, every call (stubbed HTTP), error mapping, webhook parsing.

Webhook bodies and API answers are fixture files in ``payloads/evolution/`` (``<event>__<variant>``);
every file has a parsing test here.
"""

import base64
import copy
import json
import socket
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.utils import translation

from instances.providers.base import CredentialsError
from instances.providers.evolution import EvolutionProvider
from instances.providers.evolution.protobuf import normalise, to_bytes, to_int
from instances.providers.exceptions import (
    InvalidWebhookPayload,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConflict,
    ProviderConnectionError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnsupported,
)
from instances.providers.registry import adapter_class
from instances.providers.types import (
    ConnectionInfo,
    ConnectionState,
    ConnectionUpdate,
    ContactUpdate,
    DeliveryStatus,
    InboundMessage,
    Location,
    MediaInput,
    MediaRef,
    MessageEdited,
    MessageKind,
    MessageRevoked,
    Presence,
    PresenceUpdate,
    ProviderInstance,
    QRCode,
    QRCodeUpdate,
    SentMessage,
    SharedContact,
    StatusUpdate,
    WebhookInfo,
)

PAYLOADS = Path(__file__).parent / "payloads" / "evolution"
SERVER = "https://evolution.example.com"
TOKEN = "evo-global-key-0123456789abcdef"
NAME = "acme-support"
WEBHOOK_URL = "https://app.example.com/api/webhooks/evolution"
SECRET = "hook-secret-6f1d0c8e2b7a"
EVENTS = [
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "MESSAGES_DELETE",
    "MESSAGES_EDITED",
    "SEND_MESSAGE",
    "CONNECTION_UPDATE",
    "QRCODE_UPDATED",
    "CONTACTS_UPSERT",
    "CONTACTS_UPDATE",
    "PRESENCE_UPDATE",
    "LOGOUT_INSTANCE",
    "REMOVE_INSTANCE",
]
WEBHOOK_BODY = {
    "url": WEBHOOK_URL,
    "byEvents": False,
    "base64": False,
    "headers": {"x-elsehub-secret": SECRET},
    "events": EVENTS,
}
MARIA_JID = "5511900000001@s.whatsapp.net"
GROUP_JID = "120363041234567890@g.us"


def load(name: str):
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def parse(name: str):
    return EvolutionProvider.parse_webhook(load(name))


def parse_one(name: str):
    events = parse(name)
    assert len(events) == 1, events
    return events[0]


def parse_one_payload(payload):
    events = EvolutionProvider.parse_webhook(payload)
    assert len(events) == 1, events
    return events[0]


def url(path: str) -> str:
    return f"{SERVER}{path}"


def error_body(status: int, error: str, *messages) -> dict:
    return {"status": status, "error": error, "response": {"message": list(messages)}}


def assert_call(call, method: str, path: str, *, body=..., params=None):
    """Method, path, the apikey header and (when given) the JSON body and query of one stubbed call."""
    request = call.request
    parts = urlsplit(request.url)
    assert request.method == method
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == url(path)
    assert request.headers["apikey"] == TOKEN
    assert parse_qs(parts.query) == (params or {})
    if body is None:
        assert not request.body
    elif body is not ...:
        assert request.headers["Content-Type"] == "application/json"
        assert json.loads(request.body) == body


@pytest.fixture(autouse=True)
def _no_backoff(settings):
    settings.PROVIDER_RETRY_BACKOFF = 0
    settings.PROVIDER_MAX_ATTEMPTS = 3


@pytest.fixture
def instance() -> ProviderInstance:
    return ProviderInstance(
        id="6c1f9a2e-0000-4000-8000-000000000001",
        name="Suporte Acme",
        phone="+5511900000000",
        credentials={"serverUrl": SERVER, "apiToken": TOKEN, "instanceName": NAME},
        webhook_url=WEBHOOK_URL,
        webhook_secret=SECRET,
    )


@pytest.fixture
def provider(instance) -> EvolutionProvider:
    return EvolutionProvider(instance)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr("instances.providers.http.time.sleep", waits.append)
    return waits


# ================================================================================================
# Class attributes, registry, credentials
# ================================================================================================


def test_evolution_provider_declares_key_qr_and_credential_fields():
    assert adapter_class("EVOLUTION_API") is EvolutionProvider
    assert EvolutionProvider.key == "EVOLUTION_API"
    assert EvolutionProvider.supports_qr is True
    assert EvolutionProvider.credential_fields == {
        "serverUrl": (True, False),
        "apiToken": (True, True),
        "instanceName": (True, False),
    }


def test_clean_credentials_trims_and_drops_unknown_fields():
    cleaned = EvolutionProvider.clean_credentials(
        {
            "serverUrl": " https://evolution.example.com/ ",
            "apiToken": f" {TOKEN} ",
            "instanceName": " acme.v2_x-1 ",
            "x": 1,
        }
    )

    assert cleaned == {"serverUrl": SERVER, "apiToken": TOKEN, "instanceName": "acme.v2_x-1"}


@pytest.mark.parametrize(
    "server_url",
    ["http://evolution:8080", "http://127.0.0.1:8080/", "https://api.example.com/evolution"],
)
def test_clean_credentials_accepts_service_hosts_ports_and_path_prefixes(server_url):
    cleaned = EvolutionProvider.clean_credentials({"serverUrl": server_url, "apiToken": TOKEN, "instanceName": NAME})

    assert cleaned["serverUrl"] == server_url.rstrip("/")


def test_clean_credentials_names_every_missing_field_in_portuguese():
    with translation.override("pt-br"), pytest.raises(CredentialsError) as caught:
        EvolutionProvider.clean_credentials({"serverUrl": "", "apiToken": "   "})

    assert caught.value.messages == [
        "serverUrl é obrigatório (o endereço do servidor da Evolution API).",
        "apiToken é obrigatório (a chave da Evolution API).",
        "instanceName é obrigatório.",
    ]


@pytest.mark.parametrize(
    "server_url",
    ["ftp://evolution.example.com", "evolution.example.com", "https://", "https://h.com/?a=1", "http://h:99999", 42],
)
def test_clean_credentials_rejects_a_server_url_that_is_no_http_address(server_url):
    with pytest.raises(CredentialsError) as caught:
        EvolutionProvider.clean_credentials({"serverUrl": server_url, "apiToken": TOKEN, "instanceName": NAME})

    assert len(caught.value.messages) == 1
    assert caught.value.messages[0].startswith("serverUrl ")


def test_clean_credentials_rejects_a_token_with_spaces():
    with translation.override("pt-br"), pytest.raises(CredentialsError) as caught:
        EvolutionProvider.clean_credentials({"serverUrl": SERVER, "apiToken": "abc def", "instanceName": NAME})

    assert caught.value.messages == ["apiToken não pode conter espaços nem quebras de linha."]


@pytest.mark.parametrize("name", ["acme support", "a" * 65, "ação", "acme/..", "..", 7])
def test_clean_credentials_rejects_an_invalid_instance_name(name):
    with pytest.raises(CredentialsError) as caught:
        EvolutionProvider.clean_credentials({"serverUrl": SERVER, "apiToken": TOKEN, "instanceName": name})

    assert len(caught.value.messages) == 1
    assert caught.value.messages[0].startswith("instanceName ")


def test_clean_credentials_accepts_a_64_character_name():
    name = "a" * 64

    assert (
        EvolutionProvider.clean_credentials({"serverUrl": SERVER, "apiToken": TOKEN, "instanceName": name})[
            "instanceName"
        ]
        == name
    )


def test_provider_with_incomplete_stored_credentials_fails_without_calling(instance, http):
    broken = EvolutionProvider(
        ProviderInstance(id=instance.id, name=instance.name, phone=instance.phone, credentials={"serverUrl": SERVER})
    )

    with pytest.raises(ProviderAuthError):
        broken.connection_state()
    assert len(http.calls) == 0


# ================================================================================================
# Instance lifecycle
# ================================================================================================


def test_create_remote_posts_instance_with_webhook_and_maps_the_answer(provider, http):
    http.post(url("/instance/create"), json=load("api/instance_create__response.json"), status=201)

    created = provider.create_remote()

    assert_call(
        http.calls[0],
        "POST",
        "/instance/create",
        body={"instanceName": NAME, "integration": "WHATSAPP-BAILEYS", "qrcode": True, "webhook": WEBHOOK_BODY},
    )
    assert created.connection == ConnectionInfo(state=ConnectionState.CONNECTING, raw_state="connecting")
    assert created.instance_token == "B7E2C9A4-5D1F-4E8B-A3C6-9F0D2E7B1A58"
    assert created.qr.code.startswith("2@p8Lx3qZ2")
    assert created.qr.image.startswith("data:image/png;base64,")
    assert created.qr.pairing_code is None


def test_create_remote_keeps_the_pairing_code_and_no_qr_before_it_is_ready(provider, http):
    answer = load("api/instance_create__response.json")
    answer["qrcode"]["pairingCode"] = "WZYEH1YY"
    late = copy.deepcopy(answer) | {"qrcode": {"count": 0}}
    http.post(url("/instance/create"), json=answer, status=201)
    http.post(url("/instance/create"), json=late, status=201)

    assert provider.create_remote().qr.pairing_code == "WZYEH1YY"
    assert provider.create_remote().qr is None


def test_create_remote_name_taken_raises_conflict_without_retry(provider, http):
    body = error_body(403, "Forbidden", 'This name "acme-support" is already in use.')
    http.post(url("/instance/create"), json=body, status=403)

    with pytest.raises(ProviderConflict) as caught:
        provider.create_remote()

    assert caught.value.http_status == 403
    assert caught.value.provider_code == "Forbidden"
    assert caught.value.details == 'This name "acme-support" is already in use.'
    assert len(http.calls) == 1


def test_create_remote_wrong_global_key_raises_auth_error(provider, http):
    http.post(url("/instance/create"), json=error_body(401, "Unauthorized", "Unauthorized"), status=401)

    with pytest.raises(ProviderAuthError) as caught:
        provider.create_remote()

    assert caught.value.http_status == 401
    assert len(http.calls) == 1


def test_connect_returns_the_qr_with_pairing_code_for_a_number(provider, http):
    http.get(url(f"/instance/connect/{NAME}"), json=load("api/instance_connect__pairing.json"))

    result = provider.connect(phone_number="+55 (11) 90000-0000")

    assert_call(http.calls[0], "GET", f"/instance/connect/{NAME}", body=None, params={"number": ["5511900000000"]})
    assert result.connection.state == ConnectionState.CONNECTING
    assert result.qr == QRCode(
        code=load("api/instance_connect__pairing.json")["code"],
        image=load("api/instance_connect__pairing.json")["base64"],
        pairing_code="WZYEH1YY",
    )


def test_connect_an_open_instance_returns_connected_without_qr(provider, http):
    http.get(url(f"/instance/connect/{NAME}"), json={"instance": {"instanceName": NAME, "state": "open"}})

    result = provider.connect()

    assert_call(http.calls[0], "GET", f"/instance/connect/{NAME}", body=None)
    assert result.connection.state == ConnectionState.CONNECTED
    assert result.qr is None


def test_connect_before_the_first_qr_returns_connecting_without_qr(provider, http):
    http.get(url(f"/instance/connect/{NAME}"), json={"count": 0})

    result = provider.connect()

    assert result.connection == ConnectionInfo(state=ConnectionState.CONNECTING, raw_state="connecting")
    assert result.qr is None


def test_connect_error_answered_with_200_raises_rejected(provider, http):
    http.get(url(f"/instance/connect/{NAME}"), json={"error": True, "message": "[object Object]"})

    with pytest.raises(ProviderRejected) as caught:
        provider.connect()

    assert caught.value.http_status == 200
    assert caught.value.details == "[object Object]"


def test_connect_with_an_invalid_pairing_number_does_not_call(provider, http):
    with pytest.raises(ProviderRejected):
        provider.connect(phone_number="call me")

    assert len(http.calls) == 0


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("open", ConnectionState.CONNECTED),
        ("connecting", ConnectionState.CONNECTING),
        ("close", ConnectionState.DISCONNECTED),
        ("refused", ConnectionState.ERROR),
    ],
)
def test_connection_state_maps_evolution_states(provider, http, raw, state):
    http.get(url(f"/instance/connectionState/{NAME}"), json={"instance": {"instanceName": NAME, "state": raw}})

    info = provider.connection_state()

    assert_call(http.calls[0], "GET", f"/instance/connectionState/{NAME}", body=None)
    assert info == ConnectionInfo(state=state, raw_state=raw)


def test_connection_state_without_state_is_disconnected(provider, http):
    http.get(url(f"/instance/connectionState/{NAME}"), json={"instance": {"instanceName": NAME}})

    assert provider.connection_state() == ConnectionInfo(state=ConnectionState.DISCONNECTED, raw_state="")


def test_logout_deletes_the_session(provider, http):
    http.delete(
        url(f"/instance/logout/{NAME}"),
        json={"status": "SUCCESS", "error": False, "response": {"message": "Instance logged out"}},
    )

    provider.logout()

    assert_call(http.calls[0], "DELETE", f"/instance/logout/{NAME}", body=None)


def test_logout_of_a_disconnected_instance_is_not_an_error(provider, http):
    body = error_body(400, "Bad Request", 'The "acme-support" instance is not connected')
    http.delete(url(f"/instance/logout/{NAME}"), json=body, status=400)

    provider.logout()

    assert len(http.calls) == 1


def test_logout_other_bad_request_raises_rejected(provider, http):
    http.delete(url(f"/instance/logout/{NAME}"), json=error_body(400, "Bad Request", "Something else"), status=400)

    with pytest.raises(ProviderRejected):
        provider.logout()


def test_restart_posts_restart(provider, http):
    http.post(url(f"/instance/restart/{NAME}"), json={"count": 1, "code": "2@abc", "base64": "data:image/png;base64,x"})

    provider.restart()

    assert_call(http.calls[0], "POST", f"/instance/restart/{NAME}", body=None)


def test_restart_of_a_closed_instance_raises_rejected(provider, http):
    http.post(url(f"/instance/restart/{NAME}"), json={"error": True, "message": "[object Object]"})

    with pytest.raises(ProviderRejected) as caught:
        provider.restart()

    assert caught.value.http_status == 200
    assert len(http.calls) == 1


def test_delete_remote_deletes_this_instance(provider, http):
    http.delete(
        url(f"/instance/delete/{NAME}"),
        json={"status": "SUCCESS", "error": False, "response": {"message": "Instance deleted"}},
    )

    provider.delete_remote()

    assert_call(http.calls[0], "DELETE", f"/instance/delete/{NAME}", body=None)


def test_delete_remote_of_a_missing_instance_is_not_an_error(provider, http):
    body = error_body(404, "Not Found", 'The "acme-support" instance does not exist')
    http.delete(url(f"/instance/delete/{NAME}"), json=body, status=404)

    provider.delete_remote()

    assert len(http.calls) == 1


def test_delete_remote_instance_deletes_the_named_instance(provider, http):
    http.delete(url("/instance/delete/old-test.1"), json={"status": "SUCCESS", "error": False})

    provider.delete_remote_instance(name="old-test.1")

    assert_call(http.calls[0], "DELETE", "/instance/delete/old-test.1", body=None)


@pytest.mark.parametrize("name", ["..", "a/b", "", "x?y=1"])
def test_delete_remote_instance_refuses_names_that_are_not_instance_names(provider, http, name):
    with pytest.raises(ProviderRejected):
        provider.delete_remote_instance(name=name)

    assert len(http.calls) == 0


def test_list_remote_instances_maps_rows(provider, http):
    rows = [
        {
            "id": "a1",
            "name": NAME,
            "connectionStatus": "open",
            "ownerJid": "5511900000000@s.whatsapp.net",
            "profileName": "Acme Support",
            "token": "instance-token",
        },
        {"id": "a2", "name": "old-test", "connectionStatus": "close", "ownerJid": None, "profileName": None},
        {"instance": {"instanceName": "legacy", "status": "connecting", "owner": "5511900000009@s.whatsapp.net"}},
        {"id": "a3"},
        "garbage",
    ]
    http.get(url("/instance/fetchInstances"), json=rows)

    instances = provider.list_remote_instances()

    assert_call(http.calls[0], "GET", "/instance/fetchInstances", body=None)
    assert [(i.name, i.state, i.phone, i.profile_name) for i in instances] == [
        (NAME, ConnectionState.CONNECTED, "+5511900000000", "Acme Support"),
        ("old-test", ConnectionState.DISCONNECTED, None, None),
        ("legacy", ConnectionState.CONNECTING, "+5511900000009", None),
    ]


def test_get_profile_reads_own_profile_and_baileys7_status_object(provider, http):
    http.post(
        url(f"/chat/fetchProfile/{NAME}"),
        json={
            "wuid": "5511900000000@s.whatsapp.net",
            "name": "Acme Support",
            "numberExists": True,
            "picture": "https://pps.whatsapp.net/acme.jpg",
            "status": {"status": "Atendimento das 8h às 18h", "setAt": "2025-11-01T10:00:00.000Z"},
            "isBusiness": True,
            "email": "contato@acme.com.br",
            "description": "",
            "website": ["https://acme.com.br"],
        },
    )

    profile = provider.get_profile()

    assert_call(http.calls[0], "POST", f"/chat/fetchProfile/{NAME}", body={})
    assert len(http.calls) == 1
    assert profile.phone == "+5511900000000"
    assert profile.name == "Acme Support"
    assert profile.picture_url == "https://pps.whatsapp.net/acme.jpg"
    assert profile.about == "Atendimento das 8h às 18h"
    assert profile.is_business is True
    assert profile.extra == {"email": "contato@acme.com.br", "website": ["https://acme.com.br"]}


def test_get_profile_completes_a_failed_profile_from_fetch_instances(provider, http):
    http.post(
        url(f"/chat/fetchProfile/{NAME}"),
        json={"wuid": None, "name": None, "picture": None, "status": None, "os": None, "isBusiness": False},
    )
    http.get(
        url("/instance/fetchInstances"),
        json=[
            {
                "name": NAME,
                "ownerJid": "5511900000000@s.whatsapp.net",
                "profileName": "Acme Support",
                "profilePicUrl": "https://pps.whatsapp.net/acme.jpg",
                "connectionStatus": "open",
            }
        ],
    )

    profile = provider.get_profile()

    assert_call(http.calls[1], "GET", "/instance/fetchInstances", body=None, params={"instanceName": [NAME]})
    assert (profile.phone, profile.name, profile.picture_url) == (
        "+5511900000000",
        "Acme Support",
        "https://pps.whatsapp.net/acme.jpg",
    )
    assert profile.about is None
    assert profile.is_business is False


def test_get_profile_still_answers_when_the_fallback_fails(provider, http):
    http.post(url(f"/chat/fetchProfile/{NAME}"), json={"wuid": "5511900000000@s.whatsapp.net", "name": "Acme"})
    http.get(url("/instance/fetchInstances"), json=error_body(404, "Not Found", "not loaded"), status=404)

    profile = provider.get_profile()

    assert (profile.phone, profile.name, profile.picture_url) == ("+5511900000000", "Acme", None)


# ================================================================================================
# Contacts, chats, history
# ================================================================================================


def test_list_contacts_maps_people_groups_and_lids(provider, http):
    rows = [
        {"id": "c1", "remoteJid": MARIA_JID, "pushName": "Maria Silva", "profilePicUrl": "https://pps/m.jpg"},
        {"id": "c2", "remoteJid": GROUP_JID, "pushName": "Clientes VIP", "isGroup": True, "type": "group"},
        {"id": "c3", "remoteJid": "98765432109876@lid", "pushName": "Carla Souza"},
        {"id": "c4", "remoteJid": "5511900000003@s.whatsapp.net", "pushName": "5511900000003"},
        {"id": "c5", "remoteJid": "status@broadcast"},
        {"id": "c6", "pushName": "no jid"},
    ]
    http.post(url(f"/chat/findContacts/{NAME}"), json=rows)

    contacts = provider.list_contacts()

    assert_call(http.calls[0], "POST", f"/chat/findContacts/{NAME}", body={"where": {}})
    assert [(c.chat_id, c.phone, c.name, c.picture_url, c.is_group) for c in contacts] == [
        (MARIA_JID, "+5511900000001", "Maria Silva", "https://pps/m.jpg", False),
        (GROUP_JID, None, "Clientes VIP", None, True),
        ("98765432109876@lid", None, "Carla Souza", None, False),
        ("5511900000003@s.whatsapp.net", "+5511900000003", None, None, False),
    ]


def test_list_chats_maps_unread_counts_and_last_message_time(provider, http):
    rows = [
        {
            "id": "k1",
            "remoteJid": MARIA_JID,
            "pushName": "Maria Silva",
            "unreadCount": 3,
            "updatedAt": "2025-11-23T12:20:00.000Z",
            "lastMessage": {"messageTimestamp": 1763900402, "messageType": "documentMessage"},
        },
        {"id": None, "remoteJid": GROUP_JID, "pushName": None, "updatedAt": "2025-11-23T11:00:00.000Z"},
    ]
    http.post(url(f"/chat/findChats/{NAME}"), json=rows)

    chats = provider.list_chats()

    assert_call(http.calls[0], "POST", f"/chat/findChats/{NAME}", body={})
    assert chats[0].chat_id == MARIA_JID
    assert chats[0].phone == "+5511900000001"
    assert chats[0].unread_count == 3
    assert chats[0].last_message_at == datetime(2025, 11, 23, 12, 20, 2, tzinfo=UTC)
    assert (chats[1].is_group, chats[1].phone, chats[1].unread_count) == (True, None, 0)
    assert chats[1].last_message_at == datetime(2025, 11, 23, 11, 0, tzinfo=UTC)


def test_list_messages_filters_by_chat_and_time_and_returns_oldest_first(provider, http):
    newer = load("messages_upsert__document.json")["data"]
    older = load("messages_upsert__text.json")["data"]
    other_chat = load("messages_upsert__ephemeral_wrapper.json")["data"]
    bodiless = {"key": {"remoteJid": MARIA_JID, "fromMe": False, "id": "STUB"}, "messageTimestamp": 1763900001}
    answer = {"messages": {"total": 4, "pages": 1, "currentPage": 1, "records": [newer, other_chat, older, bodiless]}}
    http.post(url(f"/chat/findMessages/{NAME}"), json=answer)
    since = datetime(2025, 11, 23, 9, 0, tzinfo=timezone(timedelta(hours=-3)))

    messages = provider.list_messages(chat_id=MARIA_JID, since=since, limit=50)

    assert_call(
        http.calls[0],
        "POST",
        f"/chat/findMessages/{NAME}",
        body={
            "where": {"key": {"remoteJid": MARIA_JID}, "messageTimestamp": {"gte": "2025-11-23T12:00:00Z"}},
            "page": 1,
            "offset": 50,
        },
    )
    assert [(m.provider_message_id, m.kind) for m in messages] == [
        ("A5561E44C2A63682E4295B52F484C14E", MessageKind.TEXT),
        ("7C2E4A6B8D0F1E3A5C7B9D1F2E4A6C8B", MessageKind.DOCUMENT),
    ]


def test_list_messages_without_since_sends_no_time_filter(provider, http):
    http.post(url(f"/chat/findMessages/{NAME}"), json={"messages": {"records": []}})

    assert provider.list_messages(chat_id=GROUP_JID) == []
    assert_call(
        http.calls[0],
        "POST",
        f"/chat/findMessages/{NAME}",
        body={"where": {"key": {"remoteJid": GROUP_JID}}, "page": 1, "offset": 100},
    )


# ================================================================================================
# Webhook configuration
# ================================================================================================


def _webhook_row(headers) -> dict:
    return {
        "id": "cm1",
        "url": WEBHOOK_URL,
        "headers": headers,
        "enabled": True,
        "events": EVENTS,
        "webhookByEvents": False,
        "webhookBase64": False,
        "instanceId": "8f3c6b2e-4a1d-4c7e-9b5a-2e7d1f0c9a34",
    }


def test_get_webhook_maps_the_stored_row(provider, http):
    http.get(url(f"/webhook/find/{NAME}"), json=_webhook_row({"x-elsehub-secret": SECRET}))

    info = provider.get_webhook()

    assert_call(http.calls[0], "GET", f"/webhook/find/{NAME}", body=None)
    assert info == WebhookInfo(url=WEBHOOK_URL, enabled=True, events=tuple(EVENTS), headers_configured=True)


def test_get_webhook_with_a_stale_secret_is_not_configured(provider, http):
    http.get(url(f"/webhook/find/{NAME}"), json=_webhook_row({"x-elsehub-secret": "old-secret"}))

    assert provider.get_webhook().headers_configured is False


def test_get_webhook_without_webhook_answers_null(provider, http):
    http.get(url(f"/webhook/find/{NAME}"), body="null", content_type="application/json")

    assert provider.get_webhook() == WebhookInfo(url=None, enabled=False)


def test_configure_webhook_sets_url_secret_header_and_events(provider, http):
    http.post(url(f"/webhook/set/{NAME}"), json=_webhook_row({"x-elsehub-secret": SECRET}), status=201)

    info = provider.configure_webhook()

    assert_call(http.calls[0], "POST", f"/webhook/set/{NAME}", body={"webhook": {"enabled": True, **WEBHOOK_BODY}})
    assert info.enabled is True
    assert info.headers_configured is True


# ================================================================================================
# Sending
# ================================================================================================


def test_send_text_posts_digits_and_maps_the_answer(provider, http):
    http.post(url(f"/message/sendText/{NAME}"), json=load("api/send_text__response.json"), status=201)

    sent = provider.send_text(to="+5511900000001", text="Olá Maria! Seu pedido #1042 saiu para entrega hoje.")

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendText/{NAME}",
        body={"number": "5511900000001", "text": "Olá Maria! Seu pedido #1042 saiu para entrega hoje."},
    )
    assert sent == SentMessage(
        provider_message_id="3EB0C767D097B7C7C030A1",
        status=DeliveryStatus.SENT,
        timestamp=datetime(2025, 11, 23, 12, 15, tzinfo=UTC),
    )


def test_send_text_quotes_by_provider_id(provider, http):
    http.post(url(f"/message/sendText/{NAME}"), json=load("api/send_text__response.json"), status=201)

    provider.send_text(to=MARIA_JID, text="Isso!", quoted_provider_id="A5561E44C2A63682E4295B52F484C14E")

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendText/{NAME}",
        body={
            "number": "5511900000001",
            "text": "Isso!",
            "quoted": {"key": {"id": "A5561E44C2A63682E4295B52F484C14E"}},
        },
    )


@pytest.mark.parametrize(
    ("to", "number"),
    [
        ("+55 (11) 90000-0001", "5511900000001"),
        ("5511900000001", "5511900000001"),
        ("5511900000001@s.whatsapp.net", "5511900000001"),
        ("5511900000001:12@s.whatsapp.net", "5511900000001"),
        (GROUP_JID, GROUP_JID),
        ("184467440737095@lid", "184467440737095@lid"),
    ],
)
def test_send_text_addresses_people_by_digits_and_groups_and_lids_by_jid(provider, http, to, number):
    http.post(url(f"/message/sendText/{NAME}"), json=load("api/send_text__response.json"), status=201)

    provider.send_text(to=to, text="Oi")

    assert json.loads(http.calls[0].request.body)["number"] == number


@pytest.mark.parametrize("to", ["", "abc", "12345", "+55 11 9000000000000000", "@g.us", "x@unknown.server"])
def test_send_text_to_an_invalid_recipient_does_not_call(provider, http, to):
    with pytest.raises(ProviderRejected):
        provider.send_text(to=to, text="Oi")

    assert len(http.calls) == 0


def test_send_text_with_empty_text_does_not_call(provider, http):
    with pytest.raises(ProviderRejected):
        provider.send_text(to="+5511900000001", text="  \n")

    assert len(http.calls) == 0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("PENDING", DeliveryStatus.SENT),
        ("SERVER_ACK", DeliveryStatus.SENT),
        ("DELIVERY_ACK", DeliveryStatus.DELIVERED),
        (1, DeliveryStatus.SENT),
        (None, DeliveryStatus.SENT),
        ("ERROR", DeliveryStatus.FAILED),
    ],
)
def test_send_text_maps_the_status_of_the_answer(provider, http, status, expected):
    answer = load("api/send_text__response.json") | {"status": status}
    http.post(url(f"/message/sendText/{NAME}"), json=answer, status=201)

    assert provider.send_text(to="+5511900000001", text="Oi").status == expected


def test_send_text_answer_without_message_id_raises_bad_response(provider, http):
    http.post(url(f"/message/sendText/{NAME}"), json={"status": "PENDING"}, status=201)

    with pytest.raises(ProviderBadResponse):
        provider.send_text(to="+5511900000001", text="Oi")


def test_send_text_to_a_number_not_on_whatsapp_raises_rejected_in_portuguese(provider, http):
    http.post(url(f"/message/sendText/{NAME}"), json=load("api/error__number_not_on_whatsapp.json"), status=400)

    with translation.override("pt-br"), pytest.raises(ProviderRejected) as caught:
        provider.send_text(to="+5511900000009", text="Oi")

    assert str(caught.value.message) == "O número não está no WhatsApp"
    assert caught.value.http_status == 400
    assert caught.value.provider_code == "Bad Request"
    assert '"exists": false' in caught.value.details
    assert len(http.calls) == 1


def test_send_media_by_url_posts_the_documented_body(provider, http):
    http.post(url(f"/message/sendMedia/{NAME}"), json=load("api/send_text__response.json"), status=201)
    media = MediaInput(
        url="https://files.example.com/boletos/1042.pdf", mime_type="application/pdf", file_name="boleto-1042.pdf"
    )

    sent = provider.send_media(to="+5511900000001", kind="document", media=media, caption="Segunda via do boleto")

    assert_call(http.calls[0], "POST", f"/message/sendMedia/{NAME}", body=load("api/send_media__request.json"))
    assert sent.provider_message_id == "3EB0C767D097B7C7C030A1"


def test_send_media_base64_document_gets_a_file_name(provider, http):
    http.post(url(f"/message/sendMedia/{NAME}"), json=load("api/send_text__response.json"), status=201)
    media = MediaInput(content=b"%PDF-1.7 test", mime_type="application/pdf")

    provider.send_media(to="+5511900000001", kind="document", media=media)

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendMedia/{NAME}",
        body={
            "number": "5511900000001",
            "mediatype": "document",
            "media": base64.b64encode(b"%PDF-1.7 test").decode(),
            "mimetype": "application/pdf",
            "fileName": "document.pdf",
        },
    )


def test_send_media_image_with_quote(provider, http):
    http.post(url(f"/message/sendMedia/{NAME}"), json=load("api/send_text__response.json"), status=201)

    provider.send_media(
        to=GROUP_JID,
        kind="image",
        media=MediaInput(url="https://files.example.com/a.jpg"),
        caption="Veja",
        quoted_provider_id="Q1",
    )

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendMedia/{NAME}",
        body={
            "number": GROUP_JID,
            "mediatype": "image",
            "media": "https://files.example.com/a.jpg",
            "caption": "Veja",
            "quoted": {"key": {"id": "Q1"}},
        },
    )


@pytest.mark.parametrize(
    ("kind", "media"),
    [("sticker", MediaInput(url="https://files.example.com/a.webp")), ("image", MediaInput())],
)
def test_send_media_with_unknown_kind_or_no_source_does_not_call(provider, http, kind, media):
    with pytest.raises(ProviderRejected):
        provider.send_media(to="+5511900000001", kind=kind, media=media)

    assert len(http.calls) == 0


def test_send_audio_posts_a_voice_note(provider, http):
    http.post(url(f"/message/sendWhatsAppAudio/{NAME}"), json=load("api/send_text__response.json"), status=201)

    provider.send_audio(to="+5511900000001", media=MediaInput(content=b"OggS", mime_type="audio/ogg"))

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendWhatsAppAudio/{NAME}",
        body={"number": "5511900000001", "audio": "T2dnUw=="},
    )


def test_send_sticker_posts_the_sticker(provider, http):
    http.post(url(f"/message/sendSticker/{NAME}"), json=load("api/send_text__response.json"), status=201)

    provider.send_sticker(to="+5511900000001", media=MediaInput(url="https://files.example.com/s.webp"))

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendSticker/{NAME}",
        body={"number": "5511900000001", "sticker": "https://files.example.com/s.webp"},
    )


@pytest.mark.parametrize("emoji", ["👍", ""])
def test_send_reaction_posts_the_reacted_key(provider, http, emoji):
    http.post(url(f"/message/sendReaction/{NAME}"), json=load("api/send_text__response.json"), status=201)

    sent = provider.send_reaction(to="+5511900000001", provider_message_id="A5561E44", emoji=emoji, from_me=True)

    assert_call(
        http.calls[0],
        "POST",
        f"/message/sendReaction/{NAME}",
        body={"key": {"remoteJid": MARIA_JID, "fromMe": True, "id": "A5561E44"}, "reaction": emoji},
    )
    assert sent.provider_message_id == "3EB0C767D097B7C7C030A1"


def test_send_template_is_unsupported(provider, http):
    with pytest.raises(ProviderUnsupported):
        provider.send_template(to="+5511900000001", name="boas_vindas", language="pt_BR")

    assert len(http.calls) == 0


def test_mark_read_posts_every_key(provider, http):
    http.post(url(f"/chat/markMessageAsRead/{NAME}"), json={"message": "Read messages", "read": "success"}, status=201)

    provider.mark_read(chat_id=MARIA_JID, provider_message_ids=["A1", "A2"])

    assert_call(
        http.calls[0],
        "POST",
        f"/chat/markMessageAsRead/{NAME}",
        body={
            "readMessages": [
                {"remoteJid": MARIA_JID, "fromMe": False, "id": "A1"},
                {"remoteJid": MARIA_JID, "fromMe": False, "id": "A2"},
            ]
        },
    )


def test_mark_read_without_ids_does_not_call(provider, http):
    provider.mark_read(chat_id=MARIA_JID, provider_message_ids=[])

    assert len(http.calls) == 0


@pytest.mark.parametrize("archive", [True, False])
def test_archive_chat_posts_the_chat(provider, http, archive):
    http.post(url(f"/chat/archiveChat/{NAME}"), json={"chatId": MARIA_JID, "archived": True}, status=201)

    provider.archive_chat(chat_id="+5511900000001", archive=archive)

    assert_call(http.calls[0], "POST", f"/chat/archiveChat/{NAME}", body={"archive": archive, "chat": MARIA_JID})


def test_send_presence_posts_presence_with_delay(provider, http):
    http.post(url(f"/chat/sendPresence/{NAME}"), json={"presence": "composing"}, status=201)

    provider.send_presence(chat_id=MARIA_JID, presence=Presence.COMPOSING)

    assert_call(
        http.calls[0],
        "POST",
        f"/chat/sendPresence/{NAME}",
        body={"number": "5511900000001", "presence": "composing", "delay": 1200},
    )


# ================================================================================================
# Media download
# ================================================================================================


def test_download_media_decodes_inline_base64_without_calling(provider, http):
    media = parse_one("messages_upsert__audio_ptt_base64.json").media

    downloaded = provider.download_media(media=media)

    assert downloaded.content.startswith(b"OggS")
    assert downloaded.mime_type == "audio/ogg; codecs=opus"
    assert len(http.calls) == 0


def test_download_media_sends_the_stored_message_to_evolution(provider, http):
    media = parse_one("messages_upsert__document.json").media
    http.post(
        url(f"/chat/getBase64FromMediaMessage/{NAME}"),
        json={
            "mediaType": "documentMessage",
            "fileName": "Comprovante-1042.pdf",
            "size": {"fileLength": {"low": 48213, "high": 0, "unsigned": True}},
            "mimetype": "application/pdf",
            "base64": base64.b64encode(b"%PDF-1.4 comprovante").decode(),
            "buffer": None,
        },
        status=201,
    )

    downloaded = provider.download_media(media=media, chat_id=MARIA_JID)

    assert_call(
        http.calls[0],
        "POST",
        f"/chat/getBase64FromMediaMessage/{NAME}",
        body={"message": media.provider_payload, "convertToMp4": False},
    )
    payload = json.loads(http.calls[0].request.body)["message"]
    assert payload["key"] == {"remoteJid": MARIA_JID, "fromMe": False, "id": "7C2E4A6B8D0F1E3A5C7B9D1F2E4A6C8B"}
    # 2.3.6 index objects and Long objects go back in the compact form Baileys reads.
    assert payload["message"]["documentMessage"]["mediaKey"] == "TWWRVv+YVNEvIphqc3GeIkCrITEUeEeX5Z4YLWoCfWY="
    assert payload["message"]["documentMessage"]["fileLength"] == 48213
    assert downloaded.content == b"%PDF-1.4 comprovante"
    assert (downloaded.mime_type, downloaded.file_name) == ("application/pdf", "Comprovante-1042.pdf")


def test_download_media_by_key_id_only(provider, http):
    http.post(
        url(f"/chat/getBase64FromMediaMessage/{NAME}"),
        json={"mediaType": "imageMessage", "fileName": "X1.jpeg", "mimetype": "image/jpeg", "base64": "/9j/"},
        status=201,
    )

    downloaded = provider.download_media(media=MediaRef(provider_media_id="X1"))

    assert_call(
        http.calls[0],
        "POST",
        f"/chat/getBase64FromMediaMessage/{NAME}",
        body={"message": {"key": {"id": "X1"}}, "convertToMp4": False},
    )
    assert downloaded.content == b"\xff\xd8\xff"
    assert downloaded.file_name == "X1.jpeg"


def test_download_media_without_reference_does_not_call(provider, http):
    with pytest.raises(ProviderRejected):
        provider.download_media(media=MediaRef())

    assert len(http.calls) == 0


def test_download_media_with_unreadable_base64_raises_bad_response(provider, http):
    http.post(url(f"/chat/getBase64FromMediaMessage/{NAME}"), json={"base64": "not base64!"}, status=201)

    with pytest.raises(ProviderBadResponse):
        provider.download_media(media=MediaRef(provider_media_id="X1"))


def test_download_media_not_a_media_message_raises_rejected(provider, http):
    body = error_body(400, "Bad Request", "The message is not of the media type")
    http.post(url(f"/chat/getBase64FromMediaMessage/{NAME}"), json=body, status=400)

    with pytest.raises(ProviderRejected) as caught:
        provider.download_media(media=MediaRef(provider_media_id="X1"))

    assert caught.value.details == "The message is not of the media type"


# ================================================================================================
# Error mapping, retries and transport failures
# ================================================================================================


def test_error_401_raises_auth_error_in_portuguese(provider, http):
    http.get(url(f"/instance/connectionState/{NAME}"), json=error_body(401, "Unauthorized", "Unauthorized"), status=401)

    with translation.override("pt-br"), pytest.raises(ProviderAuthError) as caught:
        provider.connection_state()

    assert str(caught.value.message) == "O provedor de WhatsApp recusou as credenciais (token inválido ou expirado)"
    assert len(http.calls) == 1


def test_error_403_other_than_name_taken_raises_auth_error(provider, http):
    http.get(
        url(f"/instance/connectionState/{NAME}"),
        json=error_body(403, "Forbidden", "Missing global api key"),
        status=403,
    )

    with pytest.raises(ProviderAuthError) as caught:
        provider.connection_state()

    assert caught.value.details == "Missing global api key"


def test_error_404_raises_not_found(provider, http):
    body = error_body(404, "Not Found", 'The "acme-support" instance does not exist')
    http.get(url(f"/instance/connectionState/{NAME}"), json=body, status=404)

    with pytest.raises(ProviderNotFound) as caught:
        provider.connection_state()

    assert caught.value.http_status == 404
    assert caught.value.details == 'The "acme-support" instance does not exist'
    assert len(http.calls) == 1


def test_error_400_joins_the_validation_messages(provider, http):
    body = error_body(400, "Bad Request", 'instance requires property "text"', "Text is required")
    http.post(url(f"/message/sendText/{NAME}"), json=body, status=400)

    with pytest.raises(ProviderRejected) as caught:
        provider.send_text(to="+5511900000001", text="Oi")

    assert caught.value.details == 'instance requires property "text"; Text is required'
    assert caught.value.provider_code == "Bad Request"


def test_error_details_never_contain_the_token(provider, http):
    body = {"status": 400, "error": "Bad Request", "response": {"message": f"bad apikey {TOKEN}"}}
    http.post(url(f"/message/sendText/{NAME}"), json=body, status=400)

    with pytest.raises(ProviderRejected) as caught:
        provider.send_text(to="+5511900000001", text="Oi")

    assert TOKEN not in caught.value.details
    assert caught.value.details == "bad apikey ***"


def test_error_429_honours_retry_after_then_succeeds(provider, http, sleeps):
    http.get(url(f"/instance/connectionState/{NAME}"), status=429, headers={"Retry-After": "2"}, body="")
    http.get(url(f"/instance/connectionState/{NAME}"), json={"instance": {"instanceName": NAME, "state": "open"}})

    assert provider.connection_state().state == ConnectionState.CONNECTED
    assert len(http.calls) == 2
    assert sleeps == [2.0]


def test_error_429_on_a_send_is_retried_because_nothing_was_sent(provider, http, sleeps):
    http.post(url(f"/message/sendText/{NAME}"), status=429, headers={"Retry-After": "1"}, body="")
    http.post(url(f"/message/sendText/{NAME}"), json=load("api/send_text__response.json"), status=201)

    assert provider.send_text(to="+5511900000001", text="Oi").provider_message_id == "3EB0C767D097B7C7C030A1"
    assert len(http.calls) == 2


def test_error_429_until_the_last_attempt_raises_rate_limited(provider, http, sleeps):
    http.get(url(f"/instance/connectionState/{NAME}"), status=429, headers={"Retry-After": "1"}, body="")

    with pytest.raises(ProviderRateLimited) as caught:
        provider.connection_state()

    assert caught.value.retry_after == 1.0
    assert len(http.calls) == 3


def test_error_500_on_a_read_is_retried_then_succeeds(provider, http, sleeps):
    http.get(url(f"/instance/connectionState/{NAME}"), json=error_body(500, "Internal Server Error", "x"), status=500)
    http.get(url(f"/instance/connectionState/{NAME}"), body="<html>Bad Gateway</html>", status=502)
    http.get(url(f"/instance/connectionState/{NAME}"), json={"instance": {"instanceName": NAME, "state": "close"}})

    assert provider.connection_state().state == ConnectionState.DISCONNECTED
    assert len(http.calls) == 3


def test_error_500_on_every_attempt_raises_unavailable(provider, http, sleeps):
    http.get(url(f"/instance/connectionState/{NAME}"), body="<html>Bad Gateway</html>", status=502)

    with pytest.raises(ProviderUnavailable) as caught:
        provider.connection_state()

    assert caught.value.http_status == 502
    assert caught.value.details == "<html>Bad Gateway</html>"
    assert len(http.calls) == 3


def test_error_500_on_a_send_is_not_retried(provider, http, sleeps):
    http.post(url(f"/message/sendText/{NAME}"), json=error_body(500, "Internal Server Error", "boom"), status=500)

    with pytest.raises(ProviderUnavailable):
        provider.send_text(to="+5511900000001", text="Oi")

    assert len(http.calls) == 1


def test_read_timeout_on_a_send_raises_timeout_without_retry(provider, http, sleeps):
    http.post(url(f"/message/sendText/{NAME}"), body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(ProviderTimeout):
        provider.send_text(to="+5511900000001", text="Oi")

    assert len(http.calls) == 1


def test_read_timeout_on_a_read_is_retried(provider, http, sleeps):
    http.get(url(f"/instance/connectionState/{NAME}"), body=requests.exceptions.ReadTimeout("read timed out"))
    http.get(url(f"/instance/connectionState/{NAME}"), json={"instance": {"instanceName": NAME, "state": "open"}})

    assert provider.connection_state().state == ConnectionState.CONNECTED
    assert len(http.calls) == 2


def test_unreadable_success_answer_raises_bad_response(provider, http):
    http.get(url(f"/instance/connectionState/{NAME}"), body="<html>proxy page</html>", status=200)

    with pytest.raises(ProviderBadResponse):
        provider.connection_state()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _local_provider(instance, port: int) -> EvolutionProvider:
    credentials = instance.credentials | {"serverUrl": f"http://127.0.0.1:{port}"}
    return EvolutionProvider(
        ProviderInstance(id=instance.id, name=instance.name, phone=instance.phone, credentials=credentials)
    )


def _count_attempts(monkeypatch, provider) -> list[str]:
    attempts: list[str] = []
    session = provider.http.session
    real = session.request

    def counting(method, url, **kwargs):
        attempts.append(method)
        return real(method, url, **kwargs)

    monkeypatch.setattr(session, "request", counting)
    return attempts


def test_connection_refused_raises_connection_error_after_retries(instance, monkeypatch, sleeps):
    provider = _local_provider(instance, _closed_port())
    attempts = _count_attempts(monkeypatch, provider)

    with pytest.raises(ProviderConnectionError):
        provider.connection_state()

    assert attempts == ["GET", "GET", "GET"]


def test_connection_refused_on_a_send_is_retried_because_nothing_was_sent(instance, monkeypatch, sleeps):
    provider = _local_provider(instance, _closed_port())
    attempts = _count_attempts(monkeypatch, provider)

    with pytest.raises(ProviderConnectionError):
        provider.send_text(to="+5511900000001", text="Oi")

    assert attempts == ["POST", "POST", "POST"]


def test_connection_closed_after_a_send_was_written_raises_timeout_without_retry(instance, monkeypatch, sleeps):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    received: list[bytes] = []

    def read_then_hang_up():
        # Reads the whole request, then closes without answering: the send may have happened.
        while True:
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(65536))

    thread = threading.Thread(target=read_then_hang_up, daemon=True)
    thread.start()
    provider = _local_provider(instance, server.getsockname()[1])
    attempts = _count_attempts(monkeypatch, provider)
    try:
        with pytest.raises(ProviderTimeout):
            provider.send_text(to="+5511900000001", text="Oi")
    finally:
        server.close()

    assert attempts == ["POST"]
    assert len(received) == 1


# ================================================================================================
# Webhooks: envelope
# ================================================================================================


@pytest.mark.parametrize("payload", [None, [], "messages.upsert", {"data": {}}, {"event": 3}, {"event": ""}])
def test_parse_webhook_rejects_bodies_that_are_no_evolution_envelope(payload):
    with pytest.raises(InvalidWebhookPayload):
        EvolutionProvider.parse_webhook(payload)


def test_parse_webhook_ignores_unknown_events():
    assert EvolutionProvider.parse_webhook({"event": "call", "instance": NAME, "data": {"id": "x"}}) == []


def test_parse_webhook_accepts_the_subscription_spelling_of_event_names():
    payload = load("messages_upsert__text.json") | {"event": "MESSAGES_UPSERT"}

    assert [type(event) for event in EvolutionProvider.parse_webhook(payload)] == [InboundMessage]


def test_parse_webhook_chats_upsert_is_ignored():
    assert parse("chats_upsert__unread_reset.json") == []


def test_parse_webhook_status_instance_is_ignored():
    assert parse("status_instance__closed.json") == []


# ================================================================================================
# Webhooks: messages.upsert and send.message
# ================================================================================================


def test_parse_webhook_text_message():
    message = parse_one("messages_upsert__text.json")

    assert message == InboundMessage(
        provider_message_id="A5561E44C2A63682E4295B52F484C14E",
        chat_id=MARIA_JID,
        phone="+5511900000001",
        contact_name="Maria Silva",
        kind=MessageKind.TEXT,
        timestamp=datetime(2025, 11, 23, 12, 13, 20, tzinfo=UTC),
        text="Oi! Meu pedido ainda não chegou 😕",
        raw_type="conversation",
        user_id="184467440737095@lid",  # remoteJidAlt: WhatsApp's id for Maria, kept next to her phone
    )


def test_parse_webhook_image_with_caption_and_2_3_6_encodings():
    message = parse_one("messages_upsert__image.json")

    assert (message.kind, message.text, message.phone) == (
        MessageKind.IMAGE,
        "Foto da caixa que chegou amassada",
        "+5511900000001",
    )
    media = message.media
    assert media.provider_media_id == "2A9F1C3E5B7D9F1A3C5E7B9D1F3A5C7E"
    assert media.mime_type == "image/jpeg"
    assert media.size == 184233
    assert (media.width, media.height) == (1200, 1600)
    assert media.sha256 == "e55201e43df0c5a909b4334e2bb3831ec3253f787e9939842bcb4f9617ee3cd1"
    assert media.url.startswith("https://mmg.whatsapp.net/")
    assert media.inline_base64 is None
    assert media.provider_payload["key"] == {
        "remoteJid": MARIA_JID,
        "fromMe": False,
        "id": "2A9F1C3E5B7D9F1A3C5E7B9D1F3A5C7E",
    }
    stored = media.provider_payload["message"]["imageMessage"]
    assert stored["mediaKeyTimestamp"] == 1763900290
    assert "jpegThumbnail" not in stored


def test_parse_webhook_voice_note_with_inline_base64():
    message = parse_one("messages_upsert__audio_ptt_base64.json")

    assert message.kind == MessageKind.AUDIO
    assert message.media.voice is True
    assert message.media.seconds == 7
    assert message.media.size == 11872
    assert message.media.mime_type == "audio/ogg; codecs=opus"
    assert message.media.inline_base64 == "T2dnUwACAAAAAAAAAAB5dGVzdAAAAAAAAAAAAAEAT3B1c0hlYWQBAQ8A"
    assert "base64" not in message.media.provider_payload["message"]


def test_parse_webhook_document_with_file_name_and_caption():
    message = parse_one("messages_upsert__document.json")

    assert message.kind == MessageKind.DOCUMENT
    assert message.text == "Segue o comprovante"
    assert message.media.file_name == "Comprovante-1042.pdf"
    assert message.media.size == 48213
    assert message.timestamp == datetime(2025, 11, 23, 12, 20, 2, tzinfo=UTC)


def test_parse_webhook_document_with_caption_wrapper_is_unwrapped():
    message = parse_one("messages_upsert__document_with_caption_wrapper.json")

    assert message.kind == MessageKind.DOCUMENT
    assert message.text == "Contrato assinado"
    assert message.media.file_name == "contrato.pdf"
    assert message.media.size == 705032
    assert message.raw_type == "documentMessage"
    assert list(message.media.provider_payload["message"]) == ["documentMessage"]


def test_parse_webhook_sticker():
    message = parse_one("messages_upsert__sticker.json")

    assert message.kind == MessageKind.STICKER
    assert message.media.mime_type == "image/webp"
    assert message.media.animated is False
    assert message.media.size == 23110
    # A Long with a negative low word (stickerSentTs) decodes to the right 64-bit value.
    assert message.media.provider_payload["message"]["stickerMessage"]["stickerSentTs"] == 1763900449871


def test_parse_webhook_location():
    message = parse_one("messages_upsert__location.json")

    assert message.kind == MessageKind.LOCATION
    assert message.location == Location(
        latitude=-23.561414,
        longitude=-46.655881,
        name="MASP",
        address="Av. Paulista, 1578 - Bela Vista, São Paulo - SP",
    )
    assert message.media is None


def test_parse_webhook_live_location():
    message = parse_one("messages_upsert__live_location.json")

    assert message.kind == MessageKind.LOCATION
    assert message.location == Location(latitude=-23.55052, longitude=-46.633308)
    assert message.text == "Estou chegando"


def test_parse_webhook_contact_card():
    message = parse_one("messages_upsert__contact.json")

    assert message.kind == MessageKind.CONTACTS
    assert message.contacts == (
        SharedContact(
            name="Pedro Lima",
            phones=("+5511900000005",),
            vcard=load("messages_upsert__contact.json")["data"]["message"]["contactMessage"]["vcard"],
        ),
    )


def test_parse_webhook_contacts_array():
    message = parse_one("messages_upsert__contacts_array.json")

    assert [(contact.name, contact.phones) for contact in message.contacts] == [
        ("Pedro Lima", ("+5511900000005",)),
        ("Loja Centro", ("+551130000006",)),
    ]


def test_parse_webhook_reaction():
    message = parse_one("messages_upsert__reaction.json")

    assert (message.kind, message.reaction_to, message.reaction_emoji) == (
        MessageKind.REACTION,
        "3EB0C767D097B7C7C030A1",
        "👍",
    )
    assert message.text is None


def test_parse_webhook_reaction_removed_has_empty_emoji():
    message = parse_one("messages_upsert__reaction_removed.json")

    assert message.kind == MessageKind.REACTION
    assert message.reaction_to == "3EB0C767D097B7C7C030A1"
    assert message.reaction_emoji == ""


def test_parse_webhook_poll_is_unsupported_with_reason():
    message = parse_one("messages_upsert__poll.json")

    assert message.kind == MessageKind.UNSUPPORTED
    assert message.unsupported_reason == "poll"
    assert message.raw_type == "pollCreationMessageV3"
    assert message.is_group is True


def test_parse_webhook_unknown_message_type_is_unsupported():
    payload = load("messages_upsert__text.json")
    payload["data"]["message"] = {"eventMessage": {"name": "Inauguração"}}
    payload["data"]["messageType"] = "eventMessage"

    message = EvolutionProvider.parse_webhook(payload)[0]

    assert (message.kind, message.unsupported_reason, message.raw_type) == (
        MessageKind.UNSUPPORTED,
        "unknown_message_type",
        "eventMessage",
    )


def test_parse_webhook_extended_text_with_quote():
    message = parse_one("messages_upsert__extended_text_quote.json")

    assert message.kind == MessageKind.TEXT
    assert message.text == "Esse aqui, o de ontem"
    assert message.quoted_provider_id == "3EB0C767D097B7C7C030A1"


def test_parse_webhook_reply_as_v2_normalises_it():
    message = parse_one("messages_upsert__reply_normalised.json")

    assert (message.text, message.quoted_provider_id) == ("Obrigada!", "3EB0C767D097B7C7C030A1")


def test_parse_webhook_ephemeral_wrapper_is_unwrapped():
    message = parse_one("messages_upsert__ephemeral_wrapper.json")

    assert message.kind == MessageKind.TEXT
    assert message.text == "Mensagem temporária: qual o prazo de troca?"
    assert message.raw_type == "extendedTextMessage"
    assert message.quoted_provider_id is None


def test_parse_webhook_view_once_wrapper_is_unwrapped():
    message = parse_one("messages_upsert__view_once_image.json")

    assert message.kind == MessageKind.IMAGE
    assert message.text == "Só uma vez"
    assert message.media.size == 90210
    assert list(message.media.provider_payload["message"]) == ["imageMessage"]


def test_parse_webhook_group_message_uses_participant_alt_for_a_lid_sender():
    message = parse_one("messages_upsert__group_lid_participant.json")

    assert message.chat_id == GROUP_JID
    assert message.is_group is True
    assert message.phone is None
    assert message.contact_name is None
    assert message.participant_phone == "+5511900000004"
    assert message.participant_name == "Carla Souza"
    assert message.text == "Bom dia, pessoal! Alguém da loja pode me ajudar?"


def test_parse_webhook_group_message_with_lid_only_sender_has_no_phone():
    message = parse_one("messages_upsert__group_lid_participant_without_phone.json")

    assert message.participant_phone is None
    assert message.participant_name == "Diego"


def test_parse_webhook_lid_chat_with_phone_alt_uses_the_phone_jid():
    message = parse_one("messages_upsert__lid_chat_with_phone_alt.json")

    assert message.chat_id == MARIA_JID
    assert message.phone == "+5511900000001"


def test_parse_webhook_lid_chat_without_phone_keeps_the_lid():
    message = parse_one("messages_upsert__lid_chat_without_phone.json")

    assert message.chat_id == message.user_id == "200000000000001@lid"
    assert message.phone is None
    assert message.contact_name == "Cliente Sem Número"


def test_parse_webhook_own_message_typed_on_the_phone():
    message = parse_one("messages_upsert__from_me_on_phone.json")

    assert message.from_me is True
    assert message.phone == "+5511900000001"
    # pushName of an own message is our own name, never the customer's.
    assert message.contact_name is None
    assert message.text == "Já verifiquei, chega amanhã."


def test_parse_webhook_forwarded_video_with_plain_number_encodings():
    message = parse_one("messages_upsert__video_forwarded.json")

    assert message.kind == MessageKind.VIDEO
    assert message.forwarded is True
    assert (message.media.size, message.media.seconds) == (1048576, 12)
    assert message.media.animated is False


def test_parse_webhook_legacy_2_3_5_encodings():
    message = parse_one("messages_upsert__image_legacy_encodings.json")

    assert message.kind == MessageKind.IMAGE
    assert message.media.size == 226688
    assert message.media.sha256 == "a67e037cfe218135162da3b032664d14aac3040cc36ac54c4e9bbee528f50cf6"
    assert base64.b64decode(message.media.inline_base64).startswith(b"\xff\xd8\xff\xe0")
    assert message.media.provider_payload["message"]["imageMessage"]["mediaKey"] == base64.b64encode(
        bytes(range(32, 64))
    ).decode("ascii")
    assert message.timestamp == datetime(2025, 11, 23, 12, 41, 40, tzinfo=UTC)


def test_parse_webhook_send_message_is_an_own_message():
    message = parse_one("send_message__text.json")

    assert message.from_me is True
    assert message.provider_message_id == "3EB0C767D097B7C7C030A1"
    assert message.contact_name is None
    assert message.text == "Olá Maria! Seu pedido #1042 saiu para entrega hoje."
    assert message.timestamp == datetime(2025, 11, 23, 12, 15, tzinfo=UTC)


def test_parse_webhook_send_message_is_own_even_without_from_me():
    payload = load("send_message__text.json")
    del payload["data"]["key"]["fromMe"]

    assert EvolutionProvider.parse_webhook(payload)[0].from_me is True


def test_parse_webhook_status_broadcast_and_keyless_records_are_skipped():
    story = load("messages_upsert__text.json")
    story["data"]["key"]["remoteJid"] = "status@broadcast"
    keyless = load("messages_upsert__text.json")
    del keyless["data"]["key"]

    assert EvolutionProvider.parse_webhook(story) == []
    assert EvolutionProvider.parse_webhook(keyless) == []


@pytest.mark.parametrize(("kind", "event_type"), [("REVOKE", MessageRevoked), (14, MessageEdited), ("X", None)])
def test_parse_webhook_protocol_message_in_an_upsert_becomes_edit_or_revoke(kind, event_type):
    payload = load("messages_upsert__text.json")
    payload["data"]["message"] = {
        "protocolMessage": {"key": {"id": "ORIGINAL"}, "type": kind, "editedMessage": {"conversation": "novo"}}
    }
    payload["data"]["messageType"] = "protocolMessage"

    events = EvolutionProvider.parse_webhook(payload)

    assert [type(event) for event in events] == ([event_type] if event_type else [])
    if events:
        assert events[0].provider_message_id == "ORIGINAL"
        assert events[0].chat_id == MARIA_JID


# ================================================================================================
# Webhooks: updates, edits, deletes
# ================================================================================================


def test_parse_webhook_delivered_status():
    assert parse_one("messages_update__delivered.json") == StatusUpdate(
        provider_message_id="3EB0C767D097B7C7C030A1",
        status=DeliveryStatus.DELIVERED,
        chat_id=MARIA_JID,
        recipient_phone="+5511900000001",
    )


def test_parse_webhook_read_status():
    update = parse_one("messages_update__read.json")

    assert (update.provider_message_id, update.status) == ("3EB0C767D097B7C7C030A1", DeliveryStatus.READ)


def test_parse_webhook_played_status():
    assert parse_one("messages_update__played.json").status == DeliveryStatus.PLAYED


def test_parse_webhook_error_status_is_failed():
    update = parse_one("messages_update__error.json")

    assert (update.provider_message_id, update.status) == ("3EB0E1E2E3E4E5E6E7E8E9", DeliveryStatus.FAILED)


def test_parse_webhook_server_ack_is_sent_and_a_lid_chat_has_no_phone():
    update = parse_one("messages_update__server_ack_lid.json")

    assert update.status == DeliveryStatus.SENT
    assert (update.chat_id, update.recipient_phone) == ("184467440737095@lid", None)


@pytest.mark.parametrize(("status", "expected"), [("PENDING", DeliveryStatus.PENDING), (3, DeliveryStatus.DELIVERED)])
def test_parse_webhook_status_names_and_numbers(status, expected):
    payload = load("messages_update__delivered.json")
    payload["data"]["status"] = status

    assert parse_one_payload(payload).status == expected


def test_parse_webhook_update_with_unknown_status_is_ignored():
    payload = load("messages_update__delivered.json")
    payload["data"]["status"] = "SOMETHING_NEW"

    assert EvolutionProvider.parse_webhook(payload) == []


def test_parse_webhook_deleted_status_is_a_revoke():
    assert parse_one("messages_update__deleted_2_3_6.json") == MessageRevoked(
        provider_message_id="A5561E44C2A63682E4295B52F484C14E", chat_id=MARIA_JID
    )


def test_parse_webhook_2_3_7_edit_in_messages_update():
    assert parse_one("messages_update__edited_2_3_7.json") == MessageEdited(
        provider_message_id="A5561E44C2A63682E4295B52F484C14E",
        chat_id=MARIA_JID,
        text="Oi! Meu pedido #1042 ainda não chegou 😕",
    )


def test_parse_webhook_messages_edited():
    assert parse_one("messages_edited__edit.json") == MessageEdited(
        provider_message_id="A5561E44C2A63682E4295B52F484C14E",
        chat_id=None,
        text="Oi! Meu pedido #1042 ainda não chegou 😕",
        timestamp=datetime(2025, 11, 23, 12, 16, 0, 123000, tzinfo=UTC),
    )


def test_parse_webhook_messages_edited_numeric_type_and_long_timestamp():
    edited = parse_one("messages_edited__edit_numeric_type.json")

    assert edited == MessageEdited(
        provider_message_id="3EB0AA11BB22CC33DD44EE",
        chat_id=None,
        text="Esse aqui, o de anteontem",
        timestamp=datetime(2025, 11, 23, 12, 34, 59, 123000, tzinfo=UTC),
    )


def test_parse_webhook_messages_edited_revoke_is_a_revoke():
    assert parse_one("messages_edited__revoke.json") == MessageRevoked(
        provider_message_id="3A7788990011223344AA", chat_id=None
    )


def test_parse_webhook_messages_edited_other_protocol_messages_are_ignored():
    assert parse("messages_edited__ephemeral_setting.json") == []


def test_parse_webhook_messages_delete_key_2_3_6():
    assert parse_one("messages_delete__key_2_3_6.json") == MessageRevoked(
        provider_message_id="3A1010101010101010AA", chat_id=MARIA_JID
    )


def test_parse_webhook_messages_delete_key_with_status_2_3_7():
    assert parse_one("messages_delete__key_with_status_2_3_7.json") == MessageRevoked(
        provider_message_id="3A6E1F0B9C2D4E5F6A7B", chat_id=GROUP_JID
    )


def test_parse_webhook_messages_delete_stored_row_uses_the_whatsapp_id():
    revoked = parse_one("messages_delete__stored_row.json")

    assert revoked.provider_message_id == "3EB0C767D097B7C7C030A1"
    assert revoked.chat_id == MARIA_JID


# ================================================================================================
# Webhooks: connection, QR, contacts, presence
# ================================================================================================


def test_parse_webhook_connection_open():
    assert parse_one("connection_update__open.json") == ConnectionUpdate(
        connection=ConnectionInfo(
            state=ConnectionState.CONNECTED,
            raw_state="open",
            phone="+5511900000000",
            profile_name="Acme Support",
            profile_picture_url=load("connection_update__open.json")["data"]["profilePictureUrl"],
            reason_code=200,
        )
    )


def test_parse_webhook_connection_connecting():
    assert parse_one("connection_update__connecting.json").connection == ConnectionInfo(
        state=ConnectionState.CONNECTING, raw_state="connecting", reason_code=200
    )


def test_parse_webhook_connection_close_logged_out_keeps_reason_401():
    assert parse_one("connection_update__close_logged_out.json").connection == ConnectionInfo(
        state=ConnectionState.DISCONNECTED, raw_state="close", reason_code=401
    )


def test_parse_webhook_connection_refused_after_qr_limit_is_error():
    assert parse_one("connection_update__refused_qr_limit.json").connection == ConnectionInfo(
        state=ConnectionState.ERROR, raw_state="refused", reason_code=428
    )


def test_parse_webhook_logout_with_null_data_is_disconnected():
    assert parse_one("logout_instance__data_null.json") == ConnectionUpdate(
        connection=ConnectionInfo(state=ConnectionState.DISCONNECTED, raw_state="logout")
    )


def test_parse_webhook_remove_with_null_data_is_disconnected():
    assert parse_one("remove_instance__data_null.json").connection.state == ConnectionState.DISCONNECTED


def test_parse_webhook_qrcode_updated():
    data = load("qrcode_updated__qr.json")["data"]["qrcode"]

    assert parse_one("qrcode_updated__qr.json") == QRCodeUpdate(
        qr=QRCode(code=data["code"], image=data["base64"], pairing_code=None)
    )


def test_parse_webhook_qrcode_updated_with_pairing_code():
    assert parse_one("qrcode_updated__pairing_code.json").qr.pairing_code == "WZYEH1YY"


def test_parse_webhook_qrcode_limit_reached_has_no_qr_and_a_portuguese_message():
    with translation.override("pt-br"):
        update = parse_one("qrcode_updated__limit_reached.json")

    assert update.qr is None
    assert update.message == "O QR code expirou vezes demais; inicie a conexão novamente"


def test_parse_webhook_contacts_upsert_array():
    assert parse("contacts_upsert__batch.json") == [
        ContactUpdate(chat_id=MARIA_JID, phone="+5511900000001", name="Maria Silva"),
        ContactUpdate(chat_id="5511900000002@s.whatsapp.net", phone="+5511900000002", name="João Pereira"),
        # The push name falls back to the number: no name then.
        ContactUpdate(chat_id="5511900000003@s.whatsapp.net", phone="+5511900000003", name=None),
    ]


def test_parse_webhook_contacts_upsert_single_object():
    assert parse("contacts_upsert__single.json") == [
        ContactUpdate(
            chat_id=MARIA_JID,
            phone="+5511900000001",
            name="Maria Silva",
            picture_url=load("contacts_upsert__single.json")["data"]["profilePicUrl"],
        )
    ]


def test_parse_webhook_contacts_update_array_with_lid_and_group():
    assert parse("contacts_update__array_with_pictures.json") == [
        ContactUpdate(
            chat_id=MARIA_JID,
            phone="+5511900000001",
            name="Maria Silva",
            picture_url="https://pps.whatsapp.net/v/t61.24694-24/maria_n.jpg?oe=6930B2C3",
        ),
        ContactUpdate(chat_id="98765432109876@lid", phone=None, name="Carla Souza", user_id="98765432109876@lid"),
        ContactUpdate(chat_id=GROUP_JID, phone=None, name="Clientes VIP"),
    ]


def test_parse_webhook_contacts_update_object_with_empty_push_name():
    assert parse("contacts_update__object_from_me.json") == [
        ContactUpdate(chat_id="5511900000002@s.whatsapp.net", phone="+5511900000002", name=None)
    ]


def test_parse_webhook_presence_update():
    assert parse("presence_update__composing.json") == [PresenceUpdate(chat_id=MARIA_JID, presence=Presence.COMPOSING)]


def test_parse_webhook_group_presence_shows_the_liveliest_participant():
    assert parse("presence_update__group_several.json") == [
        PresenceUpdate(chat_id=GROUP_JID, presence=Presence.RECORDING)
    ]


# ================================================================================================
# Webhooks: robustness and fixture coverage
# ================================================================================================

ODD_VALUES = [None, "", "x", 0, -1, 1.5, True, [], {}, [1, "a"], {"a": {"b": None}}, {"low": "x", "high": None}]


def _paths(node, path=()):
    """Every path into a JSON tree, skipping the inside of byte index objects."""
    if isinstance(node, dict):
        if node and all(isinstance(key, str) and key.isdigit() for key in node):
            return
        for key, value in node.items():
            yield (*path, key)
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*path, index)
            yield from _paths(value, (*path, index))


def _webhook_fixtures() -> list[str]:
    return sorted(path.name for path in PAYLOADS.glob("*.json"))


@pytest.mark.parametrize("name", _webhook_fixtures())
def test_parse_webhook_never_raises_on_odd_values(name):
    original = load(name)
    event_types = (
        InboundMessage,
        MessageEdited,
        MessageRevoked,
        StatusUpdate,
        ConnectionUpdate,
        QRCodeUpdate,
        ContactUpdate,
        PresenceUpdate,
    )
    for path in [("data",), *(("data", *rest) for rest in _paths(original["data"]))]:
        for value in [*ODD_VALUES, KeyError]:
            payload = copy.deepcopy(original)
            parent = payload
            for step in path[:-1]:
                parent = parent[step]
            if value is KeyError:
                parent.pop(path[-1])
            else:
                parent[path[-1]] = value
            events = EvolutionProvider.parse_webhook(payload)
            assert isinstance(events, list)
            assert all(isinstance(event, event_types) for event in events), (path, value, events)


def test_payload_fixtures_are_each_used_by_a_test():
    source = Path(__file__).read_text(encoding="utf-8")
    files = [path.relative_to(PAYLOADS).as_posix() for path in PAYLOADS.rglob("*.json")]

    assert files
    assert [name for name in files if f'"{name}"' not in source] == []


# ================================================================================================
# Protobuf value decoding
# ================================================================================================


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (226688, 226688),
        ("226688", 226688),
        ({"low": 262748, "high": 0, "unsigned": True}, 262748),
        ({"low": -1331108785, "high": 410, "unsigned": False}, 1763900449871),
        ({"low": -1, "high": -1, "unsigned": False}, -1),
        ({"low": -1, "high": 0, "unsigned": True}, 4294967295),
        ("12a", None),
        (True, None),
        (None, None),
    ],
)
def test_to_int_reads_every_int64_encoding(value, expected):
    assert to_int(value) == expected


@pytest.mark.parametrize(
    "value",
    ["AQID", {"0": 1, "1": 2, "2": 3}, {"type": "Buffer", "data": [1, 2, 3]}, [1, 2, 3]],
)
def test_to_bytes_reads_every_bytes_encoding(value):
    assert to_bytes(value) == b"\x01\x02\x03"


def test_normalise_turns_index_objects_and_longs_into_the_compact_form():
    assert normalise(
        {"a": {"0": 1, "1": 2}, "b": {"low": 5, "high": 0, "unsigned": True}, "c": [{"0": 255}], "d": "x"}
    ) == {
        "a": "AQI=",
        "b": 5,
        "c": ["/w=="],
        "d": "x",
    }
