"""Reads of conversations and messages, with the permission rule built in.

Operators see the conversations assigned to them and the queue (conversations nobody has taken);
supervisors and admins see everything. A conversation the user may not see does not exist for
them: ``Http404``, never 403, so ids cannot be probed.
"""

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import Role, User
from contacts.models import Contact
from contacts.selectors import search_filter
from conversations.models import ChatStatus, Conversation, Message, Tabulation


def _visible_conversations(user: User) -> QuerySet[Conversation]:
    conversations = Conversation.objects.select_related("contact", "service_instance", "operator")
    if user.role == Role.OPERATOR:
        conversations = conversations.filter(Q(operator=user) | Q(operator__isnull=True, status=ChatStatus.OPEN))
    return conversations


def list_conversations_for_user(
    *,
    user: User,
    status: str | None = None,
    operator_id=None,
    service_instance_id=None,
    search: str | None = None,
) -> QuerySet[Conversation]:
    """Operators: only their own (the queue has its own list). Filters narrow, never widen.

    ``search`` is the contacts' rule (name without case or accents, or phone digits), applied
    as a subquery so that it stays one query.
    """
    conversations = Conversation.objects.select_related("contact", "service_instance", "operator")
    if user.role == Role.OPERATOR:
        conversations = conversations.filter(operator=user)
    if status:
        conversations = conversations.filter(status=status)
    if operator_id:
        conversations = conversations.filter(operator_id=operator_id)
    if service_instance_id:
        conversations = conversations.filter(service_instance_id=service_instance_id)
    if search and search.strip():
        conversations = conversations.filter(contact__in=Contact.objects.filter(search_filter(search)))
    return conversations.order_by("-last_message_at", "-start_time", "id")


def list_queue(*, user: User) -> QuerySet[Conversation]:
    """Open conversations nobody has taken, oldest first."""
    return (
        Conversation.objects.select_related("contact", "service_instance", "operator")
        .filter(status=ChatStatus.OPEN, operator__isnull=True, service_instance__is_active=True)
        .order_by("start_time", "id")
    )


def get_conversation_for_user(*, user: User, conversation_id) -> Conversation:
    conversation = _visible_conversations(user).filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404
    return conversation


def get_conversation_to_assign(*, user: User, conversation_id) -> Conversation:
    """What an assign request may address: everything for supervisors and admins; for operators,
    their own conversations and every OPEN one.

    Wider than ``get_conversation_for_user`` on purpose: a queued conversation that another
    operator took a moment earlier must answer "already assigned" (400), not 404, whichever
    request reached the database first. The refusal carries no data; the queue's
    ``conversation:updated`` event already told every operator who took it.
    """
    conversations = Conversation.objects.select_related("contact", "service_instance", "operator")
    if user.role == Role.OPERATOR:
        conversations = conversations.filter(Q(operator=user) | Q(status=ChatStatus.OPEN))
    conversation = conversations.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404
    return conversation


def list_messages_for_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return (
        Message.objects.select_related("sender").filter(conversation=conversation).order_by("timestamp", "created_at")
    )


def get_message_for_user(*, user: User, message_id) -> Message:
    message = Message.objects.select_related("sender", "conversation").filter(pk=message_id).first()
    if message is None:
        raise Http404
    get_conversation_for_user(user=user, conversation_id=message.conversation_id)
    return message


def get_assignable_user(*, user_id) -> User:
    """Someone a conversation may be given to: an active, not deleted user (any role)."""
    user = User.objects.alive().filter(pk=user_id, is_active=True).first()
    if user is None:
        raise Http404
    return user


def list_tabulations() -> QuerySet[Tabulation]:
    return Tabulation.objects.filter(deleted_at__isnull=True).order_by("name")


def get_tabulation(*, tabulation_id) -> Tabulation:
    tabulation = list_tabulations().filter(pk=tabulation_id).first()
    if tabulation is None:
        raise Http404
    return tabulation
