"""The users endpoints (contract section 5) as a client calls them, errors in the section 16 format."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import Role, User
from accounts.tests.factories import tokens_for
from elsehub.tests.concurrency import send_at_once

USERS = "/api/users"
ME = "/api/users/me"
ONLINE = "/api/users/online"
TOGGLE_ONLINE = "/api/users/me/toggle-online"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"

CONTRACT_KEYS = {
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
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

EMAIL_TAKEN = "Email já está em uso"
LAST_ADMIN = "Esta alteração deixaria o sistema sem nenhum administrador ativo"
FORBIDDEN = {"statusCode": 403, "message": "Usuário não autorizado para executar esta ação", "error": "Forbidden"}
UNAUTHORIZED = {"statusCode": 401, "message": "Token inválido ou ausente", "error": "Unauthorized"}
NOT_FOUND = {"statusCode": 404, "message": "Recurso não encontrado", "error": "Not Found"}


def _detail(user_id) -> str:
    return f"{USERS}/{user_id}"


def _parse_ts(value: str) -> datetime:
    assert ISO_MS_Z.fullmatch(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _ms(value: datetime) -> datetime:
    """A database timestamp cut to the milliseconds the API shows."""
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def _login(api_client, email: str, password: str):
    return api_client.post(LOGIN, {"email": email, "password": password}, format="json")


def _validation_fields(response) -> set[str]:
    """The field each 422 sentence names (``"password: ..."`` -> ``"password"``)."""
    body = response.json()
    assert body["statusCode"] == 422
    assert body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list)
    assert body["message"], "a 422 must say what is wrong"
    return {sentence.split(":", 1)[0] for sentence in body["message"]}


def _links(response) -> dict[str, dict[str, list[str]]]:
    """``Link`` header as ``{rel: parsed query}``."""
    links = {}
    for part in response["Link"].split(","):
        url_part, rel_part = part.split(";")
        url = url_part.strip().removeprefix("<").removesuffix(">")
        rel = re.fullmatch(r'\s*rel="(\w+)"\s*', rel_part).group(1)
        parsed = urlparse(url)
        assert parsed.path == USERS
        links[rel] = parse_qs(parsed.query)
    return links


def _live_refresh_tokens(user) -> int:
    """Refresh tokens of the user that are not blacklisted: what a revocation must bring to zero."""
    return OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True).count()


def _new_user_payload(**overrides) -> dict:
    payload = {
        "name": "João Silva",
        "email": "joao@example.com",
        "password": "senha123456",
        "role": Role.OPERATOR,
        "isActive": True,
    }
    payload.update(overrides)
    return payload


# ------------------------------------------------------------------------------
# POST /api/users
# ------------------------------------------------------------------------------


def test_create_user_returns_201_with_exactly_the_contract_body(admin_client):
    before = timezone.now()
    response = admin_client.post(USERS, _new_user_payload(role=Role.SUPERVISOR), format="json")
    after = timezone.now()

    assert response.status_code == 201
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    user = User.objects.get(pk=body["id"])
    assert body["name"] == "João Silva"
    assert body["email"] == "joao@example.com"
    assert body["role"] == "SUPERVISOR"
    assert body["isActive"] is True
    assert body["isOnline"] is False
    assert body["onlineSince"] is None
    assert body["lastConversationAssignedAt"] is None
    created_at = _parse_ts(body["createdAt"])
    assert created_at == _ms(user.created_at)
    assert _ms(before) <= created_at <= after
    assert _parse_ts(body["updatedAt"]) == _ms(user.updated_at)


def test_create_user_hashes_the_password_and_the_user_can_log_in(admin_client, api_client):
    response = admin_client.post(USERS, _new_user_payload(), format="json")
    assert response.status_code == 201

    user = User.objects.get(pk=response.json()["id"])
    assert user.password != "senha123456"
    assert user.check_password("senha123456")
    login = _login(api_client, "joao@example.com", "senha123456")
    assert login.status_code == 200
    assert login.json()["user"]["id"] == str(user.pk)


def test_create_user_stores_the_email_lowercase(admin_client):
    response = admin_client.post(USERS, _new_user_payload(email="  Joao.Silva@Example.COM "), format="json")

    assert response.status_code == 201
    assert response.json()["email"] == "joao.silva@example.com"
    assert User.objects.get(pk=response.json()["id"]).email == "joao.silva@example.com"


@pytest.mark.parametrize("email", ["maria@example.com", "MARIA@example.com", "Maria@Example.Com"])
def test_create_user_duplicate_email_is_409_whatever_the_case(admin_client, make_user, email):
    make_user(email="maria@example.com")

    response = admin_client.post(USERS, _new_user_payload(email=email), format="json")

    assert response.status_code == 409
    assert response.json() == {"statusCode": 409, "message": EMAIL_TAKEN, "error": "Conflict"}
    assert User.objects.filter(email__iexact="maria@example.com").count() == 1


@pytest.mark.parametrize("password", ["", "1234567", "abc"])
def test_create_user_short_password_is_422_naming_the_field(admin_client, password):
    response = admin_client.post(USERS, _new_user_payload(password=password), format="json")

    assert response.status_code == 422
    assert _validation_fields(response) == {"password"}
    assert not User.objects.filter(email="joao@example.com").exists()


def test_create_user_password_of_exactly_eight_characters_is_accepted(admin_client, api_client):
    response = admin_client.post(USERS, _new_user_payload(password="12345678"), format="json")

    assert response.status_code == 201
    assert _login(api_client, "joao@example.com", "12345678").status_code == 200


@pytest.mark.parametrize("role", ["ROOT", "admin", "", None, 3])
def test_create_user_invalid_role_is_422(admin_client, role):
    response = admin_client.post(USERS, _new_user_payload(role=role), format="json")

    assert response.status_code == 422
    assert _validation_fields(response) == {"role"}
    assert not User.objects.filter(email="joao@example.com").exists()


def test_create_user_empty_body_names_every_required_field(admin_client):
    response = admin_client.post(USERS, {}, format="json")

    assert response.status_code == 422
    assert _validation_fields(response) == {"name", "email", "password", "role"}


@pytest.mark.parametrize("email", ["not-an-email", "joao@", "@example.com", ""])
def test_create_user_invalid_email_is_422(admin_client, email):
    response = admin_client.post(USERS, _new_user_payload(email=email), format="json")

    assert response.status_code == 422
    assert _validation_fields(response) == {"email"}


def test_create_user_malformed_json_is_400_in_contract_format(admin_client):
    response = admin_client.generic("POST", USERS, "{not json", content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert body["error"] == "Bad Request"
    assert isinstance(body["message"], str)


def test_create_user_inactive_cannot_log_in(admin_client, api_client):
    response = admin_client.post(USERS, _new_user_payload(isActive=False), format="json")

    assert response.status_code == 201
    assert response.json()["isActive"] is False
    assert _login(api_client, "joao@example.com", "senha123456").status_code == 401


def test_create_user_is_active_defaults_to_true(admin_client):
    payload = _new_user_payload()
    del payload["isActive"]

    response = admin_client.post(USERS, payload, format="json")

    assert response.status_code == 201
    assert response.json()["isActive"] is True
    assert User.objects.get(pk=response.json()["id"]).is_active is True


# ------------------------------------------------------------------------------
# Role rules
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_name", "method", "path", "expected"),
    [
        ("supervisor_client", "get", USERS, 200),
        ("supervisor_client", "get", ONLINE, 200),
        ("supervisor_client", "get", ME, 200),
        ("supervisor_client", "post", USERS, 403),
        ("supervisor_client", "patch", "detail", 403),
        ("supervisor_client", "delete", "detail", 403),
        ("operator_client", "get", ME, 200),
        ("operator_client", "patch", TOGGLE_ONLINE, 200),
        ("operator_client", "get", USERS, 403),
        ("operator_client", "get", ONLINE, 403),
        ("operator_client", "post", USERS, 403),
        ("operator_client", "patch", "detail", 403),
        ("operator_client", "delete", "detail", 403),
        ("api_client", "get", USERS, 401),
        ("api_client", "get", ONLINE, 401),
        ("api_client", "get", ME, 401),
        ("api_client", "patch", TOGGLE_ONLINE, 401),
        ("api_client", "post", USERS, 401),
        ("api_client", "patch", "detail", 401),
        ("api_client", "delete", "detail", 401),
    ],
)
def test_users_endpoints_enforce_roles(request, make_user, client_name, method, path, expected):
    client = request.getfixturevalue(client_name)
    target = make_user(Role.OPERATOR, email="target@example.com", name="Alvo Original")
    url = _detail(target.pk) if path == "detail" else path
    payloads = {
        USERS: _new_user_payload(email="new@example.com"),
        TOGGLE_ONLINE: {"isOnline": True},
        "detail": {"name": "Alvo Alterado"},
    }
    data = payloads.get(path) if method in {"post", "patch"} else None

    response = getattr(client, method)(url, data, format="json")

    assert response.status_code == expected
    if expected == 403:
        assert response.json() == FORBIDDEN
    if expected == 401:
        assert response.json() == UNAUTHORIZED
    if expected in {401, 403}:
        # A refused write leaves nothing behind.
        target.refresh_from_db()
        assert target.name == "Alvo Original"
        assert target.deleted_at is None
        assert not User.objects.filter(email="new@example.com").exists()


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "Token abc", "Basic dXNlcjpwYXNz"])
def test_users_list_with_bad_authorization_header_is_401(api_client, admin_user, header):
    api_client.credentials(HTTP_AUTHORIZATION=header)

    response = api_client.get(USERS)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_users_list_accepts_a_token_from_login(api_client, admin_user, password):
    access = _login(api_client, admin_user.email, password).json()["tokens"]["accessToken"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    response = api_client.get(USERS)

    assert response.status_code == 200
    assert [user["email"] for user in response.json()] == ["admin@example.com"]


# ------------------------------------------------------------------------------
# GET /api/users
# ------------------------------------------------------------------------------


def test_list_users_returns_a_bare_array_ordered_by_name(admin_client, admin_user, make_user):
    make_user(Role.OPERATOR, name="Carla")
    make_user(Role.SUPERVISOR, name="Bruno")
    make_user(Role.OPERATOR, name="Zeca", is_active=False)

    response = admin_client.get(USERS)

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [user["name"] for user in body] == ["Ana Admin", "Bruno", "Carla", "Zeca"]
    assert all(set(user) == CONTRACT_KEYS for user in body)
    assert [user["isActive"] for user in body] == [True, True, True, False]
    assert response["X-Total-Count"] == "4"
    assert "password" not in response.content.decode()


def test_list_users_paginates_with_total_and_link_headers(admin_client, make_user):
    for name in ["Bia", "Caio", "Duda", "Edu", "Fabi"]:
        make_user(name=name)

    response = admin_client.get(USERS, {"page": 2, "limit": 2})

    assert response.status_code == 200
    # Page 1 holds "Ana Admin" and "Bia".
    assert [user["name"] for user in response.json()] == ["Caio", "Duda"]
    assert response["X-Total-Count"] == "6"
    links = _links(response)
    assert set(links) == {"first", "prev", "next", "last"}
    assert links["first"]["page"] == ["1"]
    assert links["prev"]["page"] == ["1"]
    assert links["next"]["page"] == ["3"]
    assert links["last"]["page"] == ["3"]
    assert all(query["limit"] == ["2"] for query in links.values())


def test_list_users_following_next_links_visits_every_user_once(admin_client, make_user):
    for index in range(7):
        make_user(name=f"Pessoa {index}")

    seen, url, pages = [], f"{USERS}?limit=3", 0
    while url:
        response = admin_client.get(url)
        assert response.status_code == 200
        seen.extend(user["id"] for user in response.json())
        pages += 1
        next_page = _links(response).get("next")
        url = f"{USERS}?limit=3&page={next_page['page'][0]}" if next_page else None

    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    assert set(seen) == {str(pk) for pk in User.objects.values_list("pk", flat=True)}


def test_list_users_first_page_has_no_prev_and_last_page_no_next(admin_client, make_user):
    for name in ["Bia", "Caio"]:
        make_user(name=name)

    first = admin_client.get(USERS, {"page": 1, "limit": 2})
    last = admin_client.get(USERS, {"page": 2, "limit": 2})

    assert set(_links(first)) == {"first", "next", "last"}
    assert set(_links(last)) == {"first", "prev", "last"}
    assert [user["name"] for user in last.json()] == ["Caio"]


def test_list_users_page_past_the_end_is_an_empty_array(admin_client, make_user):
    make_user(name="Bia")

    response = admin_client.get(USERS, {"page": 9, "limit": 10})

    assert response.status_code == 200
    assert response.json() == []
    assert response["X-Total-Count"] == "2"


def test_list_users_default_limit_is_25(admin_client, make_user):
    for index in range(29):
        make_user(name=f"Pessoa {index:02d}")

    response = admin_client.get(USERS)

    assert len(response.json()) == 25
    assert response["X-Total-Count"] == "30"
    assert _links(response)["next"]["page"] == ["2"]


def test_list_users_accepts_limit_bounds(admin_client, make_user):
    for index in range(3):
        make_user(name=f"Pessoa {index}")

    assert len(admin_client.get(USERS, {"limit": 1}).json()) == 1
    assert len(admin_client.get(USERS, {"limit": 100}).json()) == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "first"}, "page"),
    ],
)
def test_list_users_out_of_range_params_are_422(admin_client, params, field):
    response = admin_client.get(USERS, params)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list)
    assert len(body["message"]) == 1
    assert body["message"][0].startswith(field)


def test_list_users_excludes_deleted_users(admin_client, make_user):
    kept = make_user(name="Fica")
    gone = make_user(name="Sai")
    assert admin_client.delete(_detail(gone.pk)).status_code == 204

    response = admin_client.get(USERS)

    ids = [user["id"] for user in response.json()]
    assert str(kept.pk) in ids
    assert str(gone.pk) not in ids
    assert response["X-Total-Count"] == "2"


def _create_users(make_user, count: int) -> None:
    for index in range(count):
        make_user(name=f"Pessoa {index:02d}", is_online=index % 2 == 0)


@pytest.mark.parametrize("count", [3, 30])
def test_list_users_query_count_does_not_grow_with_users(admin_client, make_user, django_assert_num_queries, count):
    _create_users(make_user, count)

    # The access token's user, the COUNT and the page: the same for 3 users and for 30.
    with django_assert_num_queries(3):
        response = admin_client.get(USERS, {"limit": 100})

    assert len(response.json()) == count + 1


@pytest.mark.parametrize("count", [3, 30])
def test_list_online_query_count_does_not_grow_with_users(
    supervisor_client, make_user, django_assert_num_queries, count
):
    _create_users(make_user, count)

    with django_assert_num_queries(3):
        response = supervisor_client.get(ONLINE, {"limit": 100})

    assert len(response.json()) == (count + 1) // 2


# ------------------------------------------------------------------------------
# GET /api/users/me
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPERVISOR, Role.OPERATOR])
def test_me_returns_the_caller(client_for, make_user, role):
    me = make_user(role, email=f"{role.lower()}-me@example.com", name="Eu Mesmo")
    make_user(Role.OPERATOR, name="Outra Pessoa")

    response = client_for(me).get(ME)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["id"] == str(me.pk)
    assert body["email"] == me.email
    assert body["name"] == "Eu Mesmo"
    assert body["role"] == role


def test_me_with_token_of_inactive_user_is_401(client_for, make_user):
    me = make_user(Role.OPERATOR)
    client = client_for(me)
    User.objects.filter(pk=me.pk).update(is_active=False)

    response = client.get(ME)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


# ------------------------------------------------------------------------------
# GET /api/users/online
# ------------------------------------------------------------------------------


def test_online_lists_only_online_active_operators(supervisor_client, make_user):
    now = timezone.now()
    first = make_user(Role.OPERATOR, name="Zélia", is_online=True, online_since=now - timedelta(hours=2))
    second = make_user(Role.OPERATOR, name="Abel", is_online=True, online_since=now - timedelta(minutes=5))
    make_user(Role.OPERATOR, name="Offline")
    make_user(Role.OPERATOR, name="Inativa", is_online=True, online_since=now, is_active=False)
    make_user(Role.SUPERVISOR, name="Supervisora", is_online=True, online_since=now)
    make_user(Role.ADMIN, name="Admin Online", is_online=True, online_since=now)
    deleted = make_user(Role.OPERATOR, name="Excluída", is_online=True, online_since=now)
    User.objects.filter(pk=deleted.pk).update(deleted_at=now)

    response = supervisor_client.get(ONLINE)

    assert response.status_code == 200
    body = response.json()
    # Longest online first.
    assert [user["id"] for user in body] == [str(first.pk), str(second.pk)]
    assert all(set(user) == CONTRACT_KEYS for user in body)
    assert all(user["isOnline"] is True and user["role"] == "OPERATOR" for user in body)
    assert _parse_ts(body[0]["onlineSince"]) == _ms(now - timedelta(hours=2))
    assert response["X-Total-Count"] == "2"


def test_online_follows_operators_toggling_presence(supervisor_client, client_for, make_user):
    operator = make_user(Role.OPERATOR)
    operator_client = client_for(operator)

    assert supervisor_client.get(ONLINE).json() == []
    operator_client.patch(TOGGLE_ONLINE, {"isOnline": True}, format="json")
    assert [user["id"] for user in supervisor_client.get(ONLINE).json()] == [str(operator.pk)]
    operator_client.patch(TOGGLE_ONLINE, {"isOnline": False}, format="json")
    assert supervisor_client.get(ONLINE).json() == []


# ------------------------------------------------------------------------------
# PATCH /api/users/me/toggle-online
# ------------------------------------------------------------------------------


def test_toggle_online_sets_online_since(operator_client, operator_user):
    before = timezone.now()
    response = operator_client.patch(TOGGLE_ONLINE, {"isOnline": True}, format="json")
    after = timezone.now()

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["id"] == str(operator_user.pk)
    assert body["isOnline"] is True
    online_since = _parse_ts(body["onlineSince"])
    assert _ms(before) <= online_since <= after
    operator_user.refresh_from_db()
    assert operator_user.is_online is True
    assert _ms(operator_user.online_since) == online_since


def test_toggle_online_twice_keeps_the_first_online_since(operator_client, operator_user):
    first = operator_client.patch(TOGGLE_ONLINE, {"isOnline": True}, format="json").json()["onlineSince"]
    User.objects.filter(pk=operator_user.pk).update(online_since=timezone.now() - timedelta(hours=1))
    kept = User.objects.get(pk=operator_user.pk).online_since

    second = operator_client.patch(TOGGLE_ONLINE, {"isOnline": True}, format="json")

    assert second.status_code == 200
    assert second.json()["isOnline"] is True
    assert _parse_ts(second.json()["onlineSince"]) == _ms(kept)
    assert second.json()["onlineSince"] != first


def test_toggle_online_off_clears_online_since(operator_client, operator_user):
    operator_client.patch(TOGGLE_ONLINE, {"isOnline": True}, format="json")

    response = operator_client.patch(TOGGLE_ONLINE, {"isOnline": False}, format="json")

    assert response.status_code == 200
    assert response.json()["isOnline"] is False
    assert response.json()["onlineSince"] is None
    operator_user.refresh_from_db()
    assert (operator_user.is_online, operator_user.online_since) == (False, None)


def test_toggle_online_changes_only_the_caller(operator_client, make_user):
    colleague = make_user(Role.OPERATOR)

    operator_client.patch(TOGGLE_ONLINE, {"isOnline": True}, format="json")

    colleague.refresh_from_db()
    assert (colleague.is_online, colleague.online_since) == (False, None)


@pytest.mark.parametrize("payload", [{}, {"online": True}, {"isOnline": None}, {"isOnline": "maybe"}])
def test_toggle_online_without_a_boolean_is_422(operator_client, operator_user, payload):
    response = operator_client.patch(TOGGLE_ONLINE, payload, format="json")

    assert response.status_code == 422
    assert _validation_fields(response) == {"isOnline"}
    operator_user.refresh_from_db()
    assert operator_user.is_online is False


# ------------------------------------------------------------------------------
# PATCH /api/users/:id
# ------------------------------------------------------------------------------


def test_update_user_changes_only_the_fields_sent(admin_client, make_user):
    target = make_user(Role.OPERATOR, email="olga@example.com", name="Olga")
    User.objects.filter(pk=target.pk).update(updated_at=timezone.now() - timedelta(days=1))
    target.refresh_from_db()

    response = admin_client.patch(_detail(target.pk), {"name": "Olga Souza"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["name"] == "Olga Souza"
    assert body["email"] == "olga@example.com"
    assert body["role"] == "OPERATOR"
    assert body["isActive"] is True
    assert _parse_ts(body["updatedAt"]) > _ms(target.updated_at)
    assert _parse_ts(body["createdAt"]) == _ms(target.created_at)
    fresh = User.objects.get(pk=target.pk)
    assert (fresh.name, fresh.email, fresh.role) == ("Olga Souza", "olga@example.com", "OPERATOR")
    assert fresh.is_active is True
    assert fresh.password == target.password


def test_update_user_all_fields(admin_client, api_client, make_user):
    target = make_user(Role.OPERATOR, email="olga@example.com", name="Olga")

    response = admin_client.patch(
        _detail(target.pk),
        {"name": "Olga Lima", "email": "Olga.Lima@Example.com", "password": "outrasenha99", "role": "SUPERVISOR"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["email"], body["role"]) == ("Olga Lima", "olga.lima@example.com", "SUPERVISOR")
    assert _login(api_client, "olga.lima@example.com", "outrasenha99").status_code == 200


def test_update_user_empty_body_changes_nothing(admin_client, make_user):
    target = make_user(Role.SUPERVISOR, email="sara@example.com", name="Sara")

    response = admin_client.patch(_detail(target.pk), {}, format="json")

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["role"]) == ("Sara", "SUPERVISOR")


def test_update_user_email_conflict_is_409(admin_client, make_user):
    make_user(email="taken@example.com")
    target = make_user(email="mine@example.com", name="Meu Nome")

    response = admin_client.patch(_detail(target.pk), {"email": "TAKEN@example.com", "name": "Novo"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"statusCode": 409, "message": EMAIL_TAKEN, "error": "Conflict"}
    target.refresh_from_db()
    assert (target.email, target.name) == ("mine@example.com", "Meu Nome")


def test_update_user_to_own_email_in_other_case_is_not_a_conflict(admin_client, make_user):
    target = make_user(email="mine@example.com")

    response = admin_client.patch(_detail(target.pk), {"email": "MINE@Example.com"}, format="json")

    assert response.status_code == 200
    assert response.json()["email"] == "mine@example.com"


def test_update_user_unknown_id_is_404_in_contract_format(admin_client):
    response = admin_client.patch(_detail(uuid.uuid4()), {"name": "Ninguém"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_update_user_malformed_id_is_404_in_contract_format(admin_client):
    response = admin_client.patch(f"{USERS}/not-a-uuid", {"name": "Ninguém"}, format="json")

    assert response.status_code == 404
    body = response.json()
    assert (body["statusCode"], body["error"]) == (404, "Not Found")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": "curta"}, "password"),
        ({"role": "CEO"}, "role"),
        ({"email": "sem-arroba"}, "email"),
        ({"isActive": "talvez"}, "isActive"),
        ({"name": ""}, "name"),
    ],
)
def test_update_user_invalid_field_is_422_and_changes_nothing(admin_client, make_user, payload, field):
    target = make_user(Role.OPERATOR, email="olga@example.com", name="Olga")

    response = admin_client.patch(_detail(target.pk), payload, format="json")

    assert response.status_code == 422
    assert _validation_fields(response) == {field}
    fresh = User.objects.get(pk=target.pk)
    assert (fresh.name, fresh.email, fresh.role, fresh.is_active) == ("Olga", "olga@example.com", "OPERATOR", True)
    assert fresh.password == target.password


def test_update_user_password_change_ends_old_credentials_and_sessions(admin_client, api_client, make_user, password):
    target = make_user(Role.OPERATOR, email="olga@example.com")
    session = _login(api_client, "olga@example.com", password).json()["tokens"]
    other_session = tokens_for(target)
    assert _live_refresh_tokens(target) == 2

    response = admin_client.patch(_detail(target.pk), {"password": "nova-senha-123"}, format="json")

    assert response.status_code == 200
    assert _live_refresh_tokens(target) == 0
    old_login = _login(api_client, "olga@example.com", password)
    assert old_login.status_code == 401
    assert old_login.json() == {"statusCode": 401, "message": "Credenciais inválidas", "error": "Unauthorized"}
    for refresh_token in (session["refreshToken"], other_session["refresh"]):
        refreshed = api_client.post(REFRESH, {"refreshToken": refresh_token}, format="json")
        assert refreshed.status_code == 401
        assert refreshed.json()["message"] == "Refresh token inválido ou expirado"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {session['accessToken']}")
    assert api_client.get(ME).status_code == 401
    api_client.credentials()
    assert _login(api_client, "olga@example.com", "nova-senha-123").status_code == 200


def test_update_user_password_change_leaves_other_users_sessions_alone(admin_client, api_client, make_user, password):
    target = make_user(Role.OPERATOR, email="olga@example.com")
    bystander = make_user(Role.OPERATOR, email="bia@example.com")
    bystander_refresh = _login(api_client, "bia@example.com", password).json()["tokens"]["refreshToken"]

    admin_client.patch(_detail(target.pk), {"password": "nova-senha-123"}, format="json")

    assert _live_refresh_tokens(bystander) == 1

    refreshed = api_client.post(REFRESH, {"refreshToken": bystander_refresh}, format="json")
    assert refreshed.status_code == 200
    assert refreshed.json()["user"]["id"] == str(bystander.pk)


def test_update_user_deactivation_signs_the_user_out(admin_client, api_client, make_user, password):
    target = make_user(Role.OPERATOR, email="olga@example.com", is_online=True, online_since=timezone.now())
    session = _login(api_client, "olga@example.com", password).json()["tokens"]

    response = admin_client.patch(_detail(target.pk), {"isActive": False}, format="json")

    assert response.status_code == 200
    assert _live_refresh_tokens(target) == 0
    body = response.json()
    assert (body["isActive"], body["isOnline"], body["onlineSince"]) == (False, False, None)
    assert _login(api_client, "olga@example.com", password).status_code == 401
    assert api_client.post(REFRESH, {"refreshToken": session["refreshToken"]}, format="json").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {session['accessToken']}")
    assert api_client.get(ME).status_code == 401


def test_update_user_reactivation_lets_the_user_log_in_again(admin_client, api_client, make_user, password):
    target = make_user(Role.OPERATOR, email="olga@example.com", is_active=False)

    response = admin_client.patch(_detail(target.pk), {"isActive": True}, format="json")

    assert response.status_code == 200
    assert _login(api_client, "olga@example.com", password).status_code == 200


# ------------------------------------------------------------------------------
# DELETE /api/users/:id
# ------------------------------------------------------------------------------


def test_delete_user_is_204_without_body(admin_client, make_user):
    target = make_user(Role.OPERATOR)

    response = admin_client.delete(_detail(target.pk))

    assert response.status_code == 204
    assert response.content == b""


def test_delete_user_keeps_the_row_with_its_name(admin_client, make_user):
    target = make_user(
        Role.OPERATOR, email="olga@example.com", name="Olga Operadora", is_online=True, online_since=timezone.now()
    )
    before = timezone.now()

    admin_client.delete(_detail(target.pk))

    row = User.objects.get(pk=target.pk)
    assert row.name == "Olga Operadora"
    assert row.former_email == "olga@example.com"
    assert row.deleted_at is not None and row.deleted_at >= before
    assert (row.is_active, row.is_online, row.online_since) == (False, False, None)
    assert not row.has_usable_password()


def test_delete_user_disappears_from_lists(admin_client, make_user):
    target = make_user(Role.OPERATOR, is_online=True, online_since=timezone.now())
    assert str(target.pk) in [user["id"] for user in admin_client.get(ONLINE).json()]

    admin_client.delete(_detail(target.pk))

    assert str(target.pk) not in [user["id"] for user in admin_client.get(USERS).json()]
    assert str(target.pk) not in [user["id"] for user in admin_client.get(ONLINE).json()]


def test_delete_user_then_patch_and_delete_are_404(admin_client, make_user):
    target = make_user(Role.OPERATOR)
    admin_client.delete(_detail(target.pk))

    patched = admin_client.patch(_detail(target.pk), {"name": "Voltei"}, format="json")
    deleted_again = admin_client.delete(_detail(target.pk))

    assert patched.status_code == 404
    assert patched.json() == NOT_FOUND
    assert deleted_again.status_code == 404
    assert deleted_again.json() == NOT_FOUND
    assert User.objects.get(pk=target.pk).name != "Voltei"


def test_delete_user_ends_login_and_every_token(admin_client, api_client, make_user, password):
    target = make_user(Role.OPERATOR, email="olga@example.com")
    session = _login(api_client, "olga@example.com", password).json()["tokens"]

    admin_client.delete(_detail(target.pk))

    assert _live_refresh_tokens(target) == 0
    assert _login(api_client, "olga@example.com", password).status_code == 401
    assert api_client.post(REFRESH, {"refreshToken": session["refreshToken"]}, format="json").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {session['accessToken']}")
    me = api_client.get(ME)
    assert me.status_code == 401
    assert me.json() == UNAUTHORIZED


def test_delete_user_frees_the_email_for_a_new_user(admin_client, api_client, make_user):
    old = make_user(Role.OPERATOR, email="olga@example.com", name="Olga Antiga")
    admin_client.delete(_detail(old.pk))

    response = admin_client.post(
        USERS, _new_user_payload(email="OLGA@example.com", name="Olga Nova", password="novasenha1"), format="json"
    )

    assert response.status_code == 201
    assert response.json()["id"] != str(old.pk)
    assert response.json()["email"] == "olga@example.com"
    assert User.objects.get(pk=old.pk).name == "Olga Antiga"
    login = _login(api_client, "olga@example.com", "novasenha1")
    assert login.status_code == 200
    assert login.json()["user"]["id"] == response.json()["id"]


def test_delete_user_unknown_id_is_404(admin_client):
    response = admin_client.delete(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# ------------------------------------------------------------------------------
# The last active admin
# ------------------------------------------------------------------------------


def _assert_last_admin_refusal(response) -> None:
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "message": LAST_ADMIN, "error": "Bad Request"}


def test_last_admin_cannot_delete_themself(admin_client, admin_user, api_client, password):
    response = admin_client.delete(_detail(admin_user.pk))

    _assert_last_admin_refusal(response)
    admin_user.refresh_from_db()
    assert admin_user.deleted_at is None
    assert admin_user.is_active is True
    assert _login(api_client, "admin@example.com", password).status_code == 200


@pytest.mark.parametrize(
    "payload", [{"role": "SUPERVISOR"}, {"role": "OPERATOR"}, {"isActive": False}, {"role": "OPERATOR", "name": "X"}]
)
def test_last_admin_cannot_demote_or_deactivate_themself(admin_client, admin_user, payload):
    response = admin_client.patch(_detail(admin_user.pk), payload, format="json")

    _assert_last_admin_refusal(response)
    fresh = User.objects.get(pk=admin_user.pk)
    assert (fresh.role, fresh.is_active, fresh.name) == ("ADMIN", True, "Ana Admin")


def test_last_admin_may_still_edit_other_fields(admin_client, admin_user):
    response = admin_client.patch(
        _detail(admin_user.pk), {"name": "Ana Souza", "role": "ADMIN", "isActive": True}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["role"]) == ("Ana Souza", "ADMIN")


@pytest.mark.parametrize("other_admin", ["inactive", "deleted"])
def test_last_admin_rule_ignores_admins_that_are_not_active(admin_client, admin_user, make_user, other_admin):
    other = make_user(Role.ADMIN, is_active=other_admin != "inactive")
    if other_admin == "deleted":
        User.objects.filter(pk=other.pk).update(deleted_at=timezone.now(), is_active=False)

    _assert_last_admin_refusal(admin_client.delete(_detail(admin_user.pk)))
    _assert_last_admin_refusal(admin_client.patch(_detail(admin_user.pk), {"role": "OPERATOR"}, format="json"))


def test_admin_can_delete_themself_when_another_active_admin_exists(admin_client, admin_user, make_user, client_for):
    other = make_user(Role.ADMIN, email="other-admin@example.com")

    response = admin_client.delete(_detail(admin_user.pk))

    assert response.status_code == 204
    assert User.objects.get(pk=admin_user.pk).deleted_at is not None
    # The deleted admin's own token died with the account.
    assert admin_client.get(USERS).status_code == 401
    # And the remaining admin is now the last one.
    _assert_last_admin_refusal(client_for(other).delete(_detail(other.pk)))


@pytest.mark.parametrize("payload", [{"role": "SUPERVISOR"}, {"isActive": False}])
def test_admin_can_demote_or_deactivate_themself_when_another_active_admin_exists(
    admin_client, admin_user, make_user, payload
):
    make_user(Role.ADMIN, email="other-admin@example.com")

    response = admin_client.patch(_detail(admin_user.pk), payload, format="json")

    assert response.status_code == 200
    fresh = User.objects.get(pk=admin_user.pk)
    assert (fresh.role, fresh.is_active) == (payload.get("role", "ADMIN"), payload.get("isActive", True))


def test_admin_can_demote_another_admin_but_then_not_themself(admin_client, admin_user, make_user):
    other = make_user(Role.ADMIN, email="other-admin@example.com")

    demoted = admin_client.patch(_detail(other.pk), {"role": "SUPERVISOR"}, format="json")
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "SUPERVISOR"

    _assert_last_admin_refusal(admin_client.patch(_detail(admin_user.pk), {"role": "SUPERVISOR"}, format="json"))


def test_promoting_a_user_to_admin_lets_the_first_admin_step_down(admin_client, admin_user, make_user):
    future_admin = make_user(Role.SUPERVISOR)
    _assert_last_admin_refusal(admin_client.patch(_detail(admin_user.pk), {"role": "OPERATOR"}, format="json"))

    assert admin_client.patch(_detail(future_admin.pk), {"role": "ADMIN"}, format="json").status_code == 200
    response = admin_client.patch(_detail(admin_user.pk), {"role": "OPERATOR"}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "OPERATOR"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "who", "payload", "ok"),
    [
        ("patch", "each_other", {"role": "SUPERVISOR"}, 200),
        ("patch", "themselves", {"role": "OPERATOR"}, 200),
        ("patch", "themselves", {"isActive": False}, 200),
        ("delete", "each_other", None, 204),
        ("delete", "themselves", None, 204),
    ],
    ids=["demote-each-other", "demote-themselves", "deactivate-themselves", "delete-each-other", "delete-themselves"],
)
def test_two_admins_stepping_down_at_once_leave_one_admin_and_no_500(client_for, make_user, method, who, payload, ok):
    first = make_user(Role.ADMIN, email="first-admin@example.com")
    second = make_user(Role.ADMIN, email="second-admin@example.com")
    targets = (second, first) if who == "each_other" else (first, second)

    for _round in range(3):
        User.objects.filter(pk__in=[first.pk, second.pk]).update(role=Role.ADMIN, is_active=True, deleted_at=None)
        for admin in (first, second):
            admin.refresh_from_db()  # a deletion changed the password hash that tokens carry

        statuses = send_at_once(
            [
                (client_for(first), method, _detail(targets[0].pk), payload),
                (client_for(second), method, _detail(targets[1].pk), payload),
            ]
        )

        # One wins; the other is refused cleanly, never by a deadlock turned into a 500. Acting on
        # each other, the loser may also arrive after the winner's commit, no longer an admin (403)
        # or no longer a user (401).
        losers = {400} if who == "themselves" else {400, 401, 403}
        assert ok in statuses
        statuses.remove(ok)
        assert statuses[0] in losers
        assert User.objects.filter(role=Role.ADMIN, is_active=True, deleted_at__isnull=True).count() == 1
