"""GET/POST /api/webhooks/meta: the verification handshake, signature checks over the raw body
(one test per rejection), and one stored event per phone number."""

import json

import pytest

from instances.models import Provider
from instances.providers.meta.signature import sign
from instances.tests.factories import META_CREDENTIALS, ServiceInstanceFactory
from webhooks.models import EventState, WebhookEvent
from webhooks.tests.conftest import (
    APP_SECRET,
    META_PHONE_ID,
    META_PHONE_ID_2,
    META_URL,
    SUCCESS,
    post_meta,
    raw,
)

pytestmark = pytest.mark.django_db

VERIFY_TOKEN = "elsehub-verify-token"
FORBIDDEN_SIGNATURE = {"statusCode": 403, "message": "Assinatura do webhook inválida", "error": "Forbidden"}
FORBIDDEN_TOKEN = {"statusCode": 403, "message": "Token de verificação inválido", "error": "Forbidden"}


def _verify(client, token: str, mode: str = "subscribe", challenge: str = "1158201444"):
    return client.get(META_URL, {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge})


def _assert_refused(response):
    assert response.status_code == 403, response.content
    assert response.json() == FORBIDDEN_SIGNATURE
    assert WebhookEvent.objects.count() == 0


# ------------------------------------------------------------------------------ GET verification


def test_meta_verify_echoes_challenge_as_plain_text(client, settings):
    settings.META_VERIFY_TOKEN = VERIFY_TOKEN
    response = _verify(client, VERIFY_TOKEN)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"1158201444"


def test_meta_verify_wrong_token_is_403(client, settings):
    settings.META_VERIFY_TOKEN = VERIFY_TOKEN
    response = _verify(client, "not-the-token")
    assert response.status_code == 403
    assert response.json() == FORBIDDEN_TOKEN


def test_meta_verify_wrong_mode_is_403(client, settings):
    settings.META_VERIFY_TOKEN = VERIFY_TOKEN
    assert _verify(client, VERIFY_TOKEN, mode="unsubscribe").status_code == 403


def test_meta_verify_without_any_token_configured_is_403(client, settings):
    settings.META_VERIFY_TOKEN = ""
    assert _verify(client, "").status_code == 403


def test_meta_verify_accepts_an_instance_verify_token(client, settings):
    settings.META_VERIFY_TOKEN = ""
    ServiceInstanceFactory(provider=Provider.OFFICIAL_META, credentials={**META_CREDENTIALS, "verifyToken": "own-tok"})
    response = _verify(client, "own-tok", challenge="42")
    assert response.status_code == 200
    assert response.content == b"42"


def test_meta_verify_accepts_the_instance_webhook_secret_without_verify_token(client, settings, meta_instance):
    settings.META_VERIFY_TOKEN = VERIFY_TOKEN
    response = _verify(client, meta_instance.webhook_secret, challenge="7")
    assert response.status_code == 200
    assert response.content == b"7"


def test_meta_verify_ignores_the_webhook_secret_when_a_verify_token_is_set(client, settings):
    settings.META_VERIFY_TOKEN = ""
    instance = ServiceInstanceFactory(
        provider=Provider.OFFICIAL_META, credentials={**META_CREDENTIALS, "verifyToken": "own-tok"}
    )
    assert _verify(client, instance.webhook_secret).status_code == 403


def test_meta_verify_ignores_deleted_instances(client, settings):
    settings.META_VERIFY_TOKEN = ""
    instance = ServiceInstanceFactory(
        provider=Provider.OFFICIAL_META, credentials={**META_CREDENTIALS, "verifyToken": "own-tok"}
    )
    instance.deleted_at = instance.created_at
    instance.save()
    assert _verify(client, "own-tok").status_code == 403


# ------------------------------------------------------------------------------ POST, accepted


def test_meta_post_signed_is_200_and_stores_the_event(client, app_secret, meta_instance):
    body = raw("meta", "messages__text.json")
    response = post_meta(client, body)
    assert response.status_code == 200
    assert response.json() == SUCCESS
    event = WebhookEvent.objects.get()
    assert event.provider == Provider.OFFICIAL_META
    assert event.service_instance == meta_instance
    assert event.event_type == "messages"
    assert event.state == EventState.PENDING
    assert event.attempts == 0
    assert event.payload == json.loads(body)


def test_meta_post_batch_with_two_numbers_stores_one_event_per_number(client, app_secret, meta_instance):
    other = ServiceInstanceFactory(
        provider=Provider.OFFICIAL_META, credentials={**META_CREDENTIALS, "phoneId": META_PHONE_ID_2}
    )
    response = post_meta(client, raw("meta", "batch__two_entries.json"))
    assert response.status_code == 200

    first = WebhookEvent.objects.get(service_instance=meta_instance)
    second = WebhookEvent.objects.get(service_instance=other)
    assert first.event_type == "messages+statuses"
    assert first.state == second.state == EventState.PENDING
    # Same envelope shape, only that number's changes.
    assert first.payload["object"] == second.payload["object"] == "whatsapp_business_account"
    assert [entry["id"] for entry in first.payload["entry"]] == ["102290129340398"]
    assert len(first.payload["entry"][0]["changes"]) == 2
    assert [entry["id"] for entry in second.payload["entry"]] == ["102290129340399"]
    assert [change["field"] for change in second.payload["entry"][0]["changes"]] == ["messages"]
    assert second.payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == META_PHONE_ID_2
    # The account_update change names no number: kept for people, never processed.
    orphan = WebhookEvent.objects.get(service_instance=None)
    assert orphan.state == EventState.IGNORED
    assert orphan.event_type == "account_update"
    assert WebhookEvent.objects.count() == 3


def test_meta_post_for_an_unknown_number_is_200_and_kept_ignored(client, app_secret):
    response = post_meta(client, raw("meta", "messages__text.json"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.service_instance is None
    assert event.state == EventState.IGNORED


def test_meta_post_uses_the_instance_app_secret_when_meta_app_secret_is_unset(client, settings):
    settings.META_APP_SECRET = ""
    instance = ServiceInstanceFactory(
        provider=Provider.OFFICIAL_META,
        credentials={**META_CREDENTIALS, "phoneId": META_PHONE_ID, "appSecret": "instance-secret"},
    )
    response = post_meta(client, raw("meta", "statuses__delivered.json"), secret="instance-secret")
    assert response.status_code == 200
    assert WebhookEvent.objects.get().service_instance == instance


def test_meta_post_verifies_the_raw_bytes_not_reserialised_json(client, app_secret, meta_instance):
    # Graph escapes "/" and non-ASCII (like PHP's json_encode); re-serialising would change the bytes.
    payload = json.loads(raw("meta", "messages__image_with_caption_and_url.json"))
    body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()
    assert post_meta(client, body).status_code == 200
    assert WebhookEvent.objects.get().payload == payload


def test_meta_post_duplicate_delivery_is_stored_once_and_still_200(client, app_secret, meta_instance):
    body = raw("meta", "messages__text.json")
    assert post_meta(client, body).json() == SUCCESS
    response = post_meta(client, body)
    assert response.status_code == 200
    assert response.json() == SUCCESS
    assert WebhookEvent.objects.count() == 1


def test_meta_post_ignores_a_stray_bearer_token(client, app_secret, meta_instance):
    response = post_meta(client, raw("meta", "messages__text.json"), Authorization="Bearer not-a-jwt")
    assert response.status_code == 200


# ------------------------------------------------------------------------------ POST, refused


def test_meta_post_without_signature_is_403_and_stores_nothing(client, app_secret, meta_instance):
    _assert_refused(post_meta(client, raw("meta", "messages__text.json"), secret=None))


def test_meta_post_with_wrong_signature_is_403_and_stores_nothing(client, app_secret, meta_instance):
    _assert_refused(post_meta(client, raw("meta", "messages__text.json"), secret="another-secret"))


def test_meta_post_with_malformed_signature_header_is_403_and_stores_nothing(client, app_secret, meta_instance):
    _assert_refused(post_meta(client, raw("meta", "messages__text.json"), signature="sha1=0123abcd"))


def test_meta_post_body_modified_after_signing_is_403(client, app_secret, meta_instance):
    body = raw("meta", "messages__text.json")
    tampered = body.replace(b"Maria Silva", b"Mallory")
    assert tampered != body
    _assert_refused(post_meta(client, tampered, signature=sign(body, APP_SECRET)))


def test_meta_post_without_any_app_secret_configured_is_403(client, settings, meta_instance):
    settings.META_APP_SECRET = ""
    _assert_refused(post_meta(client, raw("meta", "messages__text.json")))


def test_meta_post_signed_with_another_instances_secret_stores_nothing_for_this_one(client, settings, meta_instance):
    # The signer's own app secret vouches only for its own number, not for one named next to it.
    settings.META_APP_SECRET = ""
    signer = ServiceInstanceFactory(
        provider=Provider.OFFICIAL_META,
        credentials={**META_CREDENTIALS, "phoneId": META_PHONE_ID_2, "appSecret": "signer-secret"},
    )
    response = post_meta(client, raw("meta", "batch__two_entries.json"), secret="signer-secret")
    assert response.status_code == 200
    assert not WebhookEvent.objects.filter(service_instance=meta_instance).exists()
    assert WebhookEvent.objects.filter(service_instance=signer).count() == 1


def test_meta_post_signed_not_json_is_200_and_kept_ignored(client, app_secret):
    response = post_meta(client, b'{"object": "whatsapp_business_account", "entry": [')
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state == EventState.IGNORED
    assert event.payload == '{"object": "whatsapp_business_account", "entry": ['
