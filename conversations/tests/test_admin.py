"""Django admin for conversations, tabulations and closures: read-only history, writes through the services."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone

from contacts.tests.factories import ContactFactory
from conversations.models import ChatStatus, Conversation, ConversationClosure, Direction, Tabulation, Via
from conversations.tests.factories import ConversationFactory, MessageFactory, TabulationFactory

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/admin/conversations/conversation/"
TABULATIONS = "/admin/conversations/tabulation/"
CLOSURES = "/admin/conversations/conversationclosure/"


@pytest.fixture
def staff_client(client, supervisor_user):
    client.force_login(supervisor_user)
    return client


def _listed(response) -> list:
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# ------------------------------------------------------------------------------
# Conversations
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [("joao", {"joao"}), ("CONCEIÇÃO", {"maria"}), ("99999", {"joao"})])
def test_admin_conversation_changelist_search_by_contact(staff_client, query, expected):
    conversations = {
        "joao": ConversationFactory(contact=ContactFactory(name="João Silva", phone="+5514999999999")),
        "maria": ConversationFactory(contact=ContactFactory(name="Maria Conceição", phone="+5511988887777")),
    }

    listed = _listed(staff_client.get(CONVERSATIONS, {"q": query}))

    assert {conversation.pk for conversation in listed} == {conversations[key].pk for key in expected}


def test_admin_conversation_changelist_filters_by_status(staff_client):
    ConversationFactory()
    closed = ConversationFactory(status=ChatStatus.CLOSED)

    listed = _listed(staff_client.get(CONVERSATIONS, {"status__exact": "CLOSED"}))

    assert [conversation.pk for conversation in listed] == [closed.pk]


def test_admin_conversation_page_is_read_only_with_messages_in_time_order(staff_client):
    conversation = ConversationFactory()
    now = timezone.now()
    later = MessageFactory(conversation=conversation, content="segunda", timestamp=now)
    earlier = MessageFactory(
        conversation=conversation,
        content="primeira",
        direction=Direction.OUTBOUND,
        via=Via.CHAT_MANUAL,
        timestamp=now - timedelta(minutes=1),
    )

    response = staff_client.get(f"{CONVERSATIONS}{conversation.pk}/change/")

    assert response.status_code == 200
    inline = response.context["inline_admin_formsets"][0]
    assert [form.original.pk for form in inline] == [earlier.pk, later.pk]
    assert not response.context["has_change_permission"]
    html = response.content.decode()
    assert html.index("primeira") < html.index("segunda")
    assert staff_client.get(f"{CONVERSATIONS}add/").status_code == 403


def test_admin_conversation_close_action_asks_for_a_tabulation_then_closes(staff_client, supervisor_user):
    queued, other = ConversationFactory(), ConversationFactory()
    tabulation = TabulationFactory(name="Venda Realizada")
    TabulationFactory(name="Apagada", deleted_at=timezone.now())
    selection = {"action": "close_with_tabulation", ACTION_CHECKBOX_NAME: [str(queued.pk), str(other.pk)]}

    page = staff_client.post(CONVERSATIONS, selection)

    assert page.status_code == 200
    assert list(page.context["form"].fields["tabulation"].queryset) == [tabulation]

    response = staff_client.post(
        CONVERSATIONS, {**selection, "apply": "1", "tabulation": str(tabulation.pk)}, follow=True
    )

    assert "2 conversa(s) fechada(s)." in _messages(response)
    for conversation in (queued, other):
        conversation.refresh_from_db()
        assert (conversation.status, conversation.tabulation_id) == (ChatStatus.CLOSED, tabulation.pk)
        assert ConversationClosure.objects.get(conversation=conversation).closed_by_id == supervisor_user.pk


def test_admin_conversation_close_action_reports_an_already_closed_one(staff_client):
    closed = ConversationFactory(status=ChatStatus.CLOSED, end_time=timezone.now())
    tabulation = TabulationFactory()

    response = staff_client.post(
        CONVERSATIONS,
        {
            "action": "close_with_tabulation",
            ACTION_CHECKBOX_NAME: [str(closed.pk)],
            "apply": "1",
            "tabulation": str(tabulation.pk),
        },
        follow=True,
    )

    assert any("Conversa já está fechada" in message for message in _messages(response))
    assert not ConversationClosure.objects.exists()


# ------------------------------------------------------------------------------
# Tabulations
# ------------------------------------------------------------------------------


def test_admin_tabulation_add_goes_through_the_service(staff_client):
    response = staff_client.post(f"{TABULATIONS}add/", {"name": "  Venda Realizada ", "_save": "Salvar"})

    assert response.status_code == 302
    assert Tabulation.objects.get().name == "Venda Realizada"


def test_admin_tabulation_duplicate_name_shows_on_the_form(staff_client):
    TabulationFactory(name="Venda Realizada")

    response = staff_client.post(f"{TABULATIONS}add/", {"name": "VENDA REALIZADA", "_save": "Salvar"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"name": ["Tabulação já existe"]}
    assert Tabulation.objects.count() == 1


def test_admin_tabulation_delete_is_soft_even_when_conversations_use_it(staff_client):
    tabulation = TabulationFactory(name="Venda Realizada")
    conversation = ConversationFactory(status=ChatStatus.CLOSED, tabulation=tabulation)

    confirm = staff_client.get(f"{TABULATIONS}{tabulation.pk}/delete/")
    assert confirm.status_code == 200
    assert not confirm.context["protected"]
    response = staff_client.post(f"{TABULATIONS}{tabulation.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    tabulation.refresh_from_db()
    assert tabulation.deleted_at is not None
    conversation.refresh_from_db()
    assert conversation.tabulation_id == tabulation.pk
    deleted = _listed(staff_client.get(TABULATIONS, {"state": "deleted"}))
    assert [item.pk for item in deleted] == [tabulation.pk]
    assert _listed(staff_client.get(TABULATIONS, {"state": "live"})) == []
    page = staff_client.get(f"{CONVERSATIONS}{conversation.pk}/change/")
    assert "Venda Realizada (excluída)" in page.content.decode()


def test_admin_tabulation_bulk_delete_is_soft(staff_client):
    tabulations = [TabulationFactory(), TabulationFactory()]
    ConversationFactory(status=ChatStatus.CLOSED, tabulation=tabulations[0])

    response = staff_client.post(
        TABULATIONS,
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(t.pk) for t in tabulations], "post": "yes"},
    )

    assert response.status_code == 302
    assert Tabulation.objects.filter(deleted_at__isnull=False).count() == 2


# ------------------------------------------------------------------------------
# Closures
# ------------------------------------------------------------------------------


def test_admin_closure_changelist_is_read_only(staff_client, supervisor_client):
    conversation = ConversationFactory()
    tabulation = TabulationFactory()
    supervisor_client.post(
        f"/api/conversations/{conversation.pk}/close", {"tabulationId": str(tabulation.pk)}, format="json"
    )
    closure = ConversationClosure.objects.get()

    assert [item.pk for item in _listed(staff_client.get(CLOSURES))] == [closure.pk]
    assert staff_client.get(f"{CLOSURES}{closure.pk}/change/").status_code == 200
    assert staff_client.get(f"{CLOSURES}add/").status_code == 403
    assert staff_client.post(f"{CLOSURES}{closure.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Conversation.objects.get(pk=conversation.pk).status == ChatStatus.CLOSED
