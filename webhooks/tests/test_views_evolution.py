"""POST /api/webhooks/evolution[/<event>]: our secret header or the instance's apikey, one test per
rejection, and 200 for whatever an authenticated sender posts."""

import json

import pytest
from django.db import OperationalError

from instances.models import Provider, ServiceInstance
from instances.tests.factories import ServiceInstanceFactory
from webhooks.models import EventState, WebhookEvent
from webhooks.services import receiving
from webhooks.tests.conftest import (
    EVOLUTION_APIKEY,
    EVOLUTION_URL,
    SUCCESS,
    evolution_body,
    post_evolution,
    raw,
)

pytestmark = pytest.mark.django_db

FORBIDDEN = {"statusCode": 403, "message": "Credenciais do webhook inválidas", "error": "Forbidden"}


def _assert_refused(response):
    assert response.status_code == 403, response.content
    assert response.json() == FORBIDDEN
    assert WebhookEvent.objects.count() == 0


# ------------------------------------------------------------------------------ accepted


def test_evolution_post_with_secret_header_is_200_and_stores_the_event(client, evolution_instance):
    body = raw("evolution", "messages_upsert__text.json")
    response = post_evolution(client, body, secret=evolution_instance.webhook_secret)
    assert response.status_code == 200
    assert response.json() == SUCCESS
    event = WebhookEvent.objects.get()
    assert event.provider == Provider.EVOLUTION_API
    assert event.service_instance == evolution_instance
    assert event.event_type == "messages.upsert"
    assert event.state == EventState.PENDING
    assert event.payload == json.loads(body)
    assert event.received_at is not None


def test_evolution_post_per_event_url_is_200_and_stores_the_event(client, evolution_instance):
    response = post_evolution(
        client,
        raw("evolution", "connection_update__open.json"),
        secret=evolution_instance.webhook_secret,
        url=f"{EVOLUTION_URL}/connection-update",
    )
    assert response.status_code == 200
    assert WebhookEvent.objects.get().event_type == "connection.update"


def test_evolution_post_per_event_url_names_the_event_when_the_body_does_not(client, evolution_instance):
    body = evolution_body("qrcode_updated__qr.json", event=None)
    response = post_evolution(
        client, body, secret=evolution_instance.webhook_secret, url=f"{EVOLUTION_URL}/qrcode-updated"
    )
    assert response.status_code == 200
    assert WebhookEvent.objects.get().event_type == "qrcode.updated"


def test_evolution_post_with_apikey_of_the_named_instance_is_200(client, evolution_instance):
    response = post_evolution(client, raw("evolution", "messages_update__read.json"))
    assert response.status_code == 200
    assert WebhookEvent.objects.get().service_instance == evolution_instance


def test_evolution_post_apikey_picks_the_instance_whose_token_matches(client, evolution_instance):
    # The same instance name on another Evolution server, with another token.
    ServiceInstanceFactory(
        provider=Provider.EVOLUTION_API,
        credentials={"serverUrl": "http://other.test", "apiToken": "other-token", "instanceName": "acme-support"},
    )
    assert post_evolution(client, raw("evolution", "messages_update__read.json")).status_code == 200
    assert WebhookEvent.objects.get().service_instance == evolution_instance


def test_evolution_post_apikey_may_be_the_instance_token_evolution_gave_us(client, evolution_instance):
    # What Evolution really puts in ``apikey``: the instance's own token ("hash" at creation), not
    # the server's API key Elsehub was registered with.
    evolution_instance.provider_token_encrypted = ServiceInstance.encrypted_provider_token("INSTANCE-TOKEN-1")
    evolution_instance.save()
    _assert_refused(post_evolution(client, evolution_body("messages_upsert__text.json", apikey="INSTANCE-TOKEN-2")))

    response = post_evolution(client, evolution_body("messages_upsert__text.json", apikey="INSTANCE-TOKEN-1"))

    assert response.status_code == 200
    assert WebhookEvent.objects.get().service_instance == evolution_instance


def test_evolution_post_unknown_event_type_is_200(client, evolution_instance):
    body = raw("evolution", "chats_upsert__unread_reset.json")
    response = post_evolution(client, body, secret=evolution_instance.webhook_secret)
    assert response.status_code == 200
    assert response.json() == SUCCESS
    assert WebhookEvent.objects.get().event_type == "chats.upsert"


def test_evolution_post_duplicate_delivery_is_stored_once_and_still_200(client, evolution_instance):
    body = raw("evolution", "messages_upsert__text.json")
    for _ in range(3):
        response = post_evolution(client, body, secret=evolution_instance.webhook_secret)
        assert response.status_code == 200
        assert response.json() == SUCCESS
    assert WebhookEvent.objects.count() == 1


def test_evolution_post_same_body_for_two_instances_is_two_events(client, evolution_instance):
    other = ServiceInstanceFactory(provider=Provider.EVOLUTION_API)
    body = raw("evolution", "messages_upsert__text.json")
    post_evolution(client, body, secret=evolution_instance.webhook_secret)
    post_evolution(client, body, secret=other.webhook_secret)
    assert WebhookEvent.objects.count() == 2


def test_evolution_post_malformed_json_from_an_authenticated_sender_is_200_and_kept_ignored(client, evolution_instance):
    body = b'{"event": "messages.upsert", "instance": "acme-support", "data": {'
    response = post_evolution(client, body, secret=evolution_instance.webhook_secret)
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state == EventState.IGNORED
    assert event.payload == body.decode()


def test_evolution_post_body_with_nul_character_is_stored(client, evolution_instance):
    # PostgreSQL's jsonb refuses U+0000; the event must still be stored, not fail every retry.
    body = evolution_body("messages_upsert__text.json", sender="5511900000000\u0000@s.whatsapp.net")
    assert post_evolution(client, body, secret=evolution_instance.webhook_secret).status_code == 200
    assert WebhookEvent.objects.get().payload["sender"] == "5511900000000@s.whatsapp.net"


def test_evolution_post_ignores_the_accept_header_and_a_stray_bearer_token(client, evolution_instance):
    response = post_evolution(
        client,
        raw("evolution", "messages_upsert__text.json"),
        secret=evolution_instance.webhook_secret,
        Accept="text/html",
        Authorization="Bearer not-a-jwt",
    )
    assert response.status_code == 200


def test_evolution_post_database_failure_is_503_not_4xx(client, evolution_instance, monkeypatch):
    def broken(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(receiving, "receive_events", broken)
    response = post_evolution(
        client, raw("evolution", "messages_upsert__text.json"), secret=evolution_instance.webhook_secret
    )
    assert response.status_code == 503
    assert response.json()["statusCode"] == 503
    assert response["Retry-After"]


def test_evolution_post_with_stale_secret_but_the_right_apikey_is_200(client, evolution_instance):
    # Either credential is enough: a header left over from an old secret does not hide a valid apikey.
    response = post_evolution(client, raw("evolution", "messages_upsert__text.json"), secret="stale-secret")
    assert response.status_code == 200
    assert WebhookEvent.objects.get().service_instance == evolution_instance


def test_evolution_post_body_over_the_upload_limit_is_413_not_a_final_4xx(client, evolution_instance, settings):
    # 413 is retried by Evolution (only 400/401/403/404/422 are final); nothing is stored.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = post_evolution(
        client, raw("evolution", "messages_upsert__text.json"), secret=evolution_instance.webhook_secret
    )
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


# ------------------------------------------------------------------------------ refused


def test_evolution_post_without_credentials_is_403_and_stores_nothing(client, evolution_instance):
    _assert_refused(post_evolution(client, evolution_body("messages_upsert__text.json", apikey=None)))


def test_evolution_post_with_forged_secret_is_403_and_stores_nothing(client, evolution_instance):
    body = evolution_body("messages_upsert__text.json", apikey=None)
    _assert_refused(post_evolution(client, body, secret="forged-secret"))


def test_evolution_post_with_forged_apikey_is_403_and_stores_nothing(client, evolution_instance):
    _assert_refused(post_evolution(client, evolution_body("messages_upsert__text.json", apikey="forged-key")))


def test_evolution_post_apikey_for_an_instance_name_we_do_not_have_is_403(client, evolution_instance):
    body = evolution_body("messages_upsert__text.json", instance="someone-else")
    _assert_refused(post_evolution(client, body))


def test_evolution_post_apikey_with_malformed_json_is_403(client, evolution_instance):
    _assert_refused(post_evolution(client, f'{{"apikey": "{EVOLUTION_APIKEY}", "instance": '.encode()))


def test_evolution_post_with_secret_of_a_deleted_instance_is_403(client, evolution_instance):
    evolution_instance.deleted_at = evolution_instance.created_at
    evolution_instance.save()
    body = raw("evolution", "messages_upsert__text.json")
    _assert_refused(post_evolution(client, body, secret=evolution_instance.webhook_secret))


def test_evolution_post_with_secret_of_a_meta_instance_is_403(client, meta_instance):
    body = evolution_body("messages_upsert__text.json", apikey=None)
    _assert_refused(post_evolution(client, body, secret=meta_instance.webhook_secret))


def test_evolution_post_forged_on_the_per_event_url_is_403(client, evolution_instance):
    body = evolution_body("messages_upsert__text.json", apikey=None)
    _assert_refused(post_evolution(client, body, secret="forged", url=f"{EVOLUTION_URL}/messages-upsert"))


# ------------------------------------------------------------------------------ cost


@pytest.mark.django_db(transaction=True)
def test_evolution_post_is_stored_by_one_insert_that_commits_on_its_own(client, monkeypatch, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webhooks import tasks

    queued: list = []
    monkeypatch.setattr(tasks.drain_events_task, "apply_async", lambda args, **options: queued.append(args))
    instance = ServiceInstanceFactory(provider=Provider.EVOLUTION_API)
    body = raw("evolution", "messages_upsert__text.json")
    with CaptureQueriesContext(connection) as queries:
        response = post_evolution(client, body, secret=instance.webhook_secret)
    assert response.status_code == 200
    # The secret's instance (not cached in tests) and the INSERT: no savepoint, no second statement.
    writes = [query["sql"] for query in queries.captured_queries if not query["sql"].startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith('INSERT INTO "webhooks_webhookevent"'), writes
    event = WebhookEvent.objects.get()
    assert queued == [(str(instance.pk), event.partition)]

    # The same body again: found, not stored, no drain.
    assert post_evolution(client, body, secret=instance.webhook_secret).status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert len(queued) == 1
