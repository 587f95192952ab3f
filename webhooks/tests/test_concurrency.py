"""The same delivery arriving several times at once (a provider retry racing the original) is
stored once: the unique dedupe key decides, on real PostgreSQL with real threads."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from elsehub.tests.concurrency import run_at_once
from instances.models import ConnectionStatus, Provider
from instances.tests.factories import ServiceInstanceFactory
from webhooks.models import EventState, WebhookEvent
from webhooks.tests.conftest import SUCCESS, post_evolution, raw


@pytest.mark.django_db(transaction=True)
def test_receive_same_body_from_three_threads_at_once_stores_one_event():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises them anyway")
    instance = ServiceInstanceFactory(provider=Provider.EVOLUTION_API, connection_status=ConnectionStatus.CONNECTING)
    secret = instance.webhook_secret
    body = raw("evolution", "connection_update__open.json")

    def deliver() -> tuple[int, dict]:
        response = post_evolution(APIClient(), body, secret=secret)
        return response.status_code, response.json()

    answers = run_at_once([deliver] * 3)
    assert answers == [(200, SUCCESS)] * 3
    event = WebhookEvent.objects.get()
    # Eager Celery: the one thread that stored it also processed it after its commit.
    assert event.state == EventState.PROCESSED
    instance.refresh_from_db()
    assert instance.connection_status == ConnectionStatus.CONNECTED
