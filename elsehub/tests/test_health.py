import re

import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_health_ok_with_contract_body(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])


@pytest.mark.django_db
def test_health_reports_unreachable_redis_as_503(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["statusCode"] == 503
    assert body["error"] == "Service Unavailable"
    assert "redis" in body["message"]


@pytest.mark.django_db
def test_health_is_never_rate_limited(client, settings):
    settings.RATE_LIMIT_MAX = 2
    statuses = {client.get("/health").status_code for _ in range(5)}
    assert statuses == {200}
