"""Outbound messages: the outbox, its delivery to the provider, and the sweeper behind it.

A send is three steps (STYLE rule 4), never one transaction around a network call:

1. ``send_message`` stores the message as ``pending`` (the outbox) and enqueues its delivery
   after commit;
2. ``deliver_message`` locks the row, moves it ``pending`` -> ``sending`` and commits: only the
   caller that made that move calls the provider, so a duplicate task never sends twice;
3. the provider's answer is recorded in a new transaction. A status only moves forward by
   ``STATUS_RANK`` (a webhook may have advanced it meanwhile); the one step back, ``sending`` ->
   ``pending`` for a retry, is taken only by the delivery that still owns the row.

``sweep_outbox`` picks up what a lost task left behind.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import partial
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Greatest
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Role, User
from conversations import events
from conversations.models import (
    STATUS_RANK,
    ChatStatus,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    Via,
)
from conversations.services import inbound
from elsehub.api.errors import ApplicationError
from instances.models import ServiceInstance
from instances.providers.base import Provider as ProviderAdapter
from instances.providers.exceptions import (
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from instances.providers.types import SentMessage
from instances.services import adapter_for

logger = logging.getLogger(__name__)

MAX_CONTENT_LENGTH = 4096
MAX_RETRY_DELAY_SECONDS = 300
SENDING_TIMEOUT = timedelta(minutes=10)
SWEEP_BATCH_SIZE = 200
STATUS_FIELDS = ["status", "status_code", "status_reason", "status_changed_at", "updated_at"]

UNCERTAIN_NO_ANSWER = gettext_lazy("The provider did not answer; the message may have been sent")
UNCERTAIN_UNREADABLE = gettext_lazy("The provider's answer could not be read; the message may have been sent")
UNCERTAIN_PROVIDER_FAILED = gettext_lazy("The provider failed while handling the message; it may have been sent")
UNCERTAIN_UNEXPECTED = gettext_lazy("Unexpected error while sending; the message may have been sent")
UNCERTAIN_INTERRUPTED = gettext_lazy("Sending was interrupted during the provider call; the message may have been sent")


def _max_attempts() -> int:
    return max(1, getattr(settings, "OUTBOX_MAX_ATTEMPTS", 5))


def _stale_seconds() -> float:
    return getattr(settings, "OUTBOX_STALE_SECONDS", 120)


def retry_delay(attempts: int, *, retry_after: float | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones: exponential, capped, and never
    sooner than a rate limit's ``Retry-After``."""
    base = getattr(settings, "OUTBOX_RETRY_BASE_SECONDS", 5)
    delay = min(2**attempts * base, MAX_RETRY_DELAY_SECONDS)
    if retry_after:
        delay = min(max(delay, retry_after), MAX_RETRY_DELAY_SECONDS)
    return delay


# ------------------------------------------------------------------------------
# Refusals
# ------------------------------------------------------------------------------


def conversation_unavailable() -> ApplicationError:
    """The contract's 404 for a send: the same answer for a foreign, unknown or closed conversation."""
    return ApplicationError(_("Conversation not found or closed"), code="conversation_not_found", status_code=404)


def _invalid(field: str, message) -> ApplicationError:
    return ApplicationError([f"{field}: {message}"], code="invalid_message", status_code=422)


def content_errors(content: str) -> list[str]:
    """Shared with the input serializer, so that every caller gets the same sentences."""
    if not content.strip():
        return [_("The message cannot be empty or only spaces")]
    if len(content) > MAX_CONTENT_LENGTH:
        return [
            _("The message has %(count)s characters; the limit is %(limit)s")
            % {"count": len(content), "limit": MAX_CONTENT_LENGTH}
        ]
    return []


def via_error(via: str) -> str | None:
    if via == Via.INBOUND:
        return _("INBOUND is for messages received by webhook and cannot be used to send")
    if via not in Via.values:
        return _("Unknown value %(value)s") % {"value": via}
    return None


# ------------------------------------------------------------------------------
# Step 1: the outbox
# ------------------------------------------------------------------------------


def _instance_is_live(instance: ServiceInstance) -> bool:
    return instance.is_active and instance.deleted_at is None


def _quoted_external_id(conversation: Conversation, quoted_message_id: UUID | None) -> str:
    if quoted_message_id is None:
        return ""
    quoted = Message.objects.filter(pk=quoted_message_id, conversation=conversation).values("external_id").first()
    if quoted is None:
        raise _invalid("quotedMessageId", _("The quoted message does not belong to this conversation"))
    if not quoted["external_id"]:
        raise _invalid("quotedMessageId", _("The quoted message has not reached WhatsApp yet and cannot be quoted"))
    return quoted["external_id"]


def send_message(
    *,
    user: User,
    conversation: Conversation,
    content: str,
    via: str = Via.CHAT_MANUAL,
    quoted_message_id: UUID | None = None,
) -> Message:
    """Store an outbound text as ``pending`` and deliver it after commit.

    ``conversation`` comes from ``selectors.get_conversation_for_user`` (visibility); its row is
    locked here and checked again, so that a close or an assignment racing with the send wins
    cleanly. Operators send only with ``CHAT_MANUAL`` and only in conversations assigned to them.
    """
    from conversations.tasks import deliver_message_task  # the tasks module imports this one

    errors = [f"content: {message}" for message in content_errors(content)]
    if message := via_error(via):
        errors.append(f"via: {message}")
    if errors:
        raise ApplicationError(errors, code="invalid_message", status_code=422)
    if user.role == Role.OPERATOR and via != Via.CHAT_MANUAL:
        raise ApplicationError(
            _("Operators may only send messages with via CHAT_MANUAL"), code="via_forbidden", status_code=403
        )

    now = timezone.now()
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("contact", "service_instance", "operator")
            .filter(pk=conversation.pk)
            .first()
        )
        if locked is None or locked.status != ChatStatus.OPEN:
            raise conversation_unavailable()
        if user.role == Role.OPERATOR and locked.operator_id != user.pk:
            if locked.operator_id is None:
                raise ApplicationError(
                    _("This conversation is in the queue: take it (assign it to yourself) before sending messages"),
                    code="conversation_not_taken",
                )
            raise conversation_unavailable()  # taken by someone else meanwhile: no longer theirs to see
        if not _instance_is_live(locked.service_instance):
            raise ApplicationError(_("Service instance is inactive"), code="instance_inactive")
        quoted_external_id = _quoted_external_id(locked, quoted_message_id)

        message = Message.objects.create(
            conversation=locked,
            service_instance_id=locked.service_instance_id,
            direction=Direction.OUTBOUND,
            via=via,
            sender=user,
            kind="text",
            content=content,
            quoted_external_id=quoted_external_id,
            status=MessageStatus.PENDING,
            timestamp=now,
            status_changed_at=now,
        )
        locked.message_count += 1
        # max(): an inbound message stamped by a provider clock ahead of ours must stay "last".
        locked.last_message_at = max(filter(None, (locked.last_message_at, now)))
        locked.last_outbound_at = max(filter(None, (locked.last_outbound_at, now)))
        locked.save(update_fields=["message_count", "last_message_at", "last_outbound_at", "updated_at"])

        events.publish_message_new(message, locked)
        events.publish_conversation_updated(locked)
        transaction.on_commit(partial(deliver_message_task.delay, str(message.pk)))
    logger.info(
        "conversations.outbound.queued",
        extra={"message_id": str(message.pk), "conversation": str(locked.pk), "via": via},
    )
    return message


# ------------------------------------------------------------------------------
# Steps 2 and 3: delivery
# ------------------------------------------------------------------------------


class DeliveryOutcome(StrEnum):
    SKIPPED = "skipped"  # not pending (already handled, or a duplicate task): nothing sent
    SENT = "sent"
    UNCERTAIN = "uncertain"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    outcome: DeliveryOutcome
    #: seconds to wait before the task runs again (``RETRY`` only)
    retry_in: float | None = None


def _send_text(adapter: ProviderAdapter, message: Message) -> SentMessage:
    return adapter.send_text(
        to=message.conversation.contact.address,
        text=message.content,
        quoted_provider_id=message.quoted_external_id or None,
    )


#: How each message kind goes out. Kinds without an entry are left alone by delivery and sweeper.
SENDERS: dict[str, Callable[[ProviderAdapter, Message], SentMessage]] = {"text": _send_text}


def _in_default_language(text, **params) -> str:
    """Stored reasons are read later by anyone: render them in the site's language, not the caller's."""
    with translation.override(settings.LANGUAGE_CODE):
        return str(text) % params if params else str(text)


def _error_code(error: ProviderError) -> str:
    code = error.provider_code or (str(error.http_status) if error.http_status else "")
    return code[:64]


def _lock(message_id) -> Message | None:
    return (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation__contact", "service_instance", "sender")
        .filter(pk=message_id)
        .first()
    )


def _save_status(message: Message, status: str, *, code: str = "", reason: str = "", **fields) -> None:
    """Caller holds the row lock inside a transaction; ``message:status`` leaves after commit."""
    message.status = status
    message.status_code = code[:64]
    message.status_reason = reason[:500]
    message.status_changed_at = timezone.now()
    for name, value in fields.items():
        setattr(message, name, value)
    message.save(update_fields=[*STATUS_FIELDS, *fields])
    events.publish_message_status(message, message.conversation)


def _advances(message: Message, status: str) -> bool:
    """Forward only; ``failed`` (like ``received``) is final, as on the inbound side."""
    if message.status in (MessageStatus.RECEIVED, MessageStatus.FAILED):
        return False
    return STATUS_RANK[status] > STATUS_RANK[message.status]


def deliver_message(*, message_id) -> Delivery:
    """Send one outbox message to its provider.

    Idempotent: a message that is not ``pending`` is left alone, so a duplicate task, a sweeper
    re-queue or a replay running now or later sends nothing. Must not run inside a transaction:
    the provider is called between two of its own.
    """
    with transaction.atomic():
        message = _lock(message_id)
        if message is None or message.status != MessageStatus.PENDING:
            logger.info("conversations.outbound.skipped", extra={"message_id": str(message_id)})
            return Delivery(DeliveryOutcome.SKIPPED)
        send = SENDERS.get(message.kind)
        if send is None:
            logger.warning("conversations.outbound.unknown_kind", extra={"message_id": str(message_id)})
            return Delivery(DeliveryOutcome.SKIPPED)
        if not _instance_is_live(message.service_instance):
            _save_status(
                message,
                MessageStatus.FAILED,
                code="instance_inactive",
                reason=_in_default_language(gettext_lazy("Service instance is inactive")),
            )
            return Delivery(DeliveryOutcome.FAILED)
        adapter = adapter_for(message.service_instance)
        _save_status(message, MessageStatus.SENDING, attempts=message.attempts + 1)

    try:
        sent = send(adapter, message)
    except ProviderTimeout:
        return _record_uncertain(message_id, "no_answer", UNCERTAIN_NO_ANSWER)
    except ProviderBadResponse:
        # A 2xx we cannot read (no message id, not JSON): the provider most likely did send.
        return _record_uncertain(message_id, "unreadable_answer", UNCERTAIN_UNREADABLE)
    except ProviderUnavailable:
        # A 5xx after the request reached the provider: it may have sent. Never re-send blindly.
        return _record_uncertain(message_id, "provider_error", UNCERTAIN_PROVIDER_FAILED)
    except (ProviderConnectionError, ProviderRateLimited) as error:
        return _record_retryable(message_id, error)
    except ProviderError as error:
        return _record_failure(message_id, error)
    except Exception:
        logger.exception("conversations.outbound.unexpected_error", extra={"message_id": str(message_id)})
        return _record_uncertain(message_id, "unexpected_error", UNCERTAIN_UNEXPECTED)
    return _record_sent(message_id, sent.provider_message_id)


def _record_uncertain(message_id, code: str, reason) -> Delivery:
    with transaction.atomic():
        message = _lock(message_id)
        if message is not None and _advances(message, MessageStatus.UNCERTAIN):
            _save_status(message, MessageStatus.UNCERTAIN, code=code, reason=_in_default_language(reason))
    logger.warning("conversations.outbound.uncertain", extra={"message_id": str(message_id)})
    return Delivery(DeliveryOutcome.UNCERTAIN)


def _record_failure(message_id, error: ProviderError) -> Delivery:
    with transaction.atomic():
        message = _lock(message_id)
        if message is not None and _advances(message, MessageStatus.FAILED):
            _save_status(
                message,
                MessageStatus.FAILED,
                code=_error_code(error),
                reason=_in_default_language(error.message),
            )
    logger.warning(
        "conversations.outbound.failed",
        extra={"message_id": str(message_id), "error": type(error).__name__, "code": error.provider_code},
    )
    return Delivery(DeliveryOutcome.FAILED)


def _record_retryable(message_id, error: ProviderError) -> Delivery:
    """Nothing was sent (or the provider asked us to wait): back to ``pending`` for another try,
    or ``failed`` once the attempts are spent."""
    with transaction.atomic():
        message = _lock(message_id)
        if message is None or message.status != MessageStatus.SENDING:
            return Delivery(DeliveryOutcome.SKIPPED)  # moved on meanwhile (sweeper, webhook): not ours
        if message.attempts >= _max_attempts():
            reason = _in_default_language(
                gettext_lazy("Not sent after %(attempts)s attempts: %(reason)s"),
                attempts=message.attempts,
                reason=_in_default_language(error.message),
            )
            _save_status(message, MessageStatus.FAILED, code=_error_code(error), reason=reason)
            outcome = Delivery(DeliveryOutcome.FAILED)
        else:
            # The one backward move: this delivery still owns the row (it is ``sending``).
            _save_status(
                message,
                MessageStatus.PENDING,
                code=_error_code(error),
                reason=_in_default_language(error.message),
            )
            delay = retry_delay(message.attempts, retry_after=getattr(error, "retry_after", None))
            outcome = Delivery(DeliveryOutcome.RETRY, retry_in=delay)
    logger.info(
        "conversations.outbound.retryable_error",
        extra={"message_id": str(message_id), "error": type(error).__name__, "outcome": outcome.outcome},
    )
    return outcome


def _take_external_id(
    message: Message, external_id: str, *, status: str = MessageStatus.SENT, code: str = "", reason: str = ""
) -> None:
    """Record the provider's id and status on a row we hold locked, then the statuses that came first.

    A webhook may have got further meanwhile: its status stays (forward only). Raises
    ``IntegrityError`` when another row already holds the id.
    """
    changed = False
    if message.external_id is None:
        message.external_id = external_id
        changed = True
    if _advances(message, status):
        message.status, message.status_code, message.status_reason = status, code, reason
        message.status_changed_at = timezone.now()
        changed = True
    if not changed:
        return
    message.save(update_fields=["external_id", *STATUS_FIELDS])
    # Receipts that arrived before we knew the id were kept aside by the inbound side.
    inbound.apply_early_statuses(message=message)
    events.publish_message_status(message, message.conversation)


def _record_sent(message_id, external_id: str) -> Delivery:
    try:
        with transaction.atomic():
            message = _lock(message_id)
            if message is None:
                return Delivery(DeliveryOutcome.SKIPPED)
            _take_external_id(message, external_id)
    except IntegrityError:
        # The provider's echo of our own send (fromMe) was stored by the inbound webhook first.
        _merge_echo(message_id, external_id)
    logger.info("conversations.outbound.sent", extra={"message_id": str(message_id)})
    return Delivery(DeliveryOutcome.SENT)


def _merge_echo(message_id, external_id: str) -> None:
    """Fold the echo row into ours: ours keeps its sender and gains the id and the higher status.

    Lock order: both messages, then their conversation(s), each in primary-key order. The
    inbound side may hold our row (matching an echo by content) while it goes on to lock a
    conversation, so taking the conversation first here could deadlock with it.
    """
    message_id = UUID(str(message_id))
    with transaction.atomic():
        ours = Message.objects.filter(pk=message_id).values("service_instance_id").first()
        if ours is None:
            return
        echo_id = (
            Message.objects.filter(service_instance_id=ours["service_instance_id"], external_id=external_id)
            .exclude(pk=message_id)
            .values_list("pk", flat=True)
            .first()
        )
        locked = {
            row.pk: row
            for row in Message.objects.select_for_update(of=("self",))
            .select_related("sender")
            .filter(pk__in=[message_id, *([echo_id] if echo_id else [])])
            .order_by("pk")
        }
        message, echo = locked.get(message_id), locked.get(echo_id)
        if message is None:
            return
        conversations = {
            conversation.pk: conversation
            for conversation in Conversation.objects.select_for_update(of=("self",))
            .select_related("contact", "service_instance", "operator")
            .filter(pk__in={row.conversation_id for row in locked.values()})
            .order_by("pk")
        }
        message.conversation = conversations[message.conversation_id]
        status, code, reason = MessageStatus.SENT, "", ""
        if echo is not None:
            if echo.status not in (MessageStatus.RECEIVED, MessageStatus.FAILED) and _advances(message, echo.status):
                status, code, reason = echo.status, echo.status_code, echo.status_reason
            echo.delete()
            _after_echo_removed(conversations[echo.conversation_id])
        _take_external_id(message, external_id, status=status, code=code, reason=reason)
    logger.info("conversations.outbound.echo_merged", extra={"message_id": str(message_id)})


def _after_echo_removed(conversation: Conversation) -> None:
    """Undo what storing the echo added to its conversation (caller holds the conversation lock)."""
    latest = Message.objects.filter(conversation=conversation).aggregate(
        last=Max("timestamp"), last_outbound=Max("timestamp", filter=Q(direction=Direction.OUTBOUND))
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=Greatest(F("message_count") - 1, 0),
        last_message_at=latest["last"],
        last_outbound_at=latest["last_outbound"],
        updated_at=timezone.now(),
    )
    conversation.refresh_from_db(fields=["message_count", "last_message_at", "last_outbound_at", "updated_at"])
    events.publish_conversation_updated(conversation)


# ------------------------------------------------------------------------------
# The sweeper
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    requeued: int
    uncertain: int


def _overdue_pending(now) -> Q:
    """A pending row is overdue once its planned retry is late by the stale margin (a fresh one
    once it waited the margin): re-queueing it sooner would only cut its backoff short."""
    stale = _stale_seconds()
    overdue = Q(attempts=0, updated_at__lt=now - timedelta(seconds=stale))
    for attempts in range(1, _max_attempts() + 1):
        delay = stale + retry_delay(attempts)
        overdue |= Q(attempts=attempts, updated_at__lt=now - timedelta(seconds=delay))
    return overdue | Q(attempts__gt=_max_attempts(), updated_at__lt=now - timedelta(seconds=stale))


def sweep_outbox(*, batch_size: int = SWEEP_BATCH_SIZE) -> SweepResult:
    """Re-queue pending messages whose task was lost; settle ``sending`` ones whose worker died.

    A ``sending`` row older than ``SENDING_TIMEOUT`` is never re-sent: its provider call may
    have gone through, so it becomes ``uncertain``. Bounded batches; running it twice (or two
    sweepers at once: rows are taken with SKIP LOCKED) is harmless.
    """
    from conversations.tasks import deliver_message_task

    now = timezone.now()
    with transaction.atomic():
        pending = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(status=MessageStatus.PENDING, direction=Direction.OUTBOUND, kind__in=list(SENDERS))
            .filter(_overdue_pending(now))
            .order_by("updated_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        # Touched so that the next sweep waits a full margin again before re-queueing the same row.
        Message.objects.filter(pk__in=pending).update(updated_at=now)
        for pk in pending:
            transaction.on_commit(partial(deliver_message_task.delay, str(pk)))

        interrupted = list(
            Message.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("conversation")
            .filter(status=MessageStatus.SENDING, updated_at__lt=now - SENDING_TIMEOUT)
            .order_by("updated_at")[:batch_size]
        )
        for message in interrupted:
            _save_status(
                message,
                MessageStatus.UNCERTAIN,
                code="interrupted",
                reason=_in_default_language(UNCERTAIN_INTERRUPTED),
            )
    if pending or interrupted:
        logger.info("conversations.outbound.swept", extra={"requeued": len(pending), "uncertain": len(interrupted)})
    return SweepResult(requeued=len(pending), uncertain=len(interrupted))
