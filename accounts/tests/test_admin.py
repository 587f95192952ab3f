"""Django admin for users, driven as a person would: real logins on /admin/login/, real form posts."""

import pytest
from django.utils import timezone

from accounts.models import Role, User

LOGIN = "/admin/login/"
INDEX = "/admin/"
CHANGELIST = "/admin/accounts/user/"
ADD = "/admin/accounts/user/add/"
LAST_ADMIN = "Esta alteração deixaria o sistema sem nenhum administrador ativo"
EMAIL_TAKEN = "Email já está em uso"


def _change_url(user) -> str:
    return f"{CHANGELIST}{user.pk}/change/"


def _delete_url(user) -> str:
    return f"{CHANGELIST}{user.pk}/delete/"


def _sign_in(client, email: str, password: str):
    return client.post(LOGIN, {"username": email, "password": password, "next": INDEX})


def _signed_in_as(client, make_user, password, role: str, **kwargs):
    # A fixed name: a random one could match the searches below ("Lima" is a common surname).
    kwargs.setdefault("name", "Ana Admin")
    user = make_user(role, **kwargs)
    response = _sign_in(client, user.email, password)
    assert response.status_code == 302, "the admin sign-in must succeed for this test"
    return user


def _listed_emails(response) -> set[str]:
    return {user.email for user in response.context["cl"].result_list}


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _action_names(response) -> list[str]:
    action_form = response.context["action_form"]  # None when the user may run no action at all
    return [name for name, _label in action_form.fields["action"].choices] if action_form else []


def _change_form(user, **overrides) -> dict:
    data = {
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "is_active": "on" if user.is_active else "",
        "new_password": "",
        "_save": "Salvar",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _form_errors(response) -> list[str]:
    form = response.context["adminform"].form
    return [str(error) for errors in form.errors.values() for error in errors]


# ------------------------------------------------------------------------------
# Signing in
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPERVISOR])
def test_admin_login_staff_roles_reach_the_index(client, make_user, password, role):
    user = make_user(role, email="staff@example.com")

    response = _sign_in(client, "staff@example.com", password)

    assert response.status_code == 302
    assert response["Location"] == INDEX
    assert client.session["_auth_user_id"] == str(user.pk)
    index = client.get(INDEX)
    assert index.status_code == 200
    apps = {app["app_label"]: {model["object_name"] for model in app["models"]} for app in index.context["app_list"]}
    assert "User" in apps["accounts"]
    # Refresh-token bookkeeping is for admins only.
    assert ("token_blacklist" in apps) is (role == Role.ADMIN)


def test_admin_login_email_is_case_insensitive(client, make_user, password):
    user = make_user(Role.ADMIN, email="admin@example.com")

    response = _sign_in(client, "  ADMIN@Example.com", password)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def _assert_login_refused(client, response) -> None:
    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session
    index = client.get(INDEX)
    assert index.status_code == 302
    assert index["Location"].startswith(LOGIN)


def test_admin_login_refuses_operators(client, make_user, password):
    make_user(Role.OPERATOR, email="operator@example.com")

    _assert_login_refused(client, _sign_in(client, "operator@example.com", password))


def test_admin_login_refuses_a_wrong_password(client, make_user):
    make_user(Role.ADMIN, email="admin@example.com")

    _assert_login_refused(client, _sign_in(client, "admin@example.com", "not-the-password"))


def test_admin_login_refuses_inactive_staff(client, make_user, password):
    make_user(Role.ADMIN, email="admin@example.com", is_active=False)

    _assert_login_refused(client, _sign_in(client, "admin@example.com", password))


def test_admin_login_refuses_a_deleted_admin(client, make_user, password):
    make_user(Role.ADMIN, email="keeper@example.com")
    gone = make_user(Role.ADMIN, email="gone@example.com")
    _signed_in_as(client, make_user, password, Role.ADMIN)
    client.post(_delete_url(gone), {"post": "yes"})
    client.logout()

    _assert_login_refused(client, _sign_in(client, "gone@example.com", password))


def test_admin_session_ends_when_the_user_becomes_an_operator(client, make_user, password):
    user = _signed_in_as(client, make_user, password, Role.SUPERVISOR)
    assert client.get(INDEX).status_code == 200

    User.objects.filter(pk=user.pk).update(role=Role.OPERATOR)

    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


# ------------------------------------------------------------------------------
# The users changelist
# ------------------------------------------------------------------------------


@pytest.fixture
def people(make_user):
    """A small staff: one of each role, an inactive one, one online, and one deleted."""
    return {
        "carla": make_user(
            Role.OPERATOR, name="Carla Dias", email="carla@example.com", is_online=True, online_since=timezone.now()
        ),
        "bruno": make_user(Role.SUPERVISOR, name="Bruno Reis", email="bruno@acme.test"),
        "dora": make_user(Role.OPERATOR, name="Dora Lima", email="dora@example.com", is_active=False),
        "gone": make_user(
            Role.OPERATOR, name="Gustavo Saiu", email="gustavo@example.com", deleted_at=timezone.now(), is_active=False
        ),
    }


def test_admin_changelist_lists_alive_users(client, make_user, password, people):
    _signed_in_as(client, make_user, password, Role.ADMIN, email="admin@example.com")

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert _listed_emails(response) == {"admin@example.com", "carla@example.com", "bruno@acme.test", "dora@example.com"}
    assert "Gustavo Saiu" not in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("carla", {"carla@example.com"}),
        ("Reis", {"bruno@acme.test"}),
        ("acme", {"bruno@acme.test"}),
        ("LIMA", {"dora@example.com"}),
        ("Gustavo", set()),
        ("nobody-here", set()),
    ],
)
def test_admin_changelist_search(client, make_user, password, people, query, expected):
    _signed_in_as(client, make_user, password, Role.ADMIN, email="admin@example.com")

    response = client.get(CHANGELIST, {"q": query})

    assert response.status_code == 200
    assert _listed_emails(response) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"role__exact": "SUPERVISOR"}, {"bruno@acme.test"}),
        ({"role__exact": "OPERATOR"}, {"carla@example.com", "dora@example.com"}),
        ({"role__exact": "ADMIN"}, {"admin@example.com"}),
        ({"is_active__exact": "0"}, {"dora@example.com"}),
        ({"is_online__exact": "1"}, {"carla@example.com"}),
        ({"role__exact": "OPERATOR", "is_active__exact": "1"}, {"carla@example.com"}),
    ],
)
def test_admin_changelist_filters(client, make_user, password, people, params, expected):
    _signed_in_as(client, make_user, password, Role.ADMIN, email="admin@example.com")

    response = client.get(CHANGELIST, params)

    assert response.status_code == 200
    assert _listed_emails(response) == expected


# ------------------------------------------------------------------------------
# Supervisors: read only
# ------------------------------------------------------------------------------


def test_admin_supervisor_sees_the_user_list(client, make_user, password, people):
    _signed_in_as(client, make_user, password, Role.SUPERVISOR, email="sup@example.com")

    response = client.get(CHANGELIST, {"q": "example.com"})

    assert response.status_code == 200
    assert _listed_emails(response) == {"sup@example.com", "carla@example.com", "dora@example.com"}
    assert response.context["has_add_permission"] is False
    assert "delete_selected_users" not in _action_names(response)


def test_admin_supervisor_cannot_add_users(client, make_user, password):
    _signed_in_as(client, make_user, password, Role.SUPERVISOR)

    assert client.get(ADD).status_code == 403
    response = client.post(
        ADD,
        {"name": "Novo", "email": "novo@example.com", "role": "ADMIN", "is_active": "on", "password": "senha-forte-1"},
    )

    assert response.status_code == 403
    assert not User.objects.filter(email="novo@example.com").exists()


def test_admin_supervisor_change_page_is_read_only(client, make_user, password, people):
    _signed_in_as(client, make_user, password, Role.SUPERVISOR)
    carla = people["carla"]

    page = client.get(_change_url(carla))
    response = client.post(_change_url(carla), _change_form(carla, name="Carla Mudada", role="ADMIN"))

    assert page.status_code == 200
    assert "Carla Dias" in page.content.decode()
    assert response.status_code == 403
    carla.refresh_from_db()
    assert (carla.name, carla.role) == ("Carla Dias", "OPERATOR")


def test_admin_supervisor_cannot_delete_users(client, make_user, password, people):
    _signed_in_as(client, make_user, password, Role.SUPERVISOR)
    carla = people["carla"]

    delete_page = client.post(_delete_url(carla), {"post": "yes"})
    action = client.post(CHANGELIST, {"action": "delete_selected_users", "_selected_action": [str(carla.pk)]})

    assert delete_page.status_code == 403
    assert action.status_code in {200, 302}
    carla.refresh_from_db()
    assert carla.deleted_at is None


# ------------------------------------------------------------------------------
# Admins: add, change, delete
# ------------------------------------------------------------------------------


def test_admin_adds_a_user_through_the_form(client, make_user, password, api_client):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    form = client.get(ADD)
    assert form.status_code == 200
    assert set(form.context["adminform"].form.fields) == {"name", "email", "role", "is_active", "password"}

    response = client.post(
        ADD,
        {
            "name": " Nina Nova ",
            "email": "Nina@Example.com",
            "role": "SUPERVISOR",
            "is_active": "on",
            "password": "senha-forte-1",
            "_save": "Salvar",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == CHANGELIST
    user = User.objects.get(email="nina@example.com")
    assert (user.name, user.role, user.is_active) == ("Nina Nova", "SUPERVISOR", True)
    assert user.password != "senha-forte-1"
    assert user.check_password("senha-forte-1")
    login = api_client.post(
        "/api/auth/login", {"email": "nina@example.com", "password": "senha-forte-1"}, format="json"
    )
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "SUPERVISOR"


def test_admin_add_form_refuses_a_taken_email(client, make_user, password):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    make_user(Role.OPERATOR, email="taken@example.com")

    response = client.post(
        ADD,
        {
            "name": "Outra",
            "email": "TAKEN@example.com",
            "role": "OPERATOR",
            "is_active": "on",
            "password": "senha-forte-1",
        },
    )

    assert response.status_code == 200
    assert EMAIL_TAKEN in _form_errors(response)
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1


def test_admin_add_form_refuses_a_short_password(client, make_user, password):
    _signed_in_as(client, make_user, password, Role.ADMIN)

    response = client.post(
        ADD, {"name": "Nina", "email": "nina@example.com", "role": "OPERATOR", "is_active": "on", "password": "curta"}
    )

    assert response.status_code == 200
    assert "password" in response.context["adminform"].form.errors
    assert not User.objects.filter(email="nina@example.com").exists()


def test_admin_changes_a_user_and_sets_a_new_password(client, make_user, password, api_client):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    carla = make_user(Role.OPERATOR, name="Carla", email="carla@example.com")
    page = client.get(_change_url(carla))
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields) == {"name", "email", "role", "is_active", "new_password"}

    response = client.post(
        _change_url(carla), _change_form(carla, name="Carla Souza", role="SUPERVISOR", new_password="trocada-123")
    )

    assert response.status_code == 302
    carla.refresh_from_db()
    assert (carla.name, carla.role) == ("Carla Souza", "SUPERVISOR")
    assert carla.check_password("trocada-123")
    old = api_client.post("/api/auth/login", {"email": "carla@example.com", "password": password}, format="json")
    assert old.status_code == 401


def test_admin_change_without_new_password_keeps_the_password(client, make_user, password):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    carla = make_user(Role.OPERATOR, name="Carla", email="carla@example.com")

    response = client.post(_change_url(carla), _change_form(carla, name="Carla Souza"))

    assert response.status_code == 302
    carla.refresh_from_db()
    assert carla.name == "Carla Souza"
    assert carla.check_password(password)


@pytest.mark.parametrize("change", [{"role": "OPERATOR"}, {"role": "SUPERVISOR"}, {"is_active": None}])
def test_admin_last_admin_refusal_is_a_form_error(client, make_user, password, change):
    me = _signed_in_as(client, make_user, password, Role.ADMIN, name="Ana Admin")

    response = client.post(_change_url(me), _change_form(me, name="Ana Mudou", **change))

    assert response.status_code == 200
    assert LAST_ADMIN in _form_errors(response)
    me.refresh_from_db()
    assert (me.name, me.role, me.is_active) == ("Ana Admin", "ADMIN", True)


def test_admin_can_step_down_when_another_admin_exists(client, make_user, password):
    me = _signed_in_as(client, make_user, password, Role.ADMIN)
    make_user(Role.ADMIN)

    response = client.post(_change_url(me), _change_form(me, role="SUPERVISOR"))

    assert response.status_code == 302
    me.refresh_from_db()
    assert me.role == "SUPERVISOR"


def test_admin_delete_action_soft_deletes(client, make_user, password, people):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    carla, bruno = people["carla"], people["bruno"]

    response = client.post(
        CHANGELIST,
        {"action": "delete_selected_users", "_selected_action": [str(carla.pk), str(bruno.pk)], "index": "0"},
        follow=True,
    )

    assert response.status_code == 200
    assert "2 usuário(s) excluído(s)." in _messages(response)
    for person, email in ((carla, "carla@example.com"), (bruno, "bruno@acme.test")):
        row = User.objects.get(pk=person.pk)
        assert row.deleted_at is not None
        assert row.name == person.name
        assert row.former_email == email
        assert row.is_active is False
    assert {"carla@example.com", "bruno@acme.test"}.isdisjoint(_listed_emails(client.get(CHANGELIST)))
    assert User.objects.filter(pk=people["dora"].pk, deleted_at__isnull=True).exists()


def test_admin_stock_bulk_delete_is_not_offered(client, make_user, password, people):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    carla = people["carla"]

    page = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [str(carla.pk)], "post": "yes"})

    assert "delete_selected_users" in _action_names(page)
    assert "delete_selected" not in _action_names(page)
    assert User.objects.filter(pk=carla.pk, deleted_at__isnull=True).exists()


def test_admin_delete_action_refuses_the_last_admin_with_a_message(client, make_user, password, people):
    me = _signed_in_as(client, make_user, password, Role.ADMIN)
    carla = people["carla"]

    response = client.post(
        CHANGELIST,
        {"action": "delete_selected_users", "_selected_action": [str(me.pk), str(carla.pk)], "index": "0"},
        follow=True,
    )

    assert response.status_code == 200
    messages = _messages(response)
    assert any(LAST_ADMIN in message for message in messages)
    assert "1 usuário(s) excluído(s)." in messages
    me.refresh_from_db()
    assert (me.deleted_at, me.is_active) == (None, True)
    assert User.objects.get(pk=carla.pk).deleted_at is not None


def test_admin_delete_page_soft_deletes(client, make_user, password):
    _signed_in_as(client, make_user, password, Role.ADMIN)
    carla = make_user(Role.OPERATOR, name="Carla Dias", email="carla@example.com")

    confirm = client.get(_delete_url(carla))
    response = client.post(_delete_url(carla), {"post": "yes"})

    assert confirm.status_code == 200
    assert response.status_code == 302
    row = User.objects.get(pk=carla.pk)
    assert (row.name, row.former_email) == ("Carla Dias", "carla@example.com")
    assert row.deleted_at is not None
    assert client.get(_change_url(carla)).status_code == 302  # gone: admin redirects away from a missing object


def test_admin_delete_page_refuses_the_last_admin_without_a_500(client, make_user, password):
    me = _signed_in_as(client, make_user, password, Role.ADMIN)

    response = client.post(_delete_url(me), {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert any(LAST_ADMIN in message for message in _messages(response))
    me.refresh_from_db()
    assert (me.deleted_at, me.is_active) == (None, True)
    assert client.get(INDEX).status_code == 200
