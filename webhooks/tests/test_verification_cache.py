import time

import pytest

from instances.tests.factories import ServiceInstanceFactory
from webhooks import verification

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    verification._by_digest.clear()
    yield
    verification._by_digest.clear()


def test_evolution_secret_lookup_is_remembered_for_a_few_seconds(settings, django_assert_num_queries, monkeypatch):
    settings.WEBHOOK_SECRET_CACHE_SECONDS = 10
    instance = ServiceInstanceFactory()
    secret = instance.webhook_secret
    with django_assert_num_queries(1):
        assert verification.evolution_instance_for(secret=secret, payload={}) == instance
    with django_assert_num_queries(0):
        assert verification.evolution_instance_for(secret=secret, payload={}) == instance

    instance.deleted_at = instance.created_at
    instance.save()
    later = time.monotonic() + 11
    monkeypatch.setattr(verification.time, "monotonic", lambda: later)
    assert verification.evolution_instance_for(secret=secret, payload={}) is None


def test_evolution_unknown_secret_is_never_remembered(settings, django_assert_num_queries):
    settings.WEBHOOK_SECRET_CACHE_SECONDS = 10
    for _ in range(2):
        with django_assert_num_queries(1):
            assert verification.evolution_instance_for(secret="not-a-secret", payload={}) is None
