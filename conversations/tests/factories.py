"""Conversations, messages and tabulations as the services would store them.

Shared by every conversations test module (inbound, outbound, assignment, API): keep the defaults
minimal and stable. ``MessageFactory`` makes an inbound text message with a provider id in the
conversation's number; pass ``conversation=`` to put it in an existing one.
"""

import factory
from django.utils import timezone

from contacts.tests.factories import ContactFactory
from conversations.models import (
    ChatStatus,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    Tabulation,
    Via,
)
from instances.tests.factories import ServiceInstanceFactory


class TabulationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tabulation

    name = factory.Sequence(lambda n: f"Tabulação {n}")


class ConversationFactory(factory.django.DjangoModelFactory):
    """An OPEN conversation in the queue (no operator) of a fresh contact and number."""

    class Meta:
        model = Conversation

    contact = factory.SubFactory(ContactFactory)
    service_instance = factory.SubFactory(ServiceInstanceFactory)
    operator = None
    status = ChatStatus.OPEN
    start_time = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory):
    """An inbound text message ``received`` in an open conversation."""

    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    service_instance = factory.LazyAttribute(lambda message: message.conversation.service_instance)
    external_id = factory.Sequence(lambda n: f"MSG{n:012d}")
    direction = Direction.INBOUND
    via = Via.INBOUND
    sender = None
    kind = "text"
    content = factory.Sequence(lambda n: f"Mensagem {n}")
    status = MessageStatus.RECEIVED
    timestamp = factory.LazyFunction(timezone.now)
