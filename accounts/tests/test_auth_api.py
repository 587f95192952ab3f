import time
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.hashers import identify_hasher
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import Role, User
from accounts.tests.factories import tokens_for
from elsehub.tests.concurrency import send_at_once

USER_KEYS = {
    "id",
    "name",
    "email",
    "role",
    "isActive",
    "isOnline",
    "onlineSince",
    "lastConversationAssignedAt",
    "createdAt",
    "updatedAt",
}


def login(client, email, password, **extra):
    return client.post("/api/auth/login", {"email": email, "password": password}, format="json", **extra)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# ------------------------------------------------------------------------------ login


def test_login_returns_user_and_tokens_as_in_contract(api_client, operator_user, password):
    response = login(api_client, "Operator@Example.com", password)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "tokens"}
    assert set(body["user"]) == USER_KEYS
    assert body["user"]["id"] == str(operator_user.id)
    assert body["user"]["email"] == "operator@example.com"
    assert body["user"]["role"] == "OPERATOR"
    assert set(body["tokens"]) == {"accessToken", "refreshToken", "accessTokenExpiresIn", "refreshTokenExpiresIn"}
    assert body["tokens"]["accessTokenExpiresIn"] == "900s"
    assert body["tokens"]["refreshTokenExpiresIn"] == "7d"
    profile = bearer(body["tokens"]["accessToken"]).get("/api/auth/profile")
    assert profile.status_code == 200
    assert profile.json() == body["user"]


@pytest.mark.parametrize(
    ("email", "password_value"),
    [("operator@example.com", "wrong-password"), ("nobody@example.com", "whatever-password")],
)
def test_login_wrong_credentials_is_401(api_client, operator_user, email, password_value):
    response = login(api_client, email, password_value)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Credenciais inválidas", "error": "Unauthorized"}


def test_login_inactive_user_is_401_even_with_right_password(api_client, make_user, password):
    make_user(email="idle@example.com", is_active=False)
    response = login(api_client, "idle@example.com", password)
    assert response.status_code == 401
    assert response.json()["message"] == "Credenciais inválidas"


def test_login_validation_is_422_naming_fields(api_client, db):
    response = login(api_client, "not-an-email", "123")
    assert response.status_code == 422
    messages = response.json()["message"]
    assert any(message.startswith("email:") for message in messages)
    assert any(message.startswith("password:") for message in messages)


def test_login_ignores_a_stale_bearer_token(operator_user, password):
    response = login(bearer("garbage.token.value"), operator_user.email, password)
    assert response.status_code == 200


# ------------------------------------------------------------------------------ tokens


def test_access_token_expires_after_900_seconds(operator_user):
    tokens = tokens_for(operator_user)
    client = bearer(tokens["access"])
    with time_machine.travel(timezone.now() + timedelta(seconds=890), tick=False):
        assert client.get("/api/auth/profile").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(seconds=901), tick=False):
        response = client.get("/api/auth/profile")
    assert response.status_code == 401
    assert response.json()["message"] == "Token expirado"


def test_refresh_rotates_and_the_used_token_is_refused(api_client, operator_user):
    tokens = tokens_for(operator_user)

    first = api_client.post("/api/auth/refresh", {"refreshToken": tokens["refresh"]}, format="json")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"user", "tokens"}
    assert body["user"]["id"] == str(operator_user.id)
    assert body["tokens"]["refreshToken"] != tokens["refresh"]
    assert bearer(body["tokens"]["accessToken"]).get("/api/auth/profile").status_code == 200

    again = api_client.post("/api/auth/refresh", {"refreshToken": tokens["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["message"] == "Refresh token inválido ou expirado"
    rotated = api_client.post("/api/auth/refresh", {"refreshToken": body["tokens"]["refreshToken"]}, format="json")
    assert rotated.status_code == 200


def test_refresh_after_access_expiry_keeps_the_session_alive(api_client, operator_user):
    tokens = tokens_for(operator_user)
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        assert bearer(tokens["access"]).get("/api/auth/profile").status_code == 401
        response = api_client.post("/api/auth/refresh", {"refreshToken": tokens["refresh"]}, format="json")
        assert response.status_code == 200
        assert bearer(response.json()["tokens"]["accessToken"]).get("/api/auth/profile").status_code == 200


def test_refresh_token_expires_after_seven_days(api_client, operator_user):
    tokens = tokens_for(operator_user)
    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1), tick=False):
        response = api_client.post("/api/auth/refresh", {"refreshToken": tokens["refresh"]}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("which", ["access", "garbage"])
def test_refresh_refuses_anything_but_a_refresh_token(api_client, operator_user, which):
    token = tokens_for(operator_user)["access"] if which == "access" else "a.b.c"
    response = api_client.post("/api/auth/refresh", {"refreshToken": token}, format="json")
    assert response.status_code == 401


def test_refresh_refused_for_a_user_deactivated_meanwhile(api_client, operator_user):
    tokens = tokens_for(operator_user)
    User.objects.filter(pk=operator_user.pk).update(is_active=False)
    response = api_client.post("/api/auth/refresh", {"refreshToken": tokens["refresh"]}, format="json")
    assert response.status_code == 401


@pytest.mark.django_db(transaction=True)
def test_refresh_concurrent_use_of_one_token_has_one_winner(operator_user):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; SQLite serialises writers anyway")
    refresh = tokens_for(operator_user)["refresh"]
    statuses = send_at_once([(APIClient(), "post", "/api/auth/refresh", {"refreshToken": refresh}) for _ in range(4)])
    assert statuses == [200, 401, 401, 401]


# ------------------------------------------------------------------------------ logout


def test_logout_revokes_the_refresh_token_and_is_idempotent(api_client, operator_user):
    tokens = tokens_for(operator_user)
    assert api_client.post("/api/auth/logout", {"refreshToken": tokens["refresh"]}, format="json").status_code == 204
    assert api_client.post("/api/auth/logout", {"refreshToken": tokens["refresh"]}, format="json").status_code == 204
    response = api_client.post("/api/auth/refresh", {"refreshToken": tokens["refresh"]}, format="json")
    assert response.status_code == 401


def test_logout_with_a_forged_token_is_401(api_client, operator_user):
    forged = tokens_for(operator_user)["refresh"][:-4] + "AAAA"
    response = api_client.post("/api/auth/logout", {"refreshToken": forged}, format="json")
    assert response.status_code == 401
    assert BlacklistedToken.objects.count() == 0


# ------------------------------------------------------------------------------ change password


def test_change_password_ends_other_sessions_and_returns_a_new_pair(operator_user, password):
    other_session = tokens_for(operator_user)
    this_session = tokens_for(operator_user)

    response = bearer(this_session["access"]).put(
        "/api/auth/change-password", {"currentPassword": password, "newPassword": "a-brand-new-secret"}, format="json"
    )

    assert response.status_code == 200
    new_tokens = response.json()["tokens"]
    assert bearer(new_tokens["accessToken"]).get("/api/auth/profile").status_code == 200
    assert bearer(other_session["access"]).get("/api/auth/profile").status_code == 401
    refresh = APIClient().post("/api/auth/refresh", {"refreshToken": other_session["refresh"]}, format="json")
    assert refresh.status_code == 401
    assert login(APIClient(), operator_user.email, password).status_code == 401
    assert login(APIClient(), operator_user.email, "a-brand-new-secret").status_code == 200


def test_change_password_wrong_current_is_400(operator_client):
    response = operator_client.put(
        "/api/auth/change-password", {"currentPassword": "not-it", "newPassword": "long-enough-1"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["message"] == "A senha atual está incorreta"


def test_change_password_short_new_password_is_422(operator_client, password):
    response = operator_client.put(
        "/api/auth/change-password", {"currentPassword": password, "newPassword": "short"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["message"][0].startswith("newPassword:")


# ------------------------------------------------------------------------------ registration


def test_registration_disabled_by_default(api_client, db):
    assert api_client.get("/api/auth/registration-status").json() == {"enabled": False}
    response = api_client.post(
        "/api/auth/register", {"name": "Nova", "email": "nova@example.com", "password": "long-enough-1"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["message"] == "O cadastro de usuários está desabilitado"
    assert not User.objects.filter(email="nova@example.com").exists()


@override_settings(ALLOW_USER_REGISTRATION=True)
def test_registration_when_enabled_creates_an_operator(api_client, db):
    assert api_client.get("/api/auth/registration-status").json() == {"enabled": True}
    response = api_client.post(
        "/api/auth/register", {"name": "Nova", "email": "Nova@Example.com", "password": "long-enough-1"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["user"]["role"] == "OPERATOR"
    assert User.objects.get(email="nova@example.com").role == Role.OPERATOR
    duplicate = api_client.post(
        "/api/auth/register", {"name": "Outra", "email": "nova@example.com", "password": "long-enough-1"}, format="json"
    )
    assert duplicate.status_code == 409


# ------------------------------------------------------------------------------ brute force


@override_settings(LOGIN_LOCK_AFTER_EMAIL=3, LOGIN_LOCK_AFTER_IP=100)
def test_login_locks_an_email_after_repeated_failures_even_for_the_right_password(operator_user, password):
    client = APIClient()
    for _ in range(3):
        assert login(client, operator_user.email, "wrong-password").status_code == 401

    locked = login(APIClient(), operator_user.email, password, REMOTE_ADDR="10.9.9.9")
    assert locked.status_code == 429
    assert locked.json()["error"] == "Too Many Requests"
    assert "Muitas tentativas de login" in locked.json()["message"]
    assert int(locked["Retry-After"]) > 0

    with time_machine.travel(timezone.now() + timedelta(seconds=901), tick=False):
        assert login(APIClient(), operator_user.email, password).status_code == 200


@override_settings(LOGIN_LOCK_AFTER_EMAIL=100, LOGIN_LOCK_AFTER_IP=4)
def test_login_locks_an_ip_trying_many_emails(make_user, password):
    victim = make_user(email="victim@example.com")
    for n in range(4):
        assert login(APIClient(), f"guess{n}@example.com", "wrong-password", REMOTE_ADDR="10.1.1.1").status_code == 401

    assert login(APIClient(), victim.email, password, REMOTE_ADDR="10.1.1.1").status_code == 429
    assert login(APIClient(), victim.email, password, REMOTE_ADDR="10.2.2.2").status_code == 200


@override_settings(LOGIN_SLOWDOWN_AFTER=2, LOGIN_SLOWDOWN_SECONDS=0.2, LOGIN_LOCK_AFTER_EMAIL=100)
def test_login_failures_past_the_threshold_are_slowed(operator_user):
    client = APIClient()
    started = time.monotonic()
    login(client, operator_user.email, "wrong-password")
    fast = time.monotonic() - started
    login(client, operator_user.email, "wrong-password")
    started = time.monotonic()
    assert login(client, operator_user.email, "wrong-password").status_code == 401
    slowed = time.monotonic() - started
    assert slowed >= 0.2
    assert slowed > fast


@override_settings(LOGIN_LOCK_AFTER_EMAIL=3)
def test_login_success_resets_the_email_counter(operator_user, password):
    client = APIClient()
    for _ in range(2):
        login(client, operator_user.email, "wrong-password")
    assert login(client, operator_user.email, password).status_code == 200
    for _ in range(2):
        login(client, operator_user.email, "wrong-password")
    assert login(client, operator_user.email, password).status_code == 200


# ------------------------------------------------------------------------------ passwords and commands


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"])
def test_passwords_are_hashed_with_argon2(admin_client):
    response = admin_client.post(
        "/api/users",
        {"name": "Hash", "email": "hash@example.com", "password": "long-enough-1", "role": "OPERATOR"},
        format="json",
    )
    assert response.status_code == 201
    assert identify_hasher(User.objects.get(email="hash@example.com").password).algorithm == "argon2"


def test_createsuperuser_creates_an_admin(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "first-admin-secret")
    call_command("createsuperuser", interactive=False, email="Boss@Example.com", name="Chefe", verbosity=0)
    boss = User.objects.get(email="boss@example.com")
    assert boss.role == Role.ADMIN
    assert boss.name == "Chefe"
    assert boss.check_password("first-admin-secret")


def test_ensure_admin_creates_one_admin_once_and_prints_credentials(db, settings, tmp_path, capsys):
    settings.DATA_DIR = tmp_path
    call_command("ensure_admin")
    first = capsys.readouterr().out
    call_command("ensure_admin")
    second = capsys.readouterr().out

    assert User.objects.filter(role=Role.ADMIN).count() == 1
    email, secret = (tmp_path / "admin-credentials.txt").read_text().split("\n")[:2]
    assert email in first and secret in first
    assert first == second
    assert login(APIClient(), email, secret).status_code == 200


def test_flush_expired_tokens_task_drops_only_expired_tokens(operator_user):
    from accounts.tasks import flush_expired_tokens_task

    tokens_for(operator_user)
    with time_machine.travel(timezone.now() - timedelta(days=30), tick=False):
        tokens_for(operator_user)
    assert OutstandingToken.objects.count() == 2
    flush_expired_tokens_task.delay()
    flush_expired_tokens_task.delay()
    assert OutstandingToken.objects.count() == 1
