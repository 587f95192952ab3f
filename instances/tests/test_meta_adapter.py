"""The Meta Cloud API adapter: credentials, Graph calls (HTTP stubbed), error mapping, webhooks."""

import json
import pathlib
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
import urllib3
from django.utils import translation

from instances.providers.base import CredentialsError
from instances.providers.exceptions import (
    InvalidWebhookPayload,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnsupported,
)
from instances.providers.meta import MetaProvider
from instances.providers.meta.client import map_graph_error
from instances.providers.meta.signature import sign, verify_challenge, verify_signature, verify_token_for
from instances.providers.registry import adapter_class
from instances.providers.types import (
    ConnectionState,
    DeliveryStatus,
    InboundMessage,
    MediaInput,
    MediaRef,
    MessageEdited,
    MessageKind,
    MessageRevoked,
    Presence,
    ProviderInstance,
    StatusUpdate,
)

PAYLOADS = pathlib.Path(__file__).parent / "payloads" / "meta"
BASE = "https://graph.test/v23.0"
TOKEN = "EAAGtest-token"
PHONE_ID = "106540352242922"
WABA_ID = "102290129340398"
WEBHOOK_URL = "https://elsehub.test/webhooks/meta/7"
MESSAGES_URL = f"{BASE}/{PHONE_ID}/messages"
SEND_OK = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "5511900000001", "wa_id": "5511900000001"}],
    "messages": [{"id": "wamid.SENT.1", "message_status": "accepted"}],
}
NUMBER = {
    "id": PHONE_ID,
    "display_phone_number": "+1 555-078-3881",
    "verified_name": "Loja Exemplo",
    "quality_rating": "GREEN",
}
META_TEXT_SIGNATURE = "sha256=3b204a5527c586e8bbdd1303f2472bff642825db566176fdc425fb54eb00127d"


@pytest.fixture(autouse=True)
def graph_settings(settings):
    settings.META_GRAPH_API_URL = BASE
    settings.PROVIDER_RETRY_BACKOFF = 0
    settings.PROVIDER_MAX_ATTEMPTS = 3
    settings.PROVIDER_RETRY_MAX_WAIT = 10.0


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def make_provider(webhook_url: str = WEBHOOK_URL, **credentials) -> MetaProvider:
    return MetaProvider(
        ProviderInstance(
            id="7",
            name="loja",
            phone="+15550783881",
            credentials={"wabaId": WABA_ID, "phoneId": PHONE_ID, "accessToken": TOKEN, **credentials},
            webhook_url=webhook_url,
            webhook_secret="instance-webhook-secret",
        )
    )


def graph_error(code: int, message: str = "error", *, subcode: int | None = None, details: str | None = None) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


def assert_call(call, method: str, path: str, *, query: dict | None = None, body: dict | None = None) -> None:
    request = call.request
    parts = urlsplit(request.url)
    assert request.method == method
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/{path}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    if query is not None:
        assert dict(parse_qsl(parts.query)) == query
    if body is not None:
        assert json.loads(request.body) == body


def sent_body(call) -> dict:
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    return json.loads(call.request.body)


def load(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_bytes())


def parse(name: str) -> list:
    return MetaProvider.parse_webhook(load(name))


def fake_response(status: int, body=None, *, headers: dict | None = None, raw: bytes | None = None):
    response = requests.Response()
    response.status_code = status
    response._content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    response.headers.update(headers or {})
    return response


# ------------------------------------------------------------------------------------------------
# Signature
# ------------------------------------------------------------------------------------------------


def test_verify_signature_accepts_meta_test_vector():
    raw = (PAYLOADS / "messages__text.json").read_bytes()

    assert verify_signature(raw, META_TEXT_SIGNATURE, "test-app-secret") is True


def test_sign_matches_meta_test_vector():
    raw = (PAYLOADS / "messages__text.json").read_bytes()

    assert sign(raw, "test-app-secret") == META_TEXT_SIGNATURE


def test_verify_signature_rejects_reserialised_body():
    raw = (PAYLOADS / "messages__text.json").read_bytes()
    reformatted = json.dumps(json.loads(raw)).encode()

    assert verify_signature(reformatted, META_TEXT_SIGNATURE, "test-app-secret") is False


def test_verify_signature_rejects_wrong_secret():
    raw = (PAYLOADS / "messages__text.json").read_bytes()

    assert verify_signature(raw, META_TEXT_SIGNATURE, "another-secret") is False


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=3b204a5527c586e8bbdd1303f2472bff642825db566176fdc425fb54eb00127d",
        "3b204a5527c586e8bbdd1303f2472bff642825db566176fdc425fb54eb00127d",
        "sha256=not-hex-at-all",
    ],
)
def test_verify_signature_rejects_missing_or_malformed_header(header):
    raw = (PAYLOADS / "messages__text.json").read_bytes()

    assert verify_signature(raw, header, "test-app-secret") is False


def test_verify_signature_rejects_empty_secret():
    raw = b"{}"

    assert verify_signature(raw, sign(raw, ""), "") is False


def test_verify_challenge_echoes_challenge_for_matching_token():
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}

    assert verify_challenge(params, "tok") == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
    ],
)
def test_verify_challenge_refuses_wrong_mode_or_token(params):
    assert verify_challenge(params, "tok") is None


def test_verify_token_for_prefers_credential_then_instance_secret():
    assert verify_token_for({"verifyToken": "from-credentials"}, "instance-secret") == "from-credentials"
    assert verify_token_for({}, "instance-secret") == "instance-secret"


# ------------------------------------------------------------------------------------------------
# Credentials and declaration
# ------------------------------------------------------------------------------------------------


def test_provider_declaration_matches_meta():
    assert adapter_class("OFFICIAL_META") is MetaProvider
    assert MetaProvider.key == "OFFICIAL_META"
    assert MetaProvider.supports_qr is False
    assert MetaProvider.credential_fields == {
        "wabaId": (True, False),
        "phoneId": (True, False),
        "accessToken": (True, True),
        "appSecret": (False, True),
        "verifyToken": (False, True),
    }


def test_clean_credentials_normalises_valid_values():
    cleaned = MetaProvider.clean_credentials(
        {
            "wabaId": 102290129340398,
            "phoneId": " 106540352242922 ",
            "accessToken": " EAAG123 ",
            "appSecret": "",
            "verifyToken": "my verify",
            "unknown": "dropped",
        }
    )

    assert cleaned == {
        "wabaId": "102290129340398",
        "phoneId": "106540352242922",
        "accessToken": "EAAG123",
        "verifyToken": "my verify",
    }


def test_clean_credentials_names_each_bad_field_in_portuguese():
    with translation.override("pt-br"), pytest.raises(CredentialsError) as caught:
        MetaProvider.clean_credentials({"wabaId": "12a", "phoneId": "", "accessToken": None, "appSecret": 5})

    messages = caught.value.messages
    assert messages == [
        "wabaId deve conter apenas dígitos",
        "phoneId é obrigatório",
        "accessToken é obrigatório",
        "appSecret deve ser um texto",
    ]


def test_clean_credentials_rejects_token_with_spaces():
    with translation.override("pt-br"), pytest.raises(CredentialsError) as caught:
        MetaProvider.clean_credentials({"wabaId": "1", "phoneId": "2", "accessToken": "EAAG 123"})

    assert caught.value.messages == ["accessToken não pode conter espaços"]


def test_clean_credentials_rejects_non_object():
    with pytest.raises(CredentialsError):
        MetaProvider.clean_credentials(["wabaId"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Lifecycle calls
# ------------------------------------------------------------------------------------------------


def test_create_remote_verifies_number_and_configures_webhook(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(f"{BASE}/{WABA_ID}/phone_numbers", json={"data": [{"id": "999"}, {"id": PHONE_ID}]})
    http.post(f"{BASE}/{WABA_ID}/subscribed_apps", json={"success": True})
    http.get(
        f"{BASE}/{WABA_ID}/subscribed_apps",
        json={
            "data": [
                {"whatsapp_business_api_data": {"id": "1", "name": "Elsehub"}, "override_callback_uri": WEBHOOK_URL}
            ]
        },
    )

    created = make_provider().create_remote()

    assert [call.request.method for call in http.calls] == ["GET", "GET", "POST", "GET"]
    assert_call(
        http.calls[0],
        "GET",
        PHONE_ID,
        query={"fields": "id,display_phone_number,verified_name,quality_rating"},
    )
    assert_call(http.calls[1], "GET", f"{WABA_ID}/phone_numbers")
    assert_call(
        http.calls[2],
        "POST",
        f"{WABA_ID}/subscribed_apps",
        body={"override_callback_uri": WEBHOOK_URL, "verify_token": "instance-webhook-secret"},
    )
    assert_call(http.calls[3], "GET", f"{WABA_ID}/subscribed_apps")
    assert created.qr is None
    assert created.connection.state == ConnectionState.CONNECTED
    assert created.connection.phone == "+15550783881"
    assert created.connection.profile_name == "Loja Exemplo"
    assert created.connection.raw_state == "GREEN"


def test_create_remote_registers_verify_token_from_credentials(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(f"{BASE}/{WABA_ID}/phone_numbers", json={"data": [{"id": PHONE_ID}]})
    http.post(f"{BASE}/{WABA_ID}/subscribed_apps", json={"success": True})
    http.get(f"{BASE}/{WABA_ID}/subscribed_apps", json={"data": [{"override_callback_uri": WEBHOOK_URL}]})

    make_provider(verifyToken="credential-verify-token").create_remote()

    assert sent_body(http.calls[2]) == {"override_callback_uri": WEBHOOK_URL, "verify_token": "credential-verify-token"}


def test_create_remote_follows_phone_number_paging(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(
        f"{BASE}/{WABA_ID}/phone_numbers",
        json={"data": [{"id": "1"}], "paging": {"next": f"{BASE}/{WABA_ID}/phone_numbers?after=abc"}},
    )
    http.get(f"{BASE}/{WABA_ID}/phone_numbers", json={"data": [{"id": PHONE_ID}]})
    http.post(f"{BASE}/{WABA_ID}/subscribed_apps", json={"success": True})
    http.get(f"{BASE}/{WABA_ID}/subscribed_apps", json={"data": []})

    created = make_provider().create_remote()

    assert created.connection.state == ConnectionState.CONNECTED
    assert_call(http.calls[2], "GET", f"{WABA_ID}/phone_numbers", query={"after": "abc"})


def test_create_remote_does_not_follow_paging_to_another_host(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(
        f"{BASE}/{WABA_ID}/phone_numbers",
        json={"data": [{"id": "1"}], "paging": {"next": "https://evil.test/steal?after=abc"}},
    )

    with pytest.raises(ProviderRejected):
        make_provider().create_remote()

    assert len(http.calls) == 2


def test_create_remote_wrong_token_raises_auth_error(http):
    http.get(
        f"{BASE}/{PHONE_ID}",
        status=401,
        json=graph_error(190, "Error validating access token: Session has expired", subcode=463),
    )

    with pytest.raises(ProviderAuthError) as caught:
        make_provider().create_remote()

    assert caught.value.provider_code == "190"
    assert caught.value.http_status == 401
    assert "Session has expired" in caught.value.details
    assert len(http.calls) == 1


def test_create_remote_phone_not_in_waba_raises_rejected(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(f"{BASE}/{WABA_ID}/phone_numbers", json={"data": [{"id": "111"}, {"id": "222"}]})

    with translation.override("pt-br"), pytest.raises(ProviderRejected) as caught:
        make_provider().create_remote()

    message = str(caught.value.message)
    assert PHONE_ID in message and WABA_ID in message
    assert "não pertence" in message
    assert len(http.calls) == 2  # the webhook is not touched


def test_create_remote_unknown_phone_id_raises_rejected_naming_field(http):
    http.get(
        f"{BASE}/{PHONE_ID}",
        status=400,
        json=graph_error(
            100,
            f"Unsupported get request. Object with ID '{PHONE_ID}' does not exist, cannot be loaded due to "
            "missing permissions, or does not support this operation.",
            subcode=33,
        ),
    )

    with translation.override("pt-br"), pytest.raises(ProviderRejected) as caught:
        make_provider().create_remote()

    assert "phoneId" in str(caught.value.message)
    assert PHONE_ID in str(caught.value.message)
    assert caught.value.provider_code == "100"
    assert len(http.calls) == 1


def test_create_remote_unknown_waba_raises_rejected_naming_field(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(
        f"{BASE}/{WABA_ID}/phone_numbers",
        status=400,
        json=graph_error(100, "Unsupported get request. Object with ID does not exist", subcode=33),
    )

    with translation.override("pt-br"), pytest.raises(ProviderRejected) as caught:
        make_provider().create_remote()

    assert "wabaId" in str(caught.value.message)


def test_configure_webhook_without_url_only_subscribes_the_app(http):
    http.post(f"{BASE}/{WABA_ID}/subscribed_apps", json={"success": True})
    http.get(f"{BASE}/{WABA_ID}/subscribed_apps", json={"data": [{"whatsapp_business_api_data": {"id": "1"}}]})

    info = make_provider(webhook_url="").configure_webhook()

    assert sent_body(http.calls[0]) == {}
    assert info.enabled is True
    assert info.url is None


def test_connection_state_connected_with_quality(http):
    http.get(f"{BASE}/{PHONE_ID}", json={**NUMBER, "quality_rating": "YELLOW"})

    info = make_provider().connection_state()

    assert_call(
        http.calls[0], "GET", PHONE_ID, query={"fields": "id,display_phone_number,verified_name,quality_rating"}
    )
    assert info.state == ConnectionState.CONNECTED
    assert info.raw_state == "YELLOW"
    assert info.phone == "+15550783881"
    assert info.profile_name == "Loja Exemplo"


def test_connection_state_expired_token_raises_auth_error(http):
    http.get(f"{BASE}/{PHONE_ID}", status=401, json=graph_error(190, "Error validating access token"))

    with pytest.raises(ProviderAuthError):
        make_provider().connection_state()


def test_get_profile_reads_business_profile_and_number(http):
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)
    http.get(
        f"{BASE}/{PHONE_ID}/whatsapp_business_profile",
        json={
            "data": [
                {
                    "about": "Atendimento 8h-18h",
                    "address": "Av. Paulista, 1000",
                    "description": "Loja de roupas",
                    "email": "contato@loja.test",
                    "profile_picture_url": "https://pps.whatsapp.net/p.jpg",
                    "websites": ["https://loja.test"],
                    "vertical": "RETAIL",
                    "messaging_product": "whatsapp",
                }
            ]
        },
    )

    profile = make_provider().get_profile()

    assert_call(
        http.calls[1],
        "GET",
        f"{PHONE_ID}/whatsapp_business_profile",
        query={"fields": "about,address,description,email,profile_picture_url,websites,vertical"},
    )
    assert profile.phone == "+15550783881"
    assert profile.name == "Loja Exemplo"
    assert profile.about == "Atendimento 8h-18h"
    assert profile.picture_url == "https://pps.whatsapp.net/p.jpg"
    assert profile.is_business is True
    assert profile.extra == {
        "address": "Av. Paulista, 1000",
        "description": "Loja de roupas",
        "email": "contato@loja.test",
        "vertical": "RETAIL",
        "websites": ["https://loja.test"],
        "quality_rating": "GREEN",
    }


def test_get_webhook_reads_override_uri(http):
    http.get(
        f"{BASE}/{WABA_ID}/subscribed_apps",
        json={"data": [{"whatsapp_business_api_data": {"id": "1"}, "override_callback_uri": WEBHOOK_URL}]},
    )

    info = make_provider().get_webhook()

    assert_call(http.calls[0], "GET", f"{WABA_ID}/subscribed_apps")
    assert info.url == WEBHOOK_URL
    assert info.enabled is True


def test_get_webhook_without_subscription_is_disabled(http):
    http.get(f"{BASE}/{WABA_ID}/subscribed_apps", json={"data": []})

    info = make_provider().get_webhook()

    assert info.url is None
    assert info.enabled is False


@pytest.mark.parametrize(
    "operation",
    [
        lambda p: p.connect(),
        lambda p: p.logout(),
        lambda p: p.restart(),
        lambda p: p.delete_remote(),
        lambda p: p.list_contacts(),
        lambda p: p.list_chats(),
        lambda p: p.list_messages(chat_id="5511900000001"),
        lambda p: p.list_remote_instances(),
        lambda p: p.archive_chat(chat_id="5511900000001", archive=True),
        lambda p: p.send_presence(chat_id="5511900000001", presence=Presence.COMPOSING),
    ],
    ids=[
        "connect",
        "logout",
        "restart",
        "delete_remote",
        "list_contacts",
        "list_chats",
        "list_messages",
        "list_remote_instances",
        "archive_chat",
        "send_presence",
    ],
)
def test_unsupported_operations_raise_without_calling(http, operation):
    with pytest.raises(ProviderUnsupported):
        operation(make_provider())

    assert len(http.calls) == 0


# ------------------------------------------------------------------------------------------------
# Sending
# ------------------------------------------------------------------------------------------------


def test_send_text_posts_text_with_quote(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    sent = make_provider().send_text(to="+5511900000001", text="Olá Maria!", quoted_provider_id="wamid.IN.1")

    assert_call(
        http.calls[0],
        "POST",
        f"{PHONE_ID}/messages",
        body={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511900000001",
            "context": {"message_id": "wamid.IN.1"},
            "type": "text",
            "text": {"body": "Olá Maria!", "preview_url": False},
        },
    )
    assert sent.provider_message_id == "wamid.SENT.1"
    assert sent.status == DeliveryStatus.SENT


def test_send_text_without_quote_has_no_context(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_text(to="5511900000001", text="Oi")

    assert "context" not in sent_body(http.calls[0])


def test_send_text_normalises_formatted_phone(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_text(to="+55 (11) 90000-0001", text="Oi")

    assert sent_body(http.calls[0])["to"] == "5511900000001"


def test_send_text_to_business_scoped_user_id_uses_recipient(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_text(to="BR.13491208655302741918", text="Oi")

    body = sent_body(http.calls[0])
    assert body["recipient"] == "BR.13491208655302741918"
    assert "to" not in body


def test_send_text_over_4096_characters_rejected_before_calling(http):
    with pytest.raises(ProviderRejected):
        make_provider().send_text(to="5511900000001", text="a" * 4097)

    assert len(http.calls) == 0


def test_send_text_of_exactly_4096_characters_is_sent(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_text(to="5511900000001", text="a" * 4096)

    assert len(sent_body(http.calls[0])["text"]["body"]) == 4096


@pytest.mark.parametrize("to", ["", "maria", "5511900000001@s.whatsapp.net"])
def test_send_text_invalid_recipient_rejected_before_calling(http, to):
    with pytest.raises(ProviderRejected):
        make_provider().send_text(to=to, text="Oi")

    assert len(http.calls) == 0


def test_send_media_image_link_with_caption(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    sent = make_provider().send_media(
        to="5511900000001",
        kind="image",
        media=MediaInput(url="https://files.example.com/label.jpg"),
        caption="Etiqueta do pedido",
    )

    assert sent_body(http.calls[0]) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511900000001",
        "type": "image",
        "image": {"link": "https://files.example.com/label.jpg", "caption": "Etiqueta do pedido"},
    }
    assert sent.provider_message_id == "wamid.SENT.1"


def test_send_media_document_sets_filename_caption_and_quote(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_media(
        to="5511900000001",
        kind="document",
        media=MediaInput(url="https://files.example.com/nf.pdf", file_name="NF-1042.pdf"),
        caption="Sua nota fiscal",
        quoted_provider_id="wamid.IN.2",
    )

    body = sent_body(http.calls[0])
    assert body["document"] == {
        "link": "https://files.example.com/nf.pdf",
        "caption": "Sua nota fiscal",
        "filename": "NF-1042.pdf",
    }
    assert body["context"] == {"message_id": "wamid.IN.2"}


def test_send_media_audio_has_no_caption(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_media(
        to="5511900000001", kind="audio", media=MediaInput(url="https://files.example.com/a.mp3"), caption="ignored"
    )

    assert sent_body(http.calls[0])["audio"] == {"link": "https://files.example.com/a.mp3"}


def test_send_media_bytes_uploads_then_sends_media_id(http):
    http.post(f"{BASE}/{PHONE_ID}/media", json={"id": "4490709327384033"})
    http.post(MESSAGES_URL, json=SEND_OK)

    sent = make_provider().send_media(
        to="5511900000001",
        kind="image",
        media=MediaInput(content=b"\x89PNG-bytes", mime_type="image/png", file_name="label.png"),
        caption="Etiqueta",
    )

    upload = http.calls[0].request
    assert upload.method == "POST"
    assert upload.url == f"{BASE}/{PHONE_ID}/media"
    assert upload.headers["Authorization"] == f"Bearer {TOKEN}"
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="messaging_product"\r\n\r\nwhatsapp\r\n' in upload.body
    assert b'name="type"\r\n\r\nimage/png\r\n' in upload.body
    assert b'name="file"; filename="label.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG-bytes\r\n' in upload.body
    assert sent_body(http.calls[1])["image"] == {"id": "4490709327384033", "caption": "Etiqueta"}
    assert sent.provider_message_id == "wamid.SENT.1"


def test_send_media_upload_failure_does_not_send(http):
    http.post(f"{BASE}/{PHONE_ID}/media", status=400, json=graph_error(131053, "Media upload error"))

    with pytest.raises(ProviderRejected) as caught:
        make_provider().send_media(
            to="5511900000001", kind="video", media=MediaInput(content=b"mp4", mime_type="video/mp4")
        )

    assert caught.value.provider_code == "131053"
    assert len(http.calls) == 1


def test_send_media_bytes_without_mime_type_rejected_before_calling(http):
    with pytest.raises(ProviderRejected):
        make_provider().send_media(to="5511900000001", kind="document", media=MediaInput(content=b"?"))

    assert len(http.calls) == 0


@pytest.mark.parametrize(
    ("kind", "media"),
    [("gif", MediaInput(url="https://files.example.com/x.gif")), ("image", MediaInput())],
    ids=["unknown_kind", "no_url_nor_content"],
)
def test_send_media_invalid_input_rejected_before_calling(http, kind, media):
    with pytest.raises(ProviderRejected):
        make_provider().send_media(to="5511900000001", kind=kind, media=media)

    assert len(http.calls) == 0


def test_send_audio_voice_note_uploads_as_ogg(http):
    http.post(f"{BASE}/{PHONE_ID}/media", json={"id": "777"})
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_audio(to="5511900000001", media=MediaInput(content=b"OggS-opus"))

    assert b'name="type"\r\n\r\naudio/ogg\r\n' in http.calls[0].request.body
    assert b'filename="file.oga"' in http.calls[0].request.body or b'filename="file.ogg"' in http.calls[0].request.body
    body = sent_body(http.calls[1])
    assert body["type"] == "audio"
    assert body["audio"] == {"id": "777"}


def test_send_sticker_link(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_sticker(to="5511900000001", media=MediaInput(url="https://files.example.com/s.webp"))

    body = sent_body(http.calls[0])
    assert body["type"] == "sticker"
    assert body["sticker"] == {"link": "https://files.example.com/s.webp"}


def test_send_template_passes_language_and_components(http):
    http.post(MESSAGES_URL, json=SEND_OK)
    components = [
        {"type": "body", "parameters": ({"type": "text", "text": "João"}, {"type": "text", "text": "A-1042"})},
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "TRACK_A-1042"}],
        },
    ]

    make_provider().send_template(to="5511900000002", name="order_shipped", language="pt_BR", components=components)

    assert sent_body(http.calls[0]) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511900000002",
        "type": "template",
        "template": {
            "name": "order_shipped",
            "language": {"code": "pt_BR"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "João"}, {"type": "text", "text": "A-1042"}]},
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": "0",
                    "parameters": [{"type": "payload", "payload": "TRACK_A-1042"}],
                },
            ],
        },
    }


def test_send_template_without_components_omits_them(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_template(to="5511900000002", name="hello_world", language="en_US")

    assert sent_body(http.calls[0])["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_send_template_error_names_template_and_problem(http):
    http.post(
        MESSAGES_URL,
        status=404,
        json=graph_error(
            132001,
            "(#132001) Template name does not exist in the translation",
            details="template name (order_shiped) does not exist in pt_BR",
        ),
    )

    with translation.override("pt-br"), pytest.raises(ProviderRejected) as caught:
        make_provider().send_template(to="5511900000002", name="order_shiped", language="pt_BR")

    message = str(caught.value.message)
    assert "order_shiped" in message
    assert "não existe neste idioma" in message
    assert caught.value.provider_code == "132001"
    assert "does not exist in pt_BR" in caught.value.details


def test_send_reaction_body(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    sent = make_provider().send_reaction(to="5511900000001", provider_message_id="wamid.IN.3", emoji="👍")

    body = sent_body(http.calls[0])
    assert body["type"] == "reaction"
    assert body["reaction"] == {"message_id": "wamid.IN.3", "emoji": "👍"}
    assert sent.provider_message_id == "wamid.SENT.1"


def test_send_reaction_empty_emoji_removes_reaction(http):
    http.post(MESSAGES_URL, json=SEND_OK)

    make_provider().send_reaction(to="5511900000001", provider_message_id="wamid.IN.3", emoji="", from_me=True)

    assert sent_body(http.calls[0])["reaction"] == {"message_id": "wamid.IN.3", "emoji": ""}


def test_send_answer_without_message_id_raises_bad_response(http):
    http.post(MESSAGES_URL, json={"messaging_product": "whatsapp", "messages": []})

    with pytest.raises(ProviderBadResponse):
        make_provider().send_text(to="5511900000001", text="Oi")


def test_mark_read_posts_last_message_id(http):
    http.post(MESSAGES_URL, json={"success": True})

    make_provider().mark_read(chat_id="5511900000001", provider_message_ids=["wamid.A", "wamid.B", "wamid.C"])

    assert_call(
        http.calls[0],
        "POST",
        f"{PHONE_ID}/messages",
        body={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.C"},
    )


def test_mark_read_without_ids_makes_no_call(http):
    make_provider().mark_read(chat_id="5511900000001", provider_message_ids=[])

    assert len(http.calls) == 0


# ------------------------------------------------------------------------------------------------
# Media download
# ------------------------------------------------------------------------------------------------

LOOKASIDE = "https://lookaside.fbsbx.test/whatsapp_business/attachments/?mid=1037543291543636&ext=1763900600"


def test_download_media_asks_graph_then_fetches_with_bearer(http):
    http.get(
        f"{BASE}/1037543291543636",
        json={
            "messaging_product": "whatsapp",
            "url": LOOKASIDE,
            "mime_type": "image/jpeg",
            "sha256": "9111c7",
            "file_size": "10",
            "id": "1037543291543636",
        },
    )
    http.get(LOOKASIDE, body=b"JPEG-BYTES", content_type="application/octet-stream")
    ref = MediaRef(provider_media_id="1037543291543636", mime_type="image/jpeg", file_name="foto.jpg")

    file = make_provider().download_media(media=ref)

    assert_call(http.calls[0], "GET", "1037543291543636")
    assert http.calls[1].request.url == LOOKASIDE
    assert http.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert file.content == b"JPEG-BYTES"
    assert file.mime_type == "image/jpeg"
    assert file.file_name == "foto.jpg"


def test_download_media_never_sends_token_to_webhook_url(http):
    http.get(f"{BASE}/555", json={"url": LOOKASIDE, "mime_type": "audio/ogg"})
    http.get(LOOKASIDE, body=b"OGG")
    ref = MediaRef(provider_media_id="555", url="https://attacker.test/media?mid=555")

    file = make_provider().download_media(media=ref)

    assert [call.request.url.split("?")[0] for call in http.calls] == [f"{BASE}/555", LOOKASIDE.split("?")[0]]
    assert file.mime_type == "audio/ogg"


@pytest.mark.parametrize(
    "ref",
    [MediaRef(url="https://lookaside.fbsbx.test/x"), MediaRef(provider_media_id="../me/accounts")],
    ids=["no_id", "not_a_media_id"],
)
def test_download_media_without_valid_media_id_rejected(http, ref):
    with pytest.raises(ProviderRejected):
        make_provider().download_media(media=ref)

    assert len(http.calls) == 0


def test_download_media_expired_id_not_found(http):
    http.get(
        f"{BASE}/555",
        status=400,
        json=graph_error(100, "Unsupported get request. Object with ID '555' does not exist", subcode=33),
    )

    with pytest.raises(ProviderNotFound):
        make_provider().download_media(media=MediaRef(provider_media_id="555"))

    assert len(http.calls) == 1


# ------------------------------------------------------------------------------------------------
# Error mapping
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, graph_error(190, "Error validating access token"), ProviderAuthError),
        (401, None, ProviderAuthError),
        (400, graph_error(190, "Malformed access token"), ProviderAuthError),
        (429, graph_error(130429, "Rate limit hit"), ProviderRateLimited),
        (400, graph_error(131056, "(Business Account, Consumer Account) pair rate limit hit"), ProviderRateLimited),
        (400, graph_error(4, "Application request limit reached"), ProviderRateLimited),
        (400, graph_error(80007, "WABA rate limit"), ProviderRateLimited),
        (400, graph_error(131048, "Spam rate limit hit"), ProviderRateLimited),
        (429, None, ProviderRateLimited),
        (500, graph_error(131000, "Something went wrong"), ProviderUnavailable),
        (503, graph_error(131016, "Service unavailable"), ProviderUnavailable),
        (400, graph_error(131000, "Something went wrong"), ProviderUnavailable),
        (502, None, ProviderUnavailable),
        (500, None, ProviderUnavailable),
        (400, graph_error(100, "Invalid parameter"), ProviderRejected),
        (400, graph_error(131008, "Required parameter is missing"), ProviderRejected),
        (400, graph_error(131009, "Parameter value is not valid"), ProviderRejected),
        (
            400,
            graph_error(100, "Unsupported get request. Object with ID '1' does not exist", subcode=33),
            ProviderNotFound,
        ),
        (400, graph_error(100, "Unsupported post request.", subcode=33), ProviderNotFound),
        (400, graph_error(131047, "Re-engagement message"), ProviderRejected),
        (400, graph_error(131026, "Message undeliverable"), ProviderRejected),
        (400, graph_error(132000, "Number of parameters does not match"), ProviderRejected),
        (400, graph_error(132001, "Template name does not exist in the translation"), ProviderRejected),
        (400, graph_error(368, "Temporarily blocked for policies violations"), ProviderRejected),
        (400, graph_error(999999, "Something new"), ProviderRejected),
        (404, None, ProviderNotFound),
        (400, None, ProviderRejected),
    ],
)
def test_map_graph_error_classifies(status, body, expected):
    error = map_graph_error(fake_response(status, body))

    assert type(error) is expected
    assert error.http_status == status
    if body is not None:
        assert error.provider_code == str(body["error"]["code"])


def test_map_graph_error_keeps_code_message_and_details():
    body = json.loads(
        '{"error": {"message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",'
        ' "type": "OAuthException", "code": 131056, "error_data": {"messaging_product": "whatsapp",'
        ' "details": "Too many messages sent from the sender phone number to the same recipient phone number'
        ' in a short period of time."}, "error_subcode": 2494055, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}'
    )

    error = map_graph_error(fake_response(400, body, headers={"Retry-After": "6"}))

    assert isinstance(error, ProviderRateLimited)
    assert error.provider_code == "131056"
    assert error.retry_after == 6.0
    assert "pair rate limit hit" in error.details
    assert "Too many messages sent" in error.details


def test_map_graph_error_window_closed_explained_in_portuguese():
    with translation.override("pt-br"):
        error = map_graph_error(fake_response(400, graph_error(131047, "Re-engagement message")))

        assert "janela de 24 horas" in str(error.message)
    assert error.provider_code == "131047"


def test_map_graph_error_undeliverable_explained_in_portuguese():
    with translation.override("pt-br"):
        error = map_graph_error(fake_response(400, graph_error(131026, "Message undeliverable")))

        assert "número não pode receber mensagens" in str(error.message)


def test_map_graph_error_template_problem_named():
    with translation.override("pt-br"):
        error = map_graph_error(fake_response(400, graph_error(132000, "Number of parameters does not match")))

        assert "modelo" in str(error.message).lower()
        assert "parâmetros" in str(error.message)


def test_map_graph_error_non_json_body_is_rejected_with_status():
    error = map_graph_error(fake_response(400, raw=b"<html>Bad Request</html>"))

    assert isinstance(error, ProviderRejected)
    assert error.provider_code is None
    assert error.http_status == 400


# ------------------------------------------------------------------------------------------------
# Retries (through the shared client)
# ------------------------------------------------------------------------------------------------


def test_send_text_rate_limited_with_retry_after_is_retried_then_succeeds(http):
    http.post(MESSAGES_URL, status=429, json=graph_error(130429, "Rate limit hit"), headers={"Retry-After": "0"})
    http.post(MESSAGES_URL, json=SEND_OK)

    sent = make_provider().send_text(to="5511900000001", text="Oi")

    assert len(http.calls) == 2
    assert sent.provider_message_id == "wamid.SENT.1"


def test_send_text_rate_limited_with_long_retry_after_gives_up_at_once(http):
    http.post(MESSAGES_URL, status=429, json=graph_error(130429, "Rate limit hit"), headers={"Retry-After": "60"})

    with pytest.raises(ProviderRateLimited) as caught:
        make_provider().send_text(to="5511900000001", text="Oi")

    assert caught.value.retry_after == 60.0
    assert len(http.calls) == 1


def test_send_text_not_retried_after_server_error(http):
    http.post(MESSAGES_URL, status=500, json=graph_error(131000, "Something went wrong"))

    with pytest.raises(ProviderUnavailable):
        make_provider().send_text(to="5511900000001", text="Oi")

    assert len(http.calls) == 1


def test_send_text_read_timeout_raises_timeout_without_retry(http):
    http.post(MESSAGES_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ProviderTimeout):
        make_provider().send_text(to="5511900000001", text="Oi")

    assert len(http.calls) == 1


def test_get_retried_on_server_error_then_succeeds(http):
    http.get(f"{BASE}/{PHONE_ID}", status=500, json=graph_error(1, "An unknown error occurred"))
    http.get(f"{BASE}/{PHONE_ID}", json=NUMBER)

    info = make_provider().connection_state()

    assert info.state == ConnectionState.CONNECTED
    assert len(http.calls) == 2


def test_get_gives_up_after_max_attempts(http):
    http.get(f"{BASE}/{PHONE_ID}", status=503, json=graph_error(131016, "Service unavailable"))

    with pytest.raises(ProviderUnavailable):
        make_provider().connection_state()

    assert len(http.calls) == 3


def test_connection_refused_raises_connection_error(http):
    http.get(f"{BASE}/{PHONE_ID}", body=requests.ConnectionError("[Errno 111] Connection refused"))

    with pytest.raises(ProviderConnectionError):
        make_provider().connection_state()

    assert len(http.calls) == 3


def test_send_text_connection_closed_after_sending_raises_timeout_without_retry(http):
    lost = requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )
    http.post(MESSAGES_URL, body=lost)

    with pytest.raises(ProviderTimeout):
        make_provider().send_text(to="5511900000001", text="Oi")

    assert len(http.calls) == 1


def test_send_text_connection_refused_raises_connection_error(http):
    http.post(MESSAGES_URL, body=requests.ConnectionError("[Errno 111] Connection refused"))

    with pytest.raises(ProviderConnectionError):
        make_provider().send_text(to="5511900000001", text="Oi")


# ------------------------------------------------------------------------------------------------
# Webhook parsing: one test per fixture file
# ------------------------------------------------------------------------------------------------

MARIA_PHONE = "+5511900000001"


def only(events: list, cls=InboundMessage):
    assert len(events) == 1
    assert isinstance(events[0], cls)
    return events[0]


def test_parse_webhook_messages__text():
    message = only(parse("messages__text.json"))

    assert message.provider_message_id == "wamid.HBgNNTUxMTkwMDAwMDAwMRUCABIYFjNFQjBBNzcxNDQ5QjFGMEJGOUY2RkMA"
    assert message.kind == MessageKind.TEXT
    assert message.text == "Oi! Meu pedido ainda não chegou"
    assert message.chat_id == "5511900000001"
    assert message.phone == MARIA_PHONE
    assert message.contact_name == "Maria Silva"
    assert message.timestamp == datetime(2025, 11, 23, 12, 13, 20, tzinfo=UTC)
    assert message.from_me is False
    assert message.is_group is False
    assert message.quoted_provider_id is None
    assert message.forwarded is False
    assert message.referral is None
    assert message.raw_type == "text"


def test_parse_webhook_messages__image_with_caption_and_url():
    message = only(parse("messages__image_with_caption_and_url.json"))

    assert message.kind == MessageKind.IMAGE
    assert message.text == "Foto da caixa que chegou amassada"
    assert message.media == MediaRef(
        provider_media_id="1037543291543636",
        url="https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1037543291543636&source=webhook"
        "&ext=1763900600&hash=ARkz1Q9xYwV3bN7mL2pK8sD4fG6hJ0",
        mime_type="image/jpeg",
        sha256="kR3H7Z0m1yQ8eVv2o9XcL4bN6tW5sA1dF0gJ3hK2lPo=",
    )


def test_parse_webhook_messages__video_with_caption():
    message = only(parse("messages__video_with_caption.json"))

    assert message.kind == MessageKind.VIDEO
    assert message.text == "Vídeo do produto com defeito"
    assert message.media.provider_media_id == "1543219876543210"
    assert message.media.mime_type == "video/mp4"
    assert message.media.url is None


def test_parse_webhook_messages__audio_voice():
    message = only(parse("messages__audio_voice.json"))

    assert message.kind == MessageKind.AUDIO
    assert message.text is None
    assert message.media.voice is True
    assert message.media.mime_type == "audio/ogg; codecs=opus"
    assert message.media.provider_media_id == "2198765432109876"


def test_parse_webhook_messages__document():
    message = only(parse("messages__document.json"))

    assert message.kind == MessageKind.DOCUMENT
    assert message.text == "Segue o comprovante"
    assert message.media.file_name == "Comprovante-1042.pdf"
    assert message.media.mime_type == "application/pdf"
    assert message.media.sha256 == "grwfwe0ZPx0wAbdfbdeFUNItPZ0RylL8gGUvdt3YFqc="


def test_parse_webhook_messages__sticker():
    message = only(parse("messages__sticker.json"))

    assert message.kind == MessageKind.STICKER
    assert message.media.animated is False
    assert message.media.mime_type == "image/webp"
    assert message.media.provider_media_id == "987654321098765"


def test_parse_webhook_messages__location():
    message = only(parse("messages__location.json"))

    assert message.kind == MessageKind.LOCATION
    assert message.location.latitude == pytest.approx(-23.561414)
    assert message.location.longitude == pytest.approx(-46.655881)
    assert message.location.name == "MASP"
    assert message.location.address == "Av. Paulista, 1578 - Bela Vista, São Paulo - SP"
    assert message.location.url == "https://maps.google.com/?cid=1234567890123456789"


def test_parse_webhook_messages__reaction():
    message = only(parse("messages__reaction.json"))

    assert message.kind == MessageKind.REACTION
    assert message.reaction_to == "wamid.HBgNNTUxMTkwMDAwMDAwMRUCABEYEjI0NkFGNjE0RDhFRjQ2MkE5OQA="
    assert message.reaction_emoji == "👍"


def test_parse_webhook_messages__reaction_removed():
    events = parse("messages__reaction_removed.json")

    assert [(e.kind, e.reaction_to, e.reaction_emoji) for e in events] == [
        (MessageKind.REACTION, "wamid.OUT.1", ""),
        (MessageKind.REACTION, "wamid.OUT.2", ""),
    ]


def test_parse_webhook_messages__interactive_button_reply():
    message = only(parse("messages__interactive_button_reply.json"))

    assert message.kind == MessageKind.INTERACTIVE
    assert message.text == "Confirmar entrega"
    assert message.quoted_provider_id == "wamid.HBgNNTUxMTkwMDAwMDAwMRUCABEYEjI0NkFGNjE0RDhFRjQ2MkE5OQA="


def test_parse_webhook_messages__interactive_list_reply():
    message = only(parse("messages__interactive_list_reply.json"))

    assert message.kind == MessageKind.INTERACTIVE
    assert message.text == "Rastrear pedido"
    assert message.quoted_provider_id == "wamid.MENU.1"


def test_parse_webhook_messages__interactive_nfm_reply():
    message = only(parse("messages__interactive_nfm_reply.json"))

    assert message.kind == MessageKind.INTERACTIVE
    assert message.text == "Sent"
    assert message.quoted_provider_id == "wamid.FLOWMSG.1"


def test_parse_webhook_messages__button_template_quick_reply():
    message = only(parse("messages__button_template_quick_reply.json"))

    assert message.kind == MessageKind.INTERACTIVE
    assert message.text == "Rastrear"
    assert message.quoted_provider_id == "wamid.TEMPLATE.1"
    assert message.raw_type == "button"


def test_parse_webhook_messages__edit():
    edited = only(parse("messages__edit.json"), MessageEdited)

    assert edited.provider_message_id == "wamid.HBgNNTUxMTkwMDAwMDAwMRUCABIYFjNFQjBBNzcxNDQ5QjFGMEJGOUY2RkMA"
    assert edited.chat_id == "5511900000001"
    assert edited.text == "Oi! Meu pedido #1042 ainda não chegou"
    assert edited.timestamp == datetime(2025, 11, 23, 12, 27, 20, tzinfo=UTC)


def test_parse_webhook_messages__revoke():
    revoked = only(parse("messages__revoke.json"), MessageRevoked)

    assert revoked.provider_message_id == "wamid.HBgNNTUxMTkwMDAwMDAwMRUCABIYFjNFQjBBNzcxNDQ5QjFGMEJGOUY2RkMA"
    assert revoked.chat_id == "5511900000001"
    assert revoked.timestamp == datetime(2025, 11, 23, 12, 27, 30, tzinfo=UTC)


def test_parse_webhook_messages__unsupported_with_errors():
    message = only(parse("messages__unsupported_with_errors.json"))

    assert message.kind == MessageKind.UNSUPPORTED
    assert "poll" in message.unsupported_reason
    assert "131051" in message.unsupported_reason
    assert "Message type is currently not supported." in message.unsupported_reason
    assert message.raw_type == "unsupported"


def test_parse_webhook_messages__interactive_with_value_errors(caplog):
    message = only(parse("messages__interactive_with_value_errors.json"))

    assert message.kind == MessageKind.UNSUPPORTED
    assert message.unsupported_reason == "interactive without content"
    assert message.quoted_provider_id == "wamid.MENU.2"
    assert any(record.msg == "providers.meta.webhook.error" for record in caplog.records)


def test_parse_webhook_messages__bsuid_only_sender():
    message = only(parse("messages__bsuid_only_sender.json"))

    assert message.phone is None
    assert message.chat_id == message.user_id == "BR.13491208655302741918"
    assert message.contact_name == "Lia"
    assert message.text == "Oi, sou a Lia"


def test_parse_webhook_messages__referral_click_to_whatsapp():
    message = only(parse("messages__referral_click_to_whatsapp.json"))

    assert message.kind == MessageKind.TEXT
    assert message.referral == {
        "source_url": "https://fb.me/3cr4Wqqkk",
        "source_id": "120210000000000001",
        "source_type": "ad",
        "headline": "Frete grátis em novembro",
        "body": "Peça pelo WhatsApp",
        "media_type": "image",
        "image_url": "https://scontent.example/ad.jpg",
        "ctwa_clid": "ARAkxx1CTWAclid",
    }


def test_parse_webhook_messages__group_text():
    message = only(parse("messages__group_text.json"))

    assert message.is_group is True
    assert message.chat_id == "120363040000000001"
    assert message.phone is None
    assert message.contact_name is None
    assert message.participant_phone == "+5511900000002"
    assert message.participant_name == "João Souza"
    assert message.text == "Bom dia, grupo"


def test_parse_webhook_messages__contacts():
    message = only(parse("messages__contacts.json"))

    assert message.kind == MessageKind.CONTACTS
    assert [(c.name, c.phones) for c in message.contacts] == [
        ("Pedro Lima", ("+5511900000004", "+55 11 3000-0000")),
        ("Ana", ()),
    ]


def test_parse_webhook_messages__system_user_changed_number():
    message = only(parse("messages__system_user_changed_number.json"))

    assert message.kind == MessageKind.UNSUPPORTED
    assert message.unsupported_reason == "system user_changed_number"
    assert message.text == "Maria Silva changed from 5511900000001 to 5511900000009"
    assert message.chat_id == "5511900000001"
    assert message.contact_name is None


def test_parse_webhook_messages__order():
    message = only(parse("messages__order.json"))

    assert message.kind == MessageKind.UNSUPPORTED
    assert message.unsupported_reason == "order with 2 item(s)"
    assert message.text == "Pode entregar amanhã?"


def test_parse_webhook_messages__request_welcome():
    message = only(parse("messages__request_welcome.json"))

    assert message.kind == MessageKind.UNSUPPORTED
    assert message.unsupported_reason == "request_welcome"
    assert message.text is None


def test_parse_webhook_messages__text_frequently_forwarded():
    message = only(parse("messages__text_frequently_forwarded.json"))

    assert message.forwarded is True
    assert message.quoted_provider_id is None


def test_parse_webhook_batch__two_entries():
    events = parse("batch__two_entries.json")

    assert [(type(e).__name__, e.provider_message_id) for e in events] == [
        ("InboundMessage", "wamid.BATCH.M1"),
        ("InboundMessage", "wamid.BATCH.M2"),
        ("InboundMessage", "wamid.BATCH.M3"),
        ("StatusUpdate", "wamid.BATCH.S1"),
        ("StatusUpdate", "wamid.BATCH.S2"),
        ("InboundMessage", "wamid.BATCH.M4"),
        ("StatusUpdate", "wamid.BATCH.S3"),
    ]
    assert [e.contact_name for e in events if isinstance(e, InboundMessage)] == [
        "Maria Silva",
        "João Souza",
        "Maria Silva",
        "Carla Dias",
    ]
    assert events[1].kind == MessageKind.IMAGE
    assert [e.status for e in events if isinstance(e, StatusUpdate)] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.SENT,
    ]


def test_parse_webhook_statuses__sent():
    update = only(parse("statuses__sent.json"), StatusUpdate)

    assert update.provider_message_id == "wamid.HBgNNTUxMTkwMDAwMDAwMRUCABEYEjI0NkFGNjE0RDhFRjQ2MkE5OQA="
    assert update.status == DeliveryStatus.SENT
    assert update.timestamp == datetime(2025, 11, 23, 12, 15, tzinfo=UTC)
    assert update.recipient_phone == MARIA_PHONE
    assert update.chat_id == "5511900000001"
    assert update.pricing == {
        "billable": False,
        "pricing_model": "PMP",
        "category": "service",
        "type": "free_customer_service",
    }
    assert update.error_code is None


def test_parse_webhook_statuses__delivered():
    update = only(parse("statuses__delivered.json"), StatusUpdate)

    assert update.status == DeliveryStatus.DELIVERED
    assert update.pricing["category"] == "service"


def test_parse_webhook_statuses__read():
    update = only(parse("statuses__read.json"), StatusUpdate)

    assert update.status == DeliveryStatus.READ
    assert update.timestamp == datetime(2025, 11, 23, 12, 15, 40, tzinfo=UTC)


def test_parse_webhook_statuses__played():
    update = only(parse("statuses__played.json"), StatusUpdate)

    assert update.status == DeliveryStatus.PLAYED
    assert update.pricing is None


def test_parse_webhook_statuses__failed_131047():
    update = only(parse("statuses__failed_131047.json"), StatusUpdate)

    assert update.status == DeliveryStatus.FAILED
    assert update.error_code == "131047"
    assert update.error_message == (
        "Re-engagement message: Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    )
    assert update.recipient_phone == "+5511900000002"
    assert update.pricing is None


def test_parse_webhook_statuses__failed_131026():
    update = only(parse("statuses__failed_131026.json"), StatusUpdate)

    assert update.status == DeliveryStatus.FAILED
    assert update.error_code == "131026"
    assert update.error_message == "Message undeliverable: Message Undeliverable."


def test_parse_webhook_statuses__bsuid_recipient_read():
    update = only(parse("statuses__bsuid_recipient_read.json"), StatusUpdate)

    assert update.status == DeliveryStatus.READ
    assert update.recipient_phone is None
    assert update.chat_id == "BR.13491208655302741918"


def test_parse_webhook_account_update__ignored():
    assert parse("account_update__ignored.json") == []


def test_payload_fixtures_each_have_a_parsing_test():
    source = pathlib.Path(__file__).read_text(encoding="utf-8")
    names = sorted(path.name for path in PAYLOADS.glob("*.json"))

    assert names, "no Meta payload fixtures found"
    assert [name for name in names if f'"{name}"' not in source] == []


# ------------------------------------------------------------------------------------------------
# Webhook parsing: shapes and defensiveness
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "whatsapp",
        None,
        {},
        {"object": "whatsapp_business_account"},
        {"entry": []},
        {"object": 1, "entry": []},
        {"object": "whatsapp_business_account", "entry": {}},
    ],
)
def test_parse_webhook_rejects_body_without_object_and_entry(payload):
    with pytest.raises(InvalidWebhookPayload):
        MetaProvider.parse_webhook(payload)


def test_parse_webhook_other_object_is_ignored():
    assert MetaProvider.parse_webhook({"object": "page", "entry": [{"id": "1", "messaging": []}]}) == []


def test_parse_webhook_survives_odd_but_valid_shapes():
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            "not-an-object",
            {"id": "1"},
            {"id": "2", "changes": None},
            {"id": "3", "changes": [{"field": "messages"}, {"field": "messages", "value": None}, 7]},
            {
                "id": "4",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "contacts": "oops",
                            "messages": [
                                None,
                                {"type": "text", "from": "5511900000001"},  # no id: skipped
                                {"id": "wamid.X1", "from": "5511900000001", "type": "image"},  # media object missing
                                {
                                    "id": "wamid.X2",
                                    "from": "5511900000001",
                                    "timestamp": "soon",
                                    "type": "text",
                                    "text": "raw",
                                },
                                {
                                    "id": "wamid.X3",
                                    "from": "5511900000001",
                                    "timestamp": "1763900000",
                                    "type": "location",
                                    "location": {"latitude": "-23.5", "longitude": "-46.6"},
                                },
                                {
                                    "id": "wamid.X4",
                                    "from": "5511900000001",
                                    "timestamp": "1763900000",
                                    "type": "location",
                                    "location": {"latitude": None},
                                },
                                {
                                    "id": "wamid.X5",
                                    "from": "5511900000001",
                                    "timestamp": "1763900000",
                                    "type": "hologram",
                                },
                                {
                                    "id": "wamid.X6",
                                    "from": "5511900000001",
                                    "type": "reaction",
                                    "reaction": {"emoji": "👍"},
                                },
                                {"id": "wamid.X7", "from": "5511900000001", "type": "edit", "edit": {}},
                                {
                                    "id": "wamid.X8",
                                    "from": "5511900000001",
                                    "type": "contacts",
                                    "contacts": [{"phones": "x"}],
                                },
                            ],
                            "statuses": [
                                {"id": "wamid.S1", "status": "deleted", "timestamp": "1"},  # unknown status: skipped
                                {"status": "read"},  # no id: skipped
                                {"id": "wamid.S2", "status": "FAILED", "errors": ["x", {"code": 131049}]},
                            ],
                            "errors": "not-a-list",
                        },
                    }
                ],
            },
        ],
    }

    events = MetaProvider.parse_webhook(payload)

    by_id = {event.provider_message_id: event for event in events}
    assert list(by_id) == [
        "wamid.X1",
        "wamid.X2",
        "wamid.X3",
        "wamid.X4",
        "wamid.X5",
        "wamid.X6",
        "wamid.X8",
        "wamid.S2",
    ]
    assert by_id["wamid.X1"].kind == MessageKind.IMAGE
    assert by_id["wamid.X1"].media == MediaRef()
    assert by_id["wamid.X2"].timestamp.tzinfo is not None
    assert by_id["wamid.X2"].text == ""
    assert by_id["wamid.X3"].location.latitude == pytest.approx(-23.5)
    assert by_id["wamid.X4"].kind == MessageKind.UNSUPPORTED
    assert by_id["wamid.X5"].unsupported_reason == "unknown type hologram"
    assert by_id["wamid.X6"].kind == MessageKind.UNSUPPORTED
    assert by_id["wamid.X8"].contacts[0].name == ""
    assert by_id["wamid.S2"].status == DeliveryStatus.FAILED
    assert by_id["wamid.S2"].error_code == "131049"
    assert by_id["wamid.S2"].timestamp is None


def test_parse_webhook_events_do_not_share_structure_with_payload():
    payload = load("messages__referral_click_to_whatsapp.json")

    message = only(MetaProvider.parse_webhook(payload))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["referral"]["headline"] = "changed"

    assert message.referral["headline"] == "Frete grátis em novembro"
