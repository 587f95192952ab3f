"""Django admin for the webhook inbox: list, filters, read-only pretty payload, and Replay."""

import json

import pytest

from accounts.models import Role
from webhooks import services
from webhooks.models import EventState, WebhookEvent
from webhooks.tests.conftest import raw

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/webhooks/webhookevent/"


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def event(evolution_instance):
    body = raw("evolution", "connection_update__open.json")
    return services.receive_event(
        provider=evolution_instance.provider,
        instance=evolution_instance,
        event_type="connection.update",
        payload=json.loads(body),
        raw_body=body,
    )


def test_admin_changelist_lists_events(staff_client, event):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [event]
    html = response.content.decode()
    assert "connection.update" in html
    assert str(event.service_instance) in html


@pytest.mark.parametrize(
    "query",
    ["state__exact=pending", "provider=EVOLUTION_API", "q=connection"],
    ids=["state", "provider", "search"],
)
def test_admin_changelist_filters_and_search_find_the_event(staff_client, event, query):
    response = staff_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [event]


def test_admin_changelist_filter_by_instance(staff_client, event, meta_instance):
    response = staff_client.get(f"{CHANGELIST}?service_instance__id__exact={meta_instance.pk}")
    assert list(response.context["cl"].result_list) == []
    response = staff_client.get(f"{CHANGELIST}?service_instance__id__exact={event.service_instance_id}")
    assert list(response.context["cl"].result_list) == [event]


def test_admin_detail_shows_the_payload_read_only_as_pretty_json(staff_client, event):
    response = staff_client.get(f"{CHANGELIST}{event.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<pre" in html
    assert "&quot;profileName&quot;: &quot;Acme Support&quot;" in html
    assert 'name="payload"' not in html
    assert 'name="_save"' not in html


def test_admin_cannot_add_or_change_events(staff_client, event):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
    response = staff_client.post(f"{CHANGELIST}{event.pk}/change/", {"payload": "{}", "_save": "Salvar"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.payload["event"] == "connection.update"


def test_admin_replay_requeues_and_processes_again(staff_client, event, django_capture_on_commit_callbacks):
    services.process_event(event_id=event.pk)
    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=3)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(
            CHANGELIST, {"action": "replay_action", "_selected_action": [event.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "1 evento(s) de webhook enviado(s) de novo para processamento." in response.content.decode()
    assert callbacks
    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    assert event.attempts == 0


def test_admin_replay_is_offered_to_supervisors(client, make_user, event):
    client.force_login(make_user(Role.SUPERVISOR, email="sup@example.com"))
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    choices = [name for name, _label in response.context["action_form"].fields["action"].choices]
    assert "replay_action" in choices


def test_admin_is_closed_to_operators(client, make_user, event):
    client.force_login(make_user(Role.OPERATOR, email="op@example.com"))
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
