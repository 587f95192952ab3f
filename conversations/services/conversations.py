"""Opening, assigning and closing conversations. Each service owns its transaction and publishes
its realtime event only after commit (``conversations.events``).

Who may see a conversation is the selectors' job: callers pass a conversation they already got
from ``selectors.get_conversation_for_user``. What a role may *do* with it is decided here.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Role, User
from contacts.models import Contact
from conversations import events
from conversations.models import ChatStatus, Conversation, ConversationClosure, Direction, Message, Tabulation
from elsehub.api.errors import ApplicationError, ConflictError
from instances.models import ServiceInstance

logger = logging.getLogger(__name__)


def _already_open_error() -> ConflictError:
    return ConflictError(
        _("This contact already has an open conversation on this service instance"), code="conversation_already_open"
    )


def _lock(conversation: Conversation) -> Conversation:
    """Re-read the row under ``SELECT ... FOR UPDATE`` (caller holds a transaction).

    Only the conversation row is locked (``of=("self",)``): contact, number and operator are read
    for the response and the event, not changed.
    """
    return (
        Conversation.objects.select_related("contact", "service_instance", "operator")
        .select_for_update(of=("self",))
        .get(pk=conversation.pk)
    )


def _stamp_assignment(operator: User, now: datetime) -> None:
    # Routing picks the operator who waited longest for a conversation.
    User.objects.filter(pk=operator.pk).update(last_conversation_assigned_at=now)
    operator.last_conversation_assigned_at = now


# ------------------------------------------------------------------------------
# Create
# ------------------------------------------------------------------------------


def create_conversation(
    *,
    contact: Contact,
    service_instance: ServiceInstance,
    created_by: User,
    operator: User | None = None,
) -> Conversation:
    """Open a conversation by hand (the inbound service opens the others).

    An operator who opens one becomes its operator (they may name only themselves); supervisors
    and admins open it in the queue unless they name an operator. One OPEN conversation per
    contact and number: the partial unique index settles a race, answered as 409.
    """
    if created_by.role == Role.OPERATOR:
        if operator is not None and operator.pk != created_by.pk:
            raise PermissionDenied
        operator = created_by
    if not service_instance.is_active:
        raise ApplicationError(_("Service instance is inactive"), code="instance_inactive")
    if Conversation.objects.filter(contact=contact, service_instance=service_instance, status=ChatStatus.OPEN).exists():
        raise _already_open_error()

    now = timezone.now()
    conversation = Conversation(
        contact=contact,
        service_instance=service_instance,
        operator=operator,
        status=ChatStatus.OPEN,
        start_time=now,
        assigned_at=now if operator else None,
    )
    try:
        with transaction.atomic():
            conversation.save(force_insert=True)
            if operator is not None:
                _stamp_assignment(operator, now)
            events.publish_conversation_updated(conversation)
    except IntegrityError:  # a webhook or another caller opened it first
        raise _already_open_error() from None
    logger.info(
        "conversations.conversation.created",
        extra={"conversation_id": str(conversation.pk), "operator_id": str(operator.pk) if operator else None},
    )
    return conversation


# ------------------------------------------------------------------------------
# Assign
# ------------------------------------------------------------------------------


def _assigned_or_closed_error() -> ApplicationError:
    return ApplicationError(_("Conversation is already assigned or closed"), code="conversation_not_assignable")


def assign_conversation(*, conversation: Conversation, operator: User, assigned_by: User) -> Conversation:
    """Give an open conversation to ``operator``.

    Operators may only take a queued conversation for themselves (another ``operator`` is 403).
    Supervisors and admins may give any open conversation to any active user, reassigning it if
    it is already taken; giving it to its current operator changes nothing and publishes nothing.

    Locking: the conversation row is locked before its state is checked, so of two operators
    taking the same queued conversation at once exactly one wins; the other waits for the lock,
    then sees it taken (400). ``operator`` must be active (``selectors.get_assignable_user``).
    """
    is_operator = assigned_by.role == Role.OPERATOR
    if is_operator and operator.pk != assigned_by.pk:
        raise PermissionDenied
    with transaction.atomic():
        conversation = _lock(conversation)
        if conversation.status != ChatStatus.OPEN or (is_operator and conversation.operator_id is not None):
            raise _assigned_or_closed_error()
        if conversation.operator_id == operator.pk:
            return conversation
        previous_operator_id = conversation.operator_id
        now = timezone.now()
        conversation.operator = operator
        conversation.assigned_at = now
        conversation.save(update_fields=["operator", "assigned_at", "updated_at"])
        _stamp_assignment(operator, now)
        events.publish_conversation_updated(conversation, previous_operator_id=previous_operator_id)
    logger.info(
        "conversations.conversation.assigned",
        extra={
            "conversation_id": str(conversation.pk),
            "operator_id": str(operator.pk),
            "previous_operator_id": str(previous_operator_id) if previous_operator_id else None,
            "assigned_by": str(assigned_by.pk),
        },
    )
    return conversation


# ------------------------------------------------------------------------------
# Close
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosureMetrics:
    duration_seconds: int
    first_response_seconds: int | None
    avg_operator_response_seconds: float | None
    avg_customer_response_seconds: float | None
    inbound_count: int
    outbound_count: int


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compute_closure_metrics(
    *, started_at: datetime, ended_at: datetime, messages: list[tuple[str, datetime]]
) -> ClosureMetrics:
    """Response times from ``(direction, timestamp)`` pairs in time order.

    Messages are grouped into runs of one direction. An operator response is the gap from the
    first message of a customer run to the first message of the operator run that follows it; a
    customer response is the same the other way round. The first response is the first operator
    response after the customer's first message.
    """
    runs: list[tuple[str, datetime]] = []
    inbound_count = outbound_count = 0
    for direction, timestamp in messages:
        if direction == Direction.INBOUND:
            inbound_count += 1
        else:
            outbound_count += 1
        if not runs or runs[-1][0] != direction:
            runs.append((direction, timestamp))

    operator_gaps: list[float] = []
    customer_gaps: list[float] = []
    for (direction, started), (_next_direction, answered) in pairwise(runs):
        gaps = operator_gaps if direction == Direction.INBOUND else customer_gaps
        gaps.append(_seconds(started, answered))

    return ClosureMetrics(
        duration_seconds=max(0, round(_seconds(started_at, ended_at))),
        first_response_seconds=max(0, round(operator_gaps[0])) if operator_gaps else None,
        avg_operator_response_seconds=_mean(operator_gaps),
        avg_customer_response_seconds=_mean(customer_gaps),
        inbound_count=inbound_count,
        outbound_count=outbound_count,
    )


def close_conversation(*, conversation: Conversation, tabulation: Tabulation, closed_by: User) -> Conversation:
    """Close with a tabulation and store its ``ConversationClosure`` (the reports' numbers).

    Operators close only conversations assigned to them: a queued one must be taken first (403).
    Locks the conversation row, so a conversation is closed (and measured) exactly once; a message
    arriving afterwards opens a new conversation (inbound service).
    """
    with transaction.atomic():
        conversation = _lock(conversation)
        if conversation.status == ChatStatus.CLOSED:
            raise ApplicationError(_("Conversation is already closed"), code="conversation_closed")
        if closed_by.role == Role.OPERATOR and conversation.operator_id != closed_by.pk:
            raise ApplicationError(
                _("Take this conversation from the queue before closing it"),
                code="conversation_not_taken",
                status_code=403,
            )
        now = timezone.now()
        messages = list(
            Message.objects.filter(conversation=conversation)
            .order_by("timestamp", "created_at")
            .values_list("direction", "timestamp")
        )
        metrics = compute_closure_metrics(started_at=conversation.start_time, ended_at=now, messages=messages)

        conversation.status = ChatStatus.CLOSED
        conversation.end_time = now
        conversation.tabulation = tabulation
        conversation.save(update_fields=["status", "end_time", "tabulation", "updated_at"])
        ConversationClosure.objects.create(
            conversation=conversation,
            operator_id=conversation.operator_id,
            closed_by=closed_by,
            tabulation=tabulation,
            service_instance_id=conversation.service_instance_id,
            started_at=conversation.start_time,
            ended_at=now,
            duration_seconds=metrics.duration_seconds,
            first_response_seconds=metrics.first_response_seconds,
            avg_operator_response_seconds=metrics.avg_operator_response_seconds,
            avg_customer_response_seconds=metrics.avg_customer_response_seconds,
            inbound_count=metrics.inbound_count,
            outbound_count=metrics.outbound_count,
        )
        events.publish_conversation_closed(conversation)
    logger.info(
        "conversations.conversation.closed",
        extra={
            "conversation_id": str(conversation.pk),
            "tabulation_id": str(tabulation.pk),
            "closed_by": str(closed_by.pk),
        },
    )
    return conversation
