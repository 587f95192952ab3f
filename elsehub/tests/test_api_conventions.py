"""API-wide conventions (contract sections 1, 2 and 16): error bodies, auth failures, rate limit,
pagination, timestamps and the OpenAPI document.
"""

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.test import APIClient

from accounts import selectors
from accounts.models import Role
from accounts.tests.factories import UserFactory, tokens_for

ERROR_KEYS = {"statusCode", "message", "error"}
PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MALFORMED_JSON = '{"email": "a@example.com", "password": '


def assert_contract_error(response, status: int, message=None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert b"<html" not in response.content.lower()
    assert b"Traceback" not in response.content
    body = json.loads(response.content)
    assert set(body) == ERROR_KEYS
    assert body["statusCode"] == status
    assert body["error"] == PHRASES[status]
    if message is not None:
        assert body["message"] == message
    return body


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens_for(user)['access']}"}


def anonymous(ip: str = "203.0.113.10") -> APIClient:
    return APIClient(REMOTE_ADDR=ip)


# ------------------------------------------------------------------------------
# Error bodies, one status at a time
# ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_error_400_malformed_json_body(api_client):
    response = api_client.post("/api/auth/login", MALFORMED_JSON, content_type="application/json")
    assert_contract_error(response, 400, "Corpo da requisição malformado: o JSON não pôde ser lido")


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer"], ids=["absent", "other-scheme", "empty"])
def test_error_401_missing_token(api_client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = api_client.get("/api/users/me", **extra)
    assert_contract_error(response, 401, "Token inválido ou ausente")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLWZvcmdlZA"],
    ids=["garbage", "unsigned-by-us"],
)
def test_error_401_garbage_token(api_client, token):
    response = api_client.get("/api/users/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_contract_error(response, 401, "Token inválido ou ausente")


@pytest.mark.django_db
def test_error_401_token_with_forged_signature(api_client, operator_user):
    header, payload, _signature = tokens_for(operator_user)["access"].split(".")
    forged = f"{header}.{payload}.{'A' * 43}"
    response = api_client.get("/api/users/me", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert_contract_error(response, 401, "Token inválido ou ausente")


@pytest.mark.django_db
def test_error_401_refresh_token_is_not_an_access_token(api_client, operator_user):
    response = api_client.get("/api/users/me", HTTP_AUTHORIZATION=f"Bearer {tokens_for(operator_user)['refresh']}")
    assert_contract_error(response, 401, "Token inválido ou ausente")


@pytest.mark.django_db
def test_error_401_expired_token(api_client, operator_user):
    issued = datetime.now(UTC)
    headers = bearer(operator_user)
    with time_machine.travel(issued + timedelta(seconds=890), tick=False):
        assert api_client.get("/api/users/me", **headers).status_code == 200
    with time_machine.travel(issued + timedelta(seconds=901), tick=False):
        response = api_client.get("/api/users/me", **headers)
    assert_contract_error(response, 401, "Token expirado")


@pytest.mark.django_db
def test_error_403_role_not_allowed(operator_client):
    response = operator_client.get("/api/users")
    assert_contract_error(response, 403, "Usuário não autorizado para executar esta ação")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/nope", "/api", "/api/users/not-a-uuid", "/api/auth/login/extra"])
def test_error_404_unknown_api_path(api_client, path):
    body = assert_contract_error(api_client.get(path), 404)
    assert body["message"] == f"Rota GET {path} não encontrada"


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["patch", "delete"])
def test_error_404_unknown_user_id(admin_client, method):
    response = getattr(admin_client, method)(f"/api/users/{uuid.uuid4()}", {"name": "X"}, format="json")
    assert_contract_error(response, 404, "Recurso não encontrado")


@pytest.mark.django_db
def test_error_404_deleted_user_id(admin_client, operator_user):
    assert admin_client.delete(f"/api/users/{operator_user.pk}").status_code == 204
    response = admin_client.patch(f"/api/users/{operator_user.pk}", {"name": "X"}, format="json")
    assert_contract_error(response, 404, "Recurso não encontrado")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "method", "path"),
    [
        ("anonymous", "delete", "/api/auth/login"),
        ("anonymous", "get", "/api/auth/login"),
        ("operator", "delete", "/api/users/me"),
        ("anonymous", "delete", "/api/users/me"),
        ("admin", "put", "/api/users"),
    ],
)
def test_error_405_method_not_implemented(api_client, operator_user, admin_user, who, method, path):
    # A method the view does not implement has no role rule: it must answer 405, not fail as a 500.
    extra = {"operator": bearer(operator_user), "admin": bearer(admin_user)}.get(who, {})
    response = getattr(api_client, method)(path, **extra)
    assert_contract_error(response, 405, f"Método {method.upper()} não permitido aqui")
    assert "Allow" in response


@pytest.mark.django_db
def test_error_409_duplicate_email(admin_client, operator_user):
    payload = {"name": "Outra", "email": "OPERATOR@example.com", "password": "senha-longa-1", "role": Role.OPERATOR}
    response = admin_client.post("/api/users", payload, format="json")
    assert_contract_error(response, 409, "Email já está em uso")


@pytest.mark.django_db
def test_error_409_duplicate_email_on_update(admin_client, operator_user, supervisor_user):
    response = admin_client.patch(f"/api/users/{supervisor_user.pk}", {"email": operator_user.email}, format="json")
    assert_contract_error(response, 409, "Email já está em uso")


@pytest.mark.django_db
def test_error_422_lists_one_sentence_per_invalid_field(admin_client):
    payload = {"name": "", "email": "not-an-email", "password": "short", "role": "KING"}
    body = assert_contract_error(admin_client.post("/api/users", payload, format="json"), 422)
    assert isinstance(body["message"], list)
    assert all(isinstance(sentence, str) and sentence for sentence in body["message"])
    named = {sentence.split(":", 1)[0] for sentence in body["message"]}
    assert named == {"name", "email", "password", "role"}


@pytest.mark.django_db
def test_error_422_missing_fields_are_named(api_client):
    body = assert_contract_error(api_client.post("/api/auth/login", {}, format="json"), 422)
    assert sorted(sentence.split(":", 1)[0] for sentence in body["message"]) == ["email", "password"]


@pytest.mark.django_db
def test_error_500_unhandled_exception_is_json_without_traceback(admin_client, monkeypatch):
    def explode():
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(selectors, "list_users", explode)
    response = admin_client.get("/api/users")
    assert_contract_error(response, 500, "Erro interno do servidor")
    assert b"internal detail" not in response.content
    assert b"RuntimeError" not in response.content


ERROR_SCENARIOS = {
    "400": ("post", "/api/auth/login", {"data": MALFORMED_JSON, "content_type": "application/json"}, 400),
    "401": ("get", "/api/users/me", {}, 401),
    "404": ("get", "/api/nope/deeper", {}, 404),
    "405": ("delete", "/api/auth/login", {}, 405),
    "422": ("post", "/api/auth/login", {"data": {"email": "x"}, "format": "json"}, 422),
}


@pytest.mark.django_db
@pytest.mark.parametrize("scenario", sorted(ERROR_SCENARIOS))
def test_error_body_stays_json_with_debug(api_client, settings, scenario):
    settings.DEBUG = True
    method, path, kwargs, status = ERROR_SCENARIOS[scenario]
    assert_contract_error(getattr(api_client, method)(path, **kwargs), status)


@pytest.mark.django_db
def test_error_500_stays_json_with_debug(admin_client, settings, monkeypatch):
    settings.DEBUG = True

    def explode():
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(selectors, "list_users", explode)
    response = admin_client.get("/api/users")
    assert_contract_error(response, 500, "Erro interno do servidor")
    assert b"internal detail" not in response.content


@pytest.mark.django_db
def test_error_messages_follow_accept_language(api_client, operator_user):
    response = api_client.get("/api/users/me", HTTP_ACCEPT_LANGUAGE="en")
    assert_contract_error(response, 401, "Invalid or missing token")
    response = api_client.get("/api/users", HTTP_ACCEPT_LANGUAGE="en", **bearer(operator_user))
    assert_contract_error(response, 403, "User is not authorised to perform this action")
    response = api_client.get("/api/users/me", HTTP_ACCEPT_LANGUAGE="pt-BR")
    assert_contract_error(response, 401, "Token inválido ou ausente")


@pytest.mark.django_db
def test_error_messages_default_to_portuguese(api_client):
    assert_contract_error(api_client.get("/api/users/me"), 401, "Token inválido ou ausente")


# ------------------------------------------------------------------------------
# Rate limiting (contract section 1)
# ------------------------------------------------------------------------------


@pytest.fixture
def rate_limit(settings):
    settings.RATE_LIMIT_MAX = 3
    settings.RATE_LIMIT_TTL = 60
    # Windows come from time.time(): frozen, no window edge can fall inside a test.
    with time_machine.travel(time.time(), tick=False) as traveller:
        yield traveller


def _remaining(response) -> int:
    return int(response["X-RateLimit-Remaining"])


@pytest.mark.django_db
def test_rate_limit_fourth_anonymous_request_gets_429(rate_limit):
    client = anonymous()
    responses = [client.get("/api/auth/registration-status") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert [_remaining(response) for response in responses] == [2, 1, 0]

    response = client.get("/api/auth/registration-status")
    reset = int(response["X-RateLimit-Reset"])
    assert_contract_error(response, 429, f"Muitas requisições. Tente novamente em {reset} segundos.")
    assert response["Retry-After"] == str(reset)
    assert 1 <= reset <= 60
    assert response["X-RateLimit-Limit"] == "3"
    assert _remaining(response) == 0


@pytest.mark.django_db
def test_rate_limit_headers_on_every_api_response(rate_limit, operator_user):
    client = anonymous()
    responses = [
        client.get("/api/auth/registration-status"),
        client.get("/api/users/me"),
        client.get("/api/nope"),
    ]
    assert [response.status_code for response in responses] == [200, 401, 404]
    for response in responses:
        assert response["X-RateLimit-Limit"] == "3"
        assert 1 <= int(response["X-RateLimit-Reset"]) <= 60
    assert [_remaining(response) for response in responses] == [2, 1, 0]


@pytest.mark.django_db
def test_rate_limit_counts_every_endpoint_together(rate_limit, operator_user):
    client = APIClient(REMOTE_ADDR="203.0.113.10", **bearer(operator_user))
    assert client.get("/api/users/me").status_code == 200
    assert client.get("/api/auth/profile").status_code == 200
    assert client.patch("/api/users/me/toggle-online", {"isOnline": True}, format="json").status_code == 200
    assert_contract_error(client.get("/api/users/me"), 429)


@pytest.mark.django_db
def test_rate_limit_anonymous_is_per_ip(rate_limit):
    first, second = anonymous("203.0.113.10"), anonymous("203.0.113.11")
    for _ in range(3):
        first.get("/api/auth/registration-status")
    assert first.get("/api/auth/registration-status").status_code == 429
    response = second.get("/api/auth/registration-status")
    assert response.status_code == 200
    assert _remaining(response) == 2


@pytest.mark.django_db
def test_rate_limit_signed_in_users_are_counted_per_user(rate_limit, operator_user, supervisor_user):
    same_ip = "203.0.113.10"
    olga = APIClient(REMOTE_ADDR=same_ip, **bearer(operator_user))
    sergio = APIClient(REMOTE_ADDR=same_ip, **bearer(supervisor_user))
    assert [_remaining(olga.get("/api/users/me")) for _ in range(3)] == [2, 1, 0]
    assert_contract_error(olga.get("/api/users/me"), 429)

    response = sergio.get("/api/users/me")
    assert response.status_code == 200
    assert _remaining(response) == 2
    # Nor do signed-in users spend the address's anonymous allowance.
    response = anonymous(same_ip).get("/api/auth/registration-status")
    assert response.status_code == 200
    assert _remaining(response) == 2


@pytest.mark.django_db
def test_rate_limit_invalid_token_counts_against_the_ip(rate_limit):
    client = anonymous()
    for token in ("one", "two", "three"):
        client.get("/api/users/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_contract_error(client.get("/api/auth/registration-status"), 429)


@pytest.mark.django_db
def test_rate_limit_window_resets_after_ttl(rate_limit):
    client = anonymous()
    for _ in range(3):
        client.get("/api/auth/registration-status")
    limited = client.get("/api/auth/registration-status")
    assert limited.status_code == 429

    # Waiting exactly Retry-After seconds is enough, and one second less is not.
    rate_limit.shift(int(limited["Retry-After"]) - 1)
    assert client.get("/api/auth/registration-status").status_code == 429
    rate_limit.shift(1)
    response = client.get("/api/auth/registration-status")
    assert response.status_code == 200
    assert _remaining(response) == 2


@pytest.mark.django_db
def test_rate_limit_retry_after_is_exact_at_every_offset(settings):
    settings.RATE_LIMIT_MAX = 1
    settings.RATE_LIMIT_TTL = 60
    # Windows are jittered per key and aligned to whole seconds: try each second of a window.
    for offset in range(60):
        client = anonymous(f"198.51.100.{offset}")
        with time_machine.travel(1_800_000_000.5 + offset, tick=False) as traveller:
            first = client.get("/api/auth/registration-status")
            limited = client.get("/api/auth/registration-status")
            assert (first.status_code, limited.status_code) == (200, 429)
            wait = int(limited["Retry-After"])
            assert wait == int(first["X-RateLimit-Reset"])
            assert 1 <= wait <= 60
            traveller.shift(wait - 1)
            assert client.get("/api/auth/registration-status").status_code == 429, offset
            traveller.shift(1)
            assert client.get("/api/auth/registration-status").status_code == 200, offset


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"), [("post", "/api/webhooks/anything"), ("post", "/api/webhooks/meta"), ("get", "/health")]
)
def test_rate_limit_exempts_webhooks_and_health(rate_limit, method, path):
    client = anonymous()
    for _ in range(6):
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code != 429
        for header in (*RATE_HEADERS, "Retry-After"):
            assert header not in response


# ------------------------------------------------------------------------------
# Pagination
# ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("limit=0", "limit deve estar entre 1 e 100"),
        ("limit=101", "limit deve estar entre 1 e 100"),
        ("limit=-5", "limit deve estar entre 1 e 100"),
        ("page=0", "page deve ser no mínimo 1"),
        ("page=abc", "page deve ser um número inteiro"),
        ("limit=1.5", "limit deve ser um número inteiro"),
    ],
)
def test_pagination_rejects_bad_parameters_with_422(admin_client, query, sentence):
    body = assert_contract_error(admin_client.get(f"/api/users?{query}"), 422)
    assert body["message"] == [sentence]


@pytest.mark.django_db
def test_pagination_reports_both_bad_parameters(admin_client):
    body = assert_contract_error(admin_client.get("/api/users?page=0&limit=101"), 422)
    assert sorted(sentence.split(" ", 1)[0] for sentence in body["message"]) == ["limit", "page"]


def _links(response) -> dict[str, dict]:
    links = re.findall(r'<([^>]+)>; rel="(\w+)"', response["Link"])
    return {rel: {key: values[0] for key, values in parse_qs(urlparse(url).query).items()} for url, rel in links}


@pytest.mark.django_db
def test_pagination_link_header_has_next_and_prev(admin_client):
    UserFactory.create_batch(3)  # four users with the admin

    first = admin_client.get("/api/users?limit=1")
    assert first.status_code == 200
    assert len(first.json()) == 1
    assert first["X-Total-Count"] == "4"
    links = _links(first)
    assert links["next"] == {"limit": "1", "page": "2"}
    assert "prev" not in links

    middle = _links(admin_client.get("/api/users?limit=1&page=2"))
    assert middle["prev"]["page"] == "1"
    assert middle["next"]["page"] == "3"

    last = _links(admin_client.get("/api/users?limit=1&page=4"))
    assert last["prev"]["page"] == "3"
    assert "next" not in last
    assert last["last"]["page"] == "4"


@pytest.mark.django_db
def test_pagination_single_page_has_no_next(admin_client):
    response = admin_client.get("/api/users")
    assert response.status_code == 200
    links = _links(response)
    assert "next" not in links
    assert "prev" not in links


# ------------------------------------------------------------------------------
# Timestamps
# ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_timestamps_are_iso_utc_with_milliseconds_and_z(api_client):
    # A non-UTC wall clock with sub-millisecond digits: output must be UTC, truncated to milliseconds.
    moment = datetime(2025, 1, 15, 7, 30, 0, 123456, tzinfo=ZoneInfo("America/Sao_Paulo"))
    with time_machine.travel(moment, tick=False):
        user = UserFactory(role=Role.OPERATOR)
        headers = bearer(user)
        me = api_client.get("/api/users/me", **headers).json()
        toggled = api_client.patch("/api/users/me/toggle-online", {"isOnline": True}, format="json", **headers).json()
        health = api_client.get("/health").json()
    assert me["createdAt"] == "2025-01-15T10:30:00.123Z"
    assert me["updatedAt"] == "2025-01-15T10:30:00.123Z"
    assert me["onlineSince"] is None
    assert toggled["onlineSince"] == "2025-01-15T10:30:00.123Z"
    assert health["timestamp"] == "2025-01-15T10:30:00.123Z"


@pytest.mark.django_db
def test_timestamps_in_lists_match_the_format(admin_client):
    for user in admin_client.get("/api/users").json():
        assert TIMESTAMP.fullmatch(user["createdAt"])
        assert TIMESTAMP.fullmatch(user["updatedAt"])


# ------------------------------------------------------------------------------
# OpenAPI schema and docs
# ------------------------------------------------------------------------------

SCHEMA_VIEWS = (SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView)


def _urlconf_operations(patterns=None, prefix: str = "") -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) for every DRF view under /api/ in the URLconf."""
    operations = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            operations |= _urlconf_operations(entry.url_patterns, route)
            continue
        view_class = getattr(entry.callback, "cls", None) if isinstance(entry, URLPattern) else None
        if not route.startswith("api/") or view_class is None or issubclass(view_class, SCHEMA_VIEWS):
            continue
        openapi_path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        for method in view_class.http_method_names:
            if method not in ("options", "head") and hasattr(view_class, method):
                operations.add((method.upper(), openapi_path))
    return operations


@pytest.fixture
def openapi(db, api_client) -> dict:
    response = api_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def _operations(document: dict):
    for openapi_path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield method.upper(), openapi_path, operation


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "accept"),
    [("?format=json", None), ("", "application/vnd.oai.openapi+json")],
    ids=["format-param", "accept-header"],
)
def test_openapi_schema_is_a_valid_openapi_3_document(api_client, query, accept):
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    response = api_client.get(f"/api/schema/{query}", **extra)
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    validate_schema(document)


def test_openapi_schema_contains_every_api_operation(openapi):
    expected = _urlconf_operations()
    assert ("PATCH", "/api/users/{user_id}") in expected
    documented = {(method, openapi_path) for method, openapi_path, _op in _operations(openapi)}
    assert documented == expected


def test_openapi_operations_state_their_roles(openapi):
    for method, openapi_path, operation in _operations(openapi):
        assert "**Roles:**" in operation.get("description", ""), (method, openapi_path)
    descriptions = {(method, path): operation["description"] for method, path, operation in _operations(openapi)}
    assert "**Roles:** ADMIN, SUPERVISOR." in descriptions[("GET", "/api/users")]
    assert "**Roles:** ADMIN." in descriptions[("DELETE", "/api/users/{user_id}")]
    assert "**Roles:** any authenticated user." in descriptions[("PUT", "/api/auth/change-password")]
    assert "**Roles:** public." in descriptions[("POST", "/api/auth/register")]


def test_openapi_protected_operations_declare_the_bearer_token(openapi):
    schemes = openapi["components"]["securitySchemes"]
    bearer_names = {
        name for name, scheme in schemes.items() if scheme == {**scheme, "type": "http", "scheme": "bearer"}
    }
    assert bearer_names
    for method, openapi_path, operation in _operations(openapi):
        required = {name for requirement in operation.get("security", []) for name in requirement}
        if "**Roles:** public." in operation["description"]:
            assert not required & bearer_names or {} in operation["security"], (method, openapi_path)
        else:
            assert required & bearer_names, (method, openapi_path)
            assert {"401", "403"} <= set(operation["responses"]), (method, openapi_path)


class _AssetCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("src", "href"):
            if tag in ("script", "link", "img") and attributes.get(name):
                self.urls.append(attributes[name])


@pytest.mark.django_db
def test_openapi_docs_page_uses_only_local_static_files(api_client):
    response = api_client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "http://" not in html
    assert "https://" not in html

    collector = _AssetCollector()
    collector.feed(html)
    assert any(url.endswith(".js") for url in collector.urls)
    assert any(url.endswith(".css") for url in collector.urls)
    for url in collector.urls:
        assert url.startswith("/static/"), url
        asset = api_client.get(url)
        assert asset.status_code == 200, url
        assert not asset["Content-Type"].startswith("text/html"), url
        asset.close()
    assert '"/api/schema/"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "patch", "delete"])
def test_error_404_unknown_api_path_is_json_for_writes_even_with_csrf_checks(method):
    from django.test import Client

    response = getattr(Client(enforce_csrf_checks=True), method)("/api/conversations//assign")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "Not Found"
