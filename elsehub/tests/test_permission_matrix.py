"""Who may call what: one hand-written row per API operation, checked against the URLconf and by real requests.

The table is written from the contract (sections 2, 4 and 5, and MAPPING.md for the endpoints the
contract is silent about), never read back from the views' own ``roles``: a view that widens its
rule, or a new endpoint without a row, fails here.
"""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver, get_resolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from accounts.models import Role
from accounts.tests.factories import UserFactory, tokens_for
from contacts.tests.factories import ContactFactory
from conversations.tests.factories import ConversationFactory, MessageFactory, TabulationFactory
from elsehub.api.permissions import ADMIN, OPERATOR, SUPERVISOR, RolePermission
from instances.models import SyncJob
from instances.tests.factories import ServiceInstanceFactory

PUBLIC = "PUBLIC"
AUTHENTICATED = "AUTHENTICATED"
ANONYMOUS = "anonymous"
CALLERS = [ANONYMOUS, OPERATOR, SUPERVISOR, ADMIN]

EXPECTED = {
    # Contract section 2, "Endpoints Públicos".
    ("POST", "api/auth/login"): PUBLIC,
    ("POST", "api/auth/refresh"): PUBLIC,
    # Not in the contract: the refresh token in the body is the credential, as for refresh.
    ("POST", "api/auth/logout"): PUBLIC,
    # MAPPING.md: self-registration (only with ALLOW_USER_REGISTRATION) and its status.
    ("POST", "api/auth/register"): PUBLIC,
    ("GET", "api/auth/registration-status"): PUBLIC,
    ("GET", "api/auth/profile"): AUTHENTICATED,
    ("PUT", "api/auth/change-password"): AUTHENTICATED,
    # Contract section 5.
    ("POST", "api/users"): {ADMIN},
    ("GET", "api/users"): {ADMIN, SUPERVISOR},
    ("GET", "api/users/me"): AUTHENTICATED,
    ("GET", "api/users/online"): {ADMIN, SUPERVISOR},
    ("PATCH", "api/users/me/toggle-online"): AUTHENTICATED,
    ("PATCH", "api/users/<uuid:user_id>"): {ADMIN},
    ("DELETE", "api/users/<uuid:user_id>"): {ADMIN},
    # Contract section 6.
    ("POST", "api/contacts"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/contacts"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/contacts/<uuid:contact_id>"): {ADMIN, SUPERVISOR, OPERATOR},
    ("PATCH", "api/contacts/<uuid:contact_id>"): {ADMIN, SUPERVISOR},
    ("DELETE", "api/contacts/<uuid:contact_id>"): {ADMIN, SUPERVISOR},
    ("POST", "api/contacts/import/csv"): {ADMIN, SUPERVISOR, OPERATOR},
    # Contract section 9 and MAPPING.md: supervisors watch and pair numbers; admins own them.
    ("POST", "api/service-instances"): {ADMIN},
    ("GET", "api/service-instances"): {ADMIN, SUPERVISOR},
    ("GET", "api/service-instances/orphans"): {ADMIN},
    ("DELETE", "api/service-instances/orphans"): {ADMIN},
    ("GET", "api/service-instances/<uuid:instance_id>"): {ADMIN, SUPERVISOR},
    ("PATCH", "api/service-instances/<uuid:instance_id>"): {ADMIN},
    ("DELETE", "api/service-instances/<uuid:instance_id>"): {ADMIN},
    ("GET", "api/service-instances/<uuid:instance_id>/qrcode"): {ADMIN, SUPERVISOR},
    ("POST", "api/service-instances/<uuid:instance_id>/connect"): {ADMIN, SUPERVISOR},
    ("GET", "api/service-instances/<uuid:instance_id>/status"): {ADMIN, SUPERVISOR},
    ("POST", "api/service-instances/<uuid:instance_id>/disconnect"): {ADMIN},
    ("POST", "api/service-instances/<uuid:instance_id>/restart"): {ADMIN, SUPERVISOR},
    ("POST", "api/service-instances/<uuid:instance_id>/recreate"): {ADMIN},
    ("GET", "api/service-instances/<uuid:instance_id>/profile"): {ADMIN, SUPERVISOR},
    ("GET", "api/service-instances/<uuid:instance_id>/contacts"): {ADMIN, SUPERVISOR},
    ("GET", "api/service-instances/<uuid:instance_id>/webhook"): {ADMIN, SUPERVISOR},
    ("POST", "api/service-instances/<uuid:instance_id>/webhook/reconfigure"): {ADMIN},
    ("POST", "api/service-instances/<uuid:instance_id>/sync"): {ADMIN, SUPERVISOR},
    ("GET", "api/service-instances/<uuid:instance_id>/sync/<uuid:sync_id>"): {ADMIN, SUPERVISOR},
    # Contract section 10: public, authenticated by the provider's signature or our webhook secret.
    ("GET", "api/webhooks/meta"): PUBLIC,
    ("POST", "api/webhooks/meta"): PUBLIC,
    ("POST", "api/webhooks/evolution"): PUBLIC,
    ("POST", "api/webhooks/evolution/<slug:event>"): PUBLIC,
    # Contract section 7.
    ("POST", "api/conversations"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/conversations"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/conversations/queue"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/conversations/<uuid:conversation_id>"): {ADMIN, SUPERVISOR, OPERATOR},
    ("PATCH", "api/conversations/<uuid:conversation_id>/assign"): {ADMIN, SUPERVISOR, OPERATOR},
    ("POST", "api/conversations/<uuid:conversation_id>/close"): {ADMIN, SUPERVISOR, OPERATOR},
    # Contract section 13.
    ("POST", "api/tabulations"): {ADMIN, SUPERVISOR},
    ("GET", "api/tabulations"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/tabulations/<uuid:tabulation_id>"): {ADMIN, SUPERVISOR, OPERATOR},
    ("PATCH", "api/tabulations/<uuid:tabulation_id>"): {ADMIN, SUPERVISOR},
    ("DELETE", "api/tabulations/<uuid:tabulation_id>"): {ADMIN, SUPERVISOR},
    # Contract section 8.
    ("POST", "api/messages/send"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/messages/conversation/<uuid:conversation_id>"): {ADMIN, SUPERVISOR, OPERATOR},
    ("GET", "api/messages/<uuid:message_id>"): {ADMIN, SUPERVISOR, OPERATOR},
}

# Bodies that get an allowed call past validation where the refusal under test would come later.
BODIES = {
    ("POST", "api/auth/register"): {
        "name": "Nova Pessoa",
        "email": "nova.pessoa@example.com",
        "password": "senha-longa-1",
    },
}

# Settings an allowed call needs so that a business refusal does not hide the role check:
# registration is off by default and then answers 403 "O cadastro de usuários está desabilitado".
ROW_SETTINGS = {
    ("POST", "api/auth/register"): {"ALLOW_USER_REGISTRATION": True},
}

# Public, but authenticated by a signature or a webhook secret instead of a user token: the
# matrix's unsigned call is a forgery, refused with 403 whoever the caller (never 401, since no
# user token is asked for). webhooks/tests cover the genuine calls.
WEBHOOK_ROWS = {
    ("GET", "api/webhooks/meta"),
    ("POST", "api/webhooks/meta"),
    ("POST", "api/webhooks/evolution"),
    ("POST", "api/webhooks/evolution/<slug:event>"),
}

SCHEMA_VIEWS = (SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView)
FORBIDDEN_BODY = {"statusCode": 403, "message": "Usuário não autorizado para executar esta ação", "error": "Forbidden"}
UNAUTHORIZED_BODY = {"statusCode": 401, "message": "Token inválido ou ausente", "error": "Unauthorized"}


def _api_routes(patterns=None, prefix: str = ""):
    """Yield (full route, view class) for every DRF view in the URLconf, walking includes."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "cls", None)
            if route.startswith("api/") and view_class is not None and not issubclass(view_class, SCHEMA_VIEWS):
                yield route, view_class


def _implemented_operations() -> set[tuple[str, str]]:
    operations = set()
    for route, view_class in _api_routes():
        for method in view_class.http_method_names:
            if method not in ("options", "head") and hasattr(view_class, method):
                operations.add((method.upper(), route))
    return operations


def _is_allowed(caller: str, expected) -> bool:
    if expected == PUBLIC:
        return True
    if caller == ANONYMOUS:
        return False
    return expected == AUTHENTICATED or caller in expected


def test_permission_matrix_covers_every_api_operation():
    operations = _implemented_operations()
    assert operations, "the URLconf walk found no API view at all"
    assert operations - EXPECTED.keys() == set(), "endpoints without a row in EXPECTED"
    assert EXPECTED.keys() - operations == set(), "rows in EXPECTED for endpoints that no longer exist"


def test_permission_matrix_sees_nested_and_parametrised_routes():
    # Guards the walk itself: include()d routes keep their prefix and converters stay in the template.
    operations = _implemented_operations()
    assert ("PATCH", "api/users/<uuid:user_id>") in operations
    assert not any(route.startswith(("api/schema", "api/docs")) for _method, route in operations)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "template"), sorted(EXPECTED))
def test_permission_matrix_allows_and_refuses_each_role(method, template, caller, settings, fake_provider):
    for name, value in ROW_SETTINGS.get((method, template), {}).items():
        setattr(settings, name, value)
    target = UserFactory(role=Role.OPERATOR, email="target@example.com")
    instance = ServiceInstanceFactory()
    path_values = {
        "user_id": str(target.pk),
        "contact_id": str(ContactFactory().pk),
        "instance_id": str(instance.pk),
        "sync_id": str(SyncJob.objects.create(instance=instance).pk),
        "event": "messages-upsert",
        "conversation_id": str(ConversationFactory(service_instance=instance).pk),
        "tabulation_id": str(TabulationFactory().pk),
        "message_id": str(MessageFactory().pk),
    }
    # A new path parameter without a real object here fails loudly (KeyError) rather than 404ing quietly.
    url = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: path_values[match.group(1)], template)

    client = APIClient()
    if caller != ANONYMOUS:
        user = UserFactory(role=caller, email=f"{caller.lower()}@example.com")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
    body = BODIES.get((method, template), {})
    response = getattr(client, method.lower())(url, body, format="json")

    expected = EXPECTED[(method, template)]
    if (method, template) in WEBHOOK_ROWS:
        assert expected == PUBLIC
        assert response.status_code == 403, response.content
        assert response.json()["statusCode"] == 403
    elif _is_allowed(caller, expected):
        # Past the role check: neither refused nor broken (a 405 would mean the row names a wrong method).
        assert response.status_code not in (401, 403, 405), response.content
        assert response.status_code < 500, response.content
    elif caller == ANONYMOUS:
        assert response.status_code == 401, response.content
        assert response.json() == UNAUTHORIZED_BODY
    else:
        assert response.status_code == 403, response.content
        assert response.json() == FORBIDDEN_BODY


_reached = []


class _ViewWithoutRoles(APIView):
    def get(self, request):
        _reached.append(request.path)
        return Response({"served": True})


class _ViewWithoutRuleForPost(APIView):
    roles = {"GET": PUBLIC}

    def get(self, request):
        return Response({"served": True})

    def post(self, request):
        _reached.append(request.path)
        return Response({"served": True})


# Used only by the test marked with @pytest.mark.urls(__name__).
urlpatterns = [
    path("api/unguarded", _ViewWithoutRoles.as_view()),
    path("api/half-guarded", _ViewWithoutRuleForPost.as_view()),
]


@pytest.mark.parametrize(
    ("view_class", "method"),
    [(_ViewWithoutRoles, "get"), (_ViewWithoutRuleForPost, "post")],
    ids=["no-roles", "no-rule"],
)
def test_role_permission_refuses_view_without_declaration(view_class, method):
    request = getattr(APIRequestFactory(), method)("/api/dummy")
    view = view_class()
    view.setup(request)
    with pytest.raises(ImproperlyConfigured):
        RolePermission().has_permission(view.initialize_request(request), view)


@pytest.mark.django_db
@pytest.mark.urls(__name__)
@pytest.mark.parametrize(("method", "url"), [("get", "/api/unguarded"), ("post", "/api/half-guarded")])
def test_role_permission_view_without_declaration_is_never_served(admin_client, method, url):
    # Fail closed end to end: even an admin gets a JSON 500 and the view's body never runs.
    _reached.clear()
    response = getattr(admin_client, method)(url, {}, format="json")
    assert response.status_code == 500
    assert response.json() == {
        "statusCode": 500,
        "message": "Erro interno do servidor",
        "error": "Internal Server Error",
    }
    assert _reached == []
