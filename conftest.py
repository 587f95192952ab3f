import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory, tokens_for


def pytest_sessionstart(session):
    # Runs before the terminal reporter's own header, so this is the run's first line.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not hasattr(session.config, "workerinput"):
        reporter.write_line(f"Elsehub test backends: {settings.TEST_BACKENDS}", bold=True)


def pytest_report_header(config):
    return f"Elsehub test backends: {settings.TEST_BACKENDS}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit and login counters live in the cache: every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password() -> str:
    return DEFAULT_PASSWORD


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db):
    def make(role: str = Role.OPERATOR, **kwargs):
        return UserFactory(role=role, **kwargs)

    return make


@pytest.fixture
def client_for(db):
    """An API client signed in as a user, with a real access token in the header."""

    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
        client.user = user
        return client

    return make


@pytest.fixture
def admin_user(make_user):
    return make_user(Role.ADMIN, email="admin@example.com", name="Ana Admin")


@pytest.fixture
def supervisor_user(make_user):
    return make_user(Role.SUPERVISOR, email="supervisor@example.com", name="Sérgio Supervisor")


@pytest.fixture
def operator_user(make_user):
    return make_user(Role.OPERATOR, email="operator@example.com", name="Olga Operadora")


@pytest.fixture
def admin_client(client_for, admin_user):
    return client_for(admin_user)


@pytest.fixture
def supervisor_client(client_for, supervisor_user):
    return client_for(supervisor_user)


@pytest.fixture
def operator_client(client_for, operator_user):
    return client_for(operator_user)


@pytest.fixture
def fake_provider():
    """Both providers answered by the in-process fake (calls recorded in ``FakeProvider.calls``)."""
    from instances.providers.fake import FakeProvider, stop_fake_provider, use_fake_provider

    use_fake_provider()
    yield FakeProvider
    stop_fake_provider()


@pytest.fixture
def captured_events(monkeypatch):
    """Realtime events sent after commit, as (event, data, groups) tuples."""
    from elsehub import realtime

    sent: list[tuple[str, dict, tuple[str, ...]]] = []
    monkeypatch.setattr(realtime, "_send", lambda event, data, groups: sent.append((event, data, groups)))
    return sent
