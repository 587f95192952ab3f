"""The outbox: delivery to the provider (once, outside transactions), retries, ambiguity, the
echo merge, the sweeper, and one end-to-end run with a real Celery worker and the simulator."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import time_machine
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from contacts.tests.factories import ContactFactory
from conversations.models import Conversation, Direction, EarlyStatus, Message, MessageStatus, Via
from conversations.services import outbound
from conversations.services.outbound import Delivery, DeliveryOutcome, deliver_message, retry_delay, sweep_outbox
from conversations.tasks import deliver_message_task, sweep_outbox_task
from conversations.tests.factories import ConversationFactory
from conversations.tests.workers import start_worker
from elsehub.tests.concurrency import run_at_once
from instances.providers.exceptions import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnsupported,
)
from instances.tests.factories import ServiceInstanceFactory

TEXT = "Seu pedido já saiu para entrega."
PHONE = "+5514997651234"
T0 = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)

UNCERTAIN_REASON = "O provedor não respondeu; a mensagem pode ter sido enviada"
UNREACHABLE = "Não foi possível contatar o provedor de WhatsApp"


@pytest.fixture
def instance(db):
    return ServiceInstanceFactory()


@pytest.fixture
def conversation(instance, operator_user):
    return ConversationFactory(contact=ContactFactory(phone=PHONE), service_instance=instance, operator=operator_user)


def _pending(conversation, sender, **fields) -> Message:
    """An outbox row as ``send_message`` stores it (created directly: no task runs)."""
    now = timezone.now()
    values = {
        "conversation": conversation,
        "service_instance_id": conversation.service_instance_id,
        "direction": Direction.OUTBOUND,
        "via": Via.CHAT_MANUAL,
        "sender": sender,
        "content": TEXT,
        "status": MessageStatus.PENDING,
        "timestamp": now,
        "status_changed_at": now,
    }
    return Message.objects.create(**{**values, **fields})


@pytest.fixture
def message(conversation, operator_user):
    return _pending(conversation, operator_user)


def _fresh(message: Message) -> Message:
    return Message.objects.select_related("sender").get(pk=message.pk)


def _sends(fake_provider) -> list[dict]:
    return [kwargs for name, kwargs in fake_provider.calls if name == "send_text"]


def _during_send(monkeypatch, fake_provider, action):
    """Run ``action(external_id)`` after the fake provider accepted the send, before we record it."""
    original = fake_provider.send_text

    def send_text(self, *, to, text, quoted_provider_id=None):
        sent = original(self, to=to, text=text, quoted_provider_id=quoted_provider_id)
        action(sent.provider_message_id)
        return sent

    monkeypatch.setattr(fake_provider, "send_text", send_text)


def _failing_send(monkeypatch, fake_provider, before, error):
    """The provider raises ``error`` after ``before()`` ran (a webhook landing during the call)."""

    def send_text(self, *, to, text, quoted_provider_id=None):
        fake_provider.calls.append(("send_text", {"to": to, "text": text}))
        before()
        raise error

    monkeypatch.setattr(fake_provider, "send_text", send_text)


# ------------------------------------------------------------------------------
# send_message (the service behind POST /api/messages/send)
# ------------------------------------------------------------------------------


def test_send_message_stores_pending_and_enqueues_delivery_after_commit(
    conversation, operator_user, fake_provider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = outbound.send_message(user=operator_user, conversation=conversation, content=TEXT)

    assert _fresh(message).status == MessageStatus.PENDING
    assert _sends(fake_provider) == []  # nothing leaves before commit
    callbacks[-1]()  # the enqueue, run eagerly
    assert _fresh(message).status == MessageStatus.SENT
    assert len(_sends(fake_provider)) == 1


def test_send_message_rechecks_the_conversation_under_its_lock(conversation, operator_user, make_user):
    from elsehub.api.errors import ApplicationError

    # The caller read the conversation (assigned to this operator); then it changed hands.
    Conversation.objects.filter(pk=conversation.pk).update(operator=make_user())
    with pytest.raises(ApplicationError) as taken:
        outbound.send_message(user=operator_user, conversation=conversation, content=TEXT)
    Conversation.objects.filter(pk=conversation.pk).update(operator=None)
    with pytest.raises(ApplicationError) as queued:
        outbound.send_message(user=operator_user, conversation=conversation, content=TEXT)

    assert (taken.value.status_code, taken.value.code) == (404, "conversation_not_found")
    assert (queued.value.status_code, queued.value.code) == (400, "conversation_not_taken")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("content", "via"), [("", Via.CHAT_MANUAL), ("x" * 4097, Via.CHAT_MANUAL), (TEXT, Via.INBOUND)]
)
def test_send_message_validates_for_every_caller(conversation, admin_user, content, via):
    from elsehub.api.errors import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        outbound.send_message(user=admin_user, conversation=conversation, content=content, via=via)

    assert refused.value.status_code == 422


# ------------------------------------------------------------------------------
# deliver_message: success and exactly-once
# ------------------------------------------------------------------------------


def test_deliver_message_sends_once_and_records_sent(message, instance, fake_provider):
    delivery = deliver_message(message_id=message.pk)

    assert delivery == Delivery(DeliveryOutcome.SENT)
    message = _fresh(message)
    assert (message.status, message.external_id, message.attempts) == (MessageStatus.SENT, "fake-1", 1)
    assert (message.status_code, message.status_reason) == ("", "")
    assert _sends(fake_provider) == [{"instance": instance.name, "to": PHONE, "text": TEXT}]


def test_deliver_message_twice_sends_once(message, fake_provider):
    first = deliver_message(message_id=message.pk)
    second = deliver_message(message_id=message.pk)

    assert (first.outcome, second.outcome) == (DeliveryOutcome.SENT, DeliveryOutcome.SKIPPED)
    assert len(_sends(fake_provider)) == 1
    assert _fresh(message).attempts == 1


@pytest.mark.parametrize(
    "status", [MessageStatus.SENDING, MessageStatus.UNCERTAIN, MessageStatus.SENT, MessageStatus.FAILED]
)
def test_deliver_message_not_pending_is_skipped(conversation, operator_user, fake_provider, status):
    message = _pending(conversation, operator_user, status=status)

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SKIPPED
    assert _sends(fake_provider) == []
    assert _fresh(message).status == status


def test_deliver_message_unknown_id_is_skipped(db, fake_provider):
    assert deliver_message(message_id="00000000-0000-0000-0000-000000000000").outcome == DeliveryOutcome.SKIPPED


def test_deliver_message_task_replayed_sends_once(message, fake_provider):
    for _ in range(3):
        deliver_message_task.delay(str(message.pk))

    assert len(_sends(fake_provider)) == 1
    assert _fresh(message).status == MessageStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_deliver_message_concurrently_sends_once(fake_provider, monkeypatch, make_user):
    operator = make_user()
    conversation = ConversationFactory(contact=ContactFactory(phone=PHONE), operator=operator)
    message = _pending(conversation, operator)
    original = fake_provider.send_text

    def slow_send_text(self, **kwargs):
        time.sleep(0.2)  # keep the first call in flight while the others arrive
        return original(self, **kwargs)

    monkeypatch.setattr(fake_provider, "send_text", slow_send_text)
    outcomes = run_at_once([lambda: deliver_message(message_id=message.pk).outcome] * 4)

    assert sorted(outcomes) == sorted([DeliveryOutcome.SENT] + [DeliveryOutcome.SKIPPED] * 3)
    assert len(_sends(fake_provider)) == 1
    assert _fresh(message).status == MessageStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_deliver_message_calls_the_provider_outside_any_transaction(fake_provider, monkeypatch, make_user):
    operator = make_user()
    message = _pending(ConversationFactory(contact=ContactFactory(phone=PHONE), operator=operator), operator)
    seen = []

    def record(external_id):
        seen.append((connection.in_atomic_block, Message.objects.get(pk=message.pk).status))

    _during_send(monkeypatch, fake_provider, record)
    deliver_message(message_id=message.pk)

    # Not in a transaction, and "sending" was already committed when the provider was called.
    assert seen == [(False, MessageStatus.SENDING)]


def test_deliver_message_inactive_instance_fails_without_calling(message, instance, fake_provider):
    instance.is_active = False
    instance.save()

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.FAILED

    message = _fresh(message)
    assert (message.status, message.status_code, message.status_reason) == (
        MessageStatus.FAILED,
        "instance_inactive",
        "Instância de serviço inativa",
    )
    assert _sends(fake_provider) == []


def test_deliver_message_other_kinds_are_left_alone(conversation, operator_user, fake_provider):
    image = _pending(conversation, operator_user, kind="image")

    assert deliver_message(message_id=image.pk).outcome == DeliveryOutcome.SKIPPED
    assert _fresh(image).status == MessageStatus.PENDING


# ------------------------------------------------------------------------------
# Ambiguous answers: uncertain, never retried
# ------------------------------------------------------------------------------


def test_deliver_message_timeout_marks_uncertain_and_never_retries(message, fake_provider):
    fake_provider.fail_next = ProviderTimeout(details="ReadTimeout")

    delivery = deliver_message(message_id=message.pk)
    again = deliver_message(message_id=message.pk)

    assert delivery == Delivery(DeliveryOutcome.UNCERTAIN)  # no retry_in: the task will not retry
    assert again.outcome == DeliveryOutcome.SKIPPED
    message = _fresh(message)
    assert (message.status, message.status_code, message.status_reason) == (
        MessageStatus.UNCERTAIN,
        "no_answer",
        UNCERTAIN_REASON,
    )
    assert message.external_id is None
    assert len(_sends(fake_provider)) == 1


def test_deliver_message_unreadable_answer_marks_uncertain(message, fake_provider):
    fake_provider.fail_next = ProviderBadResponse(details="sendText answer without key.id")

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.UNCERTAIN
    message = _fresh(message)
    assert (message.status_code, message.status_reason) == (
        "unreadable_answer",
        "Não foi possível ler a resposta do provedor; a mensagem pode ter sido enviada",
    )


def test_deliver_message_unexpected_exception_marks_uncertain(message, fake_provider, monkeypatch):
    def broken(self, **kwargs):
        raise RuntimeError("bug after the request went out")

    monkeypatch.setattr(fake_provider, "send_text", broken)

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.UNCERTAIN
    assert (_fresh(message).status, _fresh(message).status_code) == (MessageStatus.UNCERTAIN, "unexpected_error")


def test_deliver_message_uncertain_then_the_echo_attaches_the_id(message, fake_provider):
    # What the inbound side does when the provider reports our message back after a timeout.
    fake_provider.fail_next = ProviderTimeout()
    deliver_message(message_id=message.pk)

    Message.objects.filter(pk=message.pk).update(external_id="ECHO-1", status=MessageStatus.SENT)

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SKIPPED
    assert len(_sends(fake_provider)) == 1


# ------------------------------------------------------------------------------
# Retryable errors: back to pending with backoff, then failed
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ProviderConnectionError(), UNREACHABLE),
        (
            ProviderRateLimited(http_status=429),
            "O provedor de WhatsApp recusou por excesso de requisições; tente novamente mais tarde",
        ),
    ],
    ids=["connection", "rate-limited"],
)
def test_deliver_message_retryable_error_goes_back_to_pending(message, fake_provider, settings, error, reason):
    settings.OUTBOX_RETRY_BASE_SECONDS = 5
    fake_provider.fail_next = error

    delivery = deliver_message(message_id=message.pk)

    assert delivery == Delivery(DeliveryOutcome.RETRY, retry_in=10)
    message = _fresh(message)
    assert (message.status, message.attempts, message.status_reason) == (MessageStatus.PENDING, 1, reason)


def test_deliver_message_provider_5xx_is_uncertain_and_never_resent(message, fake_provider):
    fake_provider.fail_next = ProviderUnavailable(http_status=500)

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.UNCERTAIN
    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SKIPPED
    message = _fresh(message)
    assert (message.status, message.status_code) == (MessageStatus.UNCERTAIN, "provider_error")
    assert len(_sends(fake_provider)) == 1


def test_deliver_message_connection_error_is_retried_then_sent(message, fake_provider):
    fake_provider.fail_next = ProviderConnectionError()
    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.RETRY

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SENT

    message = _fresh(message)
    assert (message.status, message.attempts, message.external_id) == (MessageStatus.SENT, 2, "fake-2")
    assert (message.status_code, message.status_reason) == ("", "")  # the retry's reason is gone
    assert len(_sends(fake_provider)) == 2


@pytest.mark.parametrize(("retry_after", "expected"), [(None, 10), (3, 10), (45, 45), (1000, 300)])
def test_deliver_message_rate_limit_honours_retry_after(message, fake_provider, settings, retry_after, expected):
    settings.OUTBOX_RETRY_BASE_SECONDS = 5
    fake_provider.fail_next = ProviderRateLimited(retry_after=retry_after)

    assert deliver_message(message_id=message.pk).retry_in == expected


def test_retry_delay_is_exponential_and_capped(settings):
    settings.OUTBOX_RETRY_BASE_SECONDS = 5

    assert [retry_delay(attempts) for attempts in range(1, 9)] == [10, 20, 40, 80, 160, 300, 300, 300]


def test_deliver_message_gives_up_after_max_attempts(message, fake_provider, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    outcomes = []
    for _ in range(3):
        fake_provider.fail_next = ProviderConnectionError()
        outcomes.append(deliver_message(message_id=message.pk).outcome)

    assert outcomes == [DeliveryOutcome.RETRY, DeliveryOutcome.RETRY, DeliveryOutcome.FAILED]
    message = _fresh(message)
    assert (message.status, message.attempts) == (MessageStatus.FAILED, 3)
    assert message.status_reason == f"Não enviada após 3 tentativas: {UNREACHABLE}"
    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SKIPPED
    assert len(_sends(fake_provider)) == 3


def test_deliver_message_task_retries_with_the_services_countdown(message, monkeypatch):
    monkeypatch.setattr(outbound, "deliver_message", lambda message_id: Delivery(DeliveryOutcome.RETRY, retry_in=40))
    task_class = type(deliver_message_task._get_current_object())
    countdowns = []

    def retry(self, countdown=None, **kwargs):
        countdowns.append(countdown)
        return Retry(when=countdown)

    monkeypatch.setattr(task_class, "retry", retry)

    with pytest.raises(Retry):
        deliver_message_task.run(str(message.pk))
    assert countdowns == [40]


@pytest.mark.parametrize("outcome", [o for o in DeliveryOutcome if o != DeliveryOutcome.RETRY])
def test_deliver_message_task_does_not_retry_other_outcomes(message, monkeypatch, outcome):
    monkeypatch.setattr(outbound, "deliver_message", lambda message_id: Delivery(outcome))
    task_class = type(deliver_message_task._get_current_object())
    monkeypatch.setattr(task_class, "retry", lambda self, **kwargs: pytest.fail("retried"))

    assert deliver_message_task.run(str(message.pk)) == outcome.value


def test_deliver_message_task_eager_retry_ends_sent(message, fake_provider):
    # Eagerly, Celery runs the retry at once (no countdown): the second attempt goes through.
    fake_provider.fail_next = ProviderConnectionError()

    deliver_message_task.apply(args=[str(message.pk)], throw=False)

    assert (_fresh(message).status, _fresh(message).attempts) == (MessageStatus.SENT, 2)
    assert len(_sends(fake_provider)) == 2


def test_deliver_message_task_is_declared_for_safe_redelivery():
    task = deliver_message_task._get_current_object()
    assert (task.name, task.acks_late, task.reject_on_worker_lost, task.max_retries) == (
        "conversations.deliver_message",
        True,
        True,
        None,
    )


# ------------------------------------------------------------------------------
# Final errors
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (
            ProviderRejected(provider_code="131026", http_status=400),
            "131026",
            "O provedor de WhatsApp rejeitou a solicitação",
        ),
        (ProviderRejected("O número não está no WhatsApp", http_status=400), "400", "O número não está no WhatsApp"),
        (
            ProviderAuthError(http_status=401),
            "401",
            "O provedor de WhatsApp recusou as credenciais (token inválido ou expirado)",
        ),
        (ProviderNotFound(), "", "A instância não existe no provedor de WhatsApp"),
        (ProviderUnsupported(), "", "Esta operação não está disponível para este provedor"),
    ],
    ids=["rejected-with-code", "rejected-with-sentence", "auth", "not-found", "unsupported"],
)
def test_deliver_message_final_error_marks_failed_in_portuguese(message, fake_provider, error, code, reason):
    fake_provider.fail_next = error

    delivery = deliver_message(message_id=message.pk)

    assert delivery == Delivery(DeliveryOutcome.FAILED)
    message = _fresh(message)
    assert (message.status, message.status_code, message.attempts) == (MessageStatus.FAILED, code, 1)
    assert message.status_reason == reason
    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SKIPPED
    assert len(_sends(fake_provider)) == 1


def test_deliver_message_reasons_are_portuguese_whatever_the_callers_language(message, fake_provider):
    from django.utils import translation

    fake_provider.fail_next = ProviderTimeout()
    with translation.override("en"):
        deliver_message(message_id=message.pk)

    assert _fresh(message).status_reason == UNCERTAIN_REASON


# ------------------------------------------------------------------------------
# Status never goes back
# ------------------------------------------------------------------------------


def test_deliver_message_success_keeps_a_status_a_webhook_advanced(message, fake_provider, monkeypatch):
    def webhook(external_id):  # the echo matched our row and a delivery receipt followed
        Message.objects.filter(pk=message.pk).update(external_id=external_id, status=MessageStatus.DELIVERED)

    _during_send(monkeypatch, fake_provider, webhook)

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SENT
    message = _fresh(message)
    assert (message.status, message.external_id) == (MessageStatus.DELIVERED, "fake-1")


def test_deliver_message_success_after_the_sweeper_marked_uncertain(message, fake_provider, monkeypatch):
    _during_send(
        monkeypatch,
        fake_provider,
        lambda _id: Message.objects.filter(pk=message.pk).update(status=MessageStatus.UNCERTAIN),
    )

    deliver_message(message_id=message.pk)

    assert (_fresh(message).status, _fresh(message).external_id) == (MessageStatus.SENT, "fake-1")


@pytest.mark.parametrize(
    "error", [ProviderConnectionError(), ProviderTimeout(), ProviderRejected()], ids=["retryable", "timeout", "final"]
)
def test_deliver_message_error_never_moves_a_sent_message_back(message, fake_provider, monkeypatch, error):
    def echo_matched():
        Message.objects.filter(pk=message.pk).update(external_id="ECHO-1", status=MessageStatus.SENT)

    _failing_send(monkeypatch, fake_provider, echo_matched, error)

    delivery = deliver_message(message_id=message.pk)

    assert delivery.retry_in is None
    message = _fresh(message)
    assert (message.status, message.external_id) == (MessageStatus.SENT, "ECHO-1")


def test_deliver_message_applies_statuses_that_arrived_before_the_id(message, instance, fake_provider):
    EarlyStatus.objects.create(service_instance=instance, external_id="fake-1", status=MessageStatus.DELIVERED)
    EarlyStatus.objects.create(service_instance=instance, external_id="fake-1", status=MessageStatus.READ)

    deliver_message(message_id=message.pk)

    assert _fresh(message).status == MessageStatus.READ
    assert not EarlyStatus.objects.exists()


# ------------------------------------------------------------------------------
# The fromMe echo stored first: merged into our row
# ------------------------------------------------------------------------------


def _store_echo(conversation, external_id, status=MessageStatus.SENT) -> Message:
    """What the inbound webhook stores for a fromMe message it could not match (and its counters)."""
    echo = Message.objects.create(
        conversation=conversation,
        service_instance_id=conversation.service_instance_id,
        external_id=external_id,
        direction=Direction.OUTBOUND,
        via=Via.CHAT_MANUAL,
        sender=None,
        content=TEXT,
        status=status,
        timestamp=timezone.now() + timedelta(seconds=2),
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=conversation.message_count + 2,  # ours and the echo
        last_message_at=echo.timestamp,
        last_outbound_at=echo.timestamp,
    )
    return echo


@pytest.mark.parametrize(
    ("echo_status", "expected"),
    [(MessageStatus.SENT, MessageStatus.SENT), (MessageStatus.DELIVERED, MessageStatus.DELIVERED)],
)
def test_deliver_message_merges_the_echo_row(
    message, conversation, operator_user, fake_provider, monkeypatch, echo_status, expected
):
    echoes = []
    _during_send(
        monkeypatch,
        fake_provider,
        lambda external_id: echoes.append(_store_echo(conversation, external_id, echo_status)),
    )

    assert deliver_message(message_id=message.pk).outcome == DeliveryOutcome.SENT

    (only,) = Message.objects.filter(conversation=conversation)
    assert only.pk == message.pk
    assert (only.external_id, only.status, only.sender_id) == ("fake-1", expected, operator_user.pk)
    assert not Message.objects.filter(pk=echoes[0].pk).exists()
    conversation.refresh_from_db()
    assert conversation.message_count == 1
    assert conversation.last_message_at == conversation.last_outbound_at == message.timestamp


def test_deliver_message_echo_merge_publishes_status_and_conversation(
    message, conversation, fake_provider, monkeypatch, captured_events, django_capture_on_commit_callbacks
):
    _during_send(monkeypatch, fake_provider, lambda external_id: _store_echo(conversation, external_id))

    with django_capture_on_commit_callbacks(execute=True):
        deliver_message(message_id=message.pk)

    names = [event for event, _data, _groups in captured_events]
    assert names == ["message:status", "conversation:updated", "message:status"]
    sending, updated, sent = (data for _event, data, _groups in captured_events)
    assert sending["status"] == "sending"
    assert (updated["id"], updated["messageCount"]) == (str(conversation.pk), 1)
    assert (sent["id"], sent["status"], sent["externalId"]) == (str(message.pk), "sent", "fake-1")


# ------------------------------------------------------------------------------
# message:status publish points
# ------------------------------------------------------------------------------


def _groups(conversation) -> tuple[str, ...]:
    return ("supervisors", f"conversation.{conversation.pk}", f"user.{conversation.operator_id}")


def test_deliver_message_publishes_sending_then_sent(
    message, conversation, fake_provider, captured_events, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deliver_message(message_id=message.pk)

    fresh = _fresh(message)
    assert captured_events == [
        (
            "message:status",
            {
                "id": str(message.pk),
                "conversationId": str(conversation.pk),
                "externalId": None,
                "status": "sending",
                "statusCode": None,
                "statusReason": None,
                "changedAt": captured_events[0][1]["changedAt"],
            },
            _groups(conversation),
        ),
        (
            "message:status",
            {
                "id": str(message.pk),
                "conversationId": str(conversation.pk),
                "externalId": "fake-1",
                "status": "sent",
                "statusCode": None,
                "statusReason": None,
                "changedAt": captured_events[1][1]["changedAt"],
            },
            _groups(conversation),
        ),
    ]
    assert captured_events[1][1]["changedAt"] == fresh.status_changed_at.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (ProviderTimeout(), "uncertain", UNCERTAIN_REASON),
        (ProviderConnectionError(), "pending", UNREACHABLE),
        (ProviderRejected(provider_code="131026"), "failed", "O provedor de WhatsApp rejeitou a solicitação"),
    ],
    ids=["uncertain", "retry", "failed"],
)
def test_deliver_message_publishes_each_outcome(
    message, conversation, fake_provider, captured_events, django_capture_on_commit_callbacks, error, status, reason
):
    fake_provider.fail_next = error

    with django_capture_on_commit_callbacks(execute=True):
        deliver_message(message_id=message.pk)

    assert [data["status"] for _event, data, _groups in captured_events] == ["sending", status]
    event, data, groups = captured_events[-1]
    assert (event, groups) == ("message:status", _groups(conversation))
    assert (data["id"], data["statusReason"]) == (str(message.pk), reason)


def test_deliver_message_skipped_publishes_nothing(
    conversation, operator_user, fake_provider, captured_events, django_capture_on_commit_callbacks
):
    sent = _pending(conversation, operator_user, status=MessageStatus.SENT, external_id="X1")

    with django_capture_on_commit_callbacks(execute=True):
        deliver_message(message_id=sent.pk)

    assert captured_events == []


# ------------------------------------------------------------------------------
# The sweeper
# ------------------------------------------------------------------------------


def test_sweep_outbox_requeues_a_stale_pending_message(
    conversation, operator_user, fake_provider, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_STALE_SECONDS = 120
    with time_machine.travel(T0, tick=False):
        stale = _pending(conversation, operator_user)
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        fresh = _pending(conversation, operator_user, content="ainda na fila")

    with time_machine.travel(T0 + timedelta(seconds=121), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            result = sweep_outbox()

    assert (result.requeued, result.uncertain) == (1, 0)
    assert _fresh(stale).status == MessageStatus.SENT
    assert _fresh(fresh).status == MessageStatus.PENDING
    assert [call["text"] for call in _sends(fake_provider)] == [TEXT]


def test_sweep_outbox_waits_for_a_planned_retry(conversation, operator_user, fake_provider, settings):
    settings.OUTBOX_STALE_SECONDS, settings.OUTBOX_RETRY_BASE_SECONDS = 120, 5
    with time_machine.travel(T0, tick=False):
        retrying = _pending(conversation, operator_user, attempts=1)  # retry planned 10 s after T0

    with time_machine.travel(T0 + timedelta(seconds=125), tick=False):
        assert sweep_outbox().requeued == 0
    with time_machine.travel(T0 + timedelta(seconds=131), tick=False):
        assert sweep_outbox().requeued == 1
    assert _fresh(retrying).status == MessageStatus.PENDING  # the task was queued, not run (no commit)


def test_sweep_outbox_twice_requeues_once(conversation, operator_user, fake_provider, settings):
    settings.OUTBOX_STALE_SECONDS = 120
    with time_machine.travel(T0, tick=False):
        _pending(conversation, operator_user)

    with time_machine.travel(T0 + timedelta(seconds=200), tick=False):
        first, second = sweep_outbox(), sweep_outbox()

    assert (first.requeued, second.requeued) == (1, 0)


def test_sweep_outbox_requeued_twice_still_sends_once(
    conversation, operator_user, fake_provider, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_STALE_SECONDS = 120
    with time_machine.travel(T0, tick=False):
        message = _pending(conversation, operator_user)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with time_machine.travel(T0 + timedelta(seconds=200), tick=False):
            sweep_outbox()
        with time_machine.travel(T0 + timedelta(seconds=400), tick=False):
            sweep_outbox()
    for callback in callbacks:  # both re-queues run, as after a lost-then-found task
        callback()

    assert len(callbacks) == 2
    assert len(_sends(fake_provider)) == 1
    assert _fresh(message).status == MessageStatus.SENT


def test_sweep_outbox_marks_a_stale_sending_message_uncertain_without_sending(
    conversation, operator_user, fake_provider, captured_events, django_capture_on_commit_callbacks
):
    with time_machine.travel(T0, tick=False):
        interrupted = _pending(conversation, operator_user, status=MessageStatus.SENDING, attempts=1)
    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        in_flight = _pending(conversation, operator_user, status=MessageStatus.SENDING, attempts=1)

    with time_machine.travel(T0 + timedelta(minutes=11), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            result = sweep_outbox()

    assert (result.requeued, result.uncertain) == (0, 1)
    interrupted = _fresh(interrupted)
    assert (interrupted.status, interrupted.status_code, interrupted.status_reason) == (
        MessageStatus.UNCERTAIN,
        "interrupted",
        "O envio foi interrompido durante a chamada ao provedor; a mensagem pode ter sido enviada",
    )
    assert _fresh(in_flight).status == MessageStatus.SENDING
    assert _sends(fake_provider) == []
    ((event, data, groups),) = captured_events
    assert (event, data["id"], data["status"], groups) == (
        "message:status",
        str(interrupted.pk),
        "uncertain",
        _groups(conversation),
    )


def test_sweep_outbox_batches_are_bounded(conversation, operator_user, settings):
    settings.OUTBOX_STALE_SECONDS = 120
    with time_machine.travel(T0, tick=False):
        for _ in range(3):
            _pending(conversation, operator_user)
            _pending(conversation, operator_user, status=MessageStatus.SENDING)

    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        first = sweep_outbox(batch_size=2)
        second = sweep_outbox(batch_size=2)

    assert (first.requeued, first.uncertain, second.requeued, second.uncertain) == (2, 2, 1, 1)


def test_sweep_outbox_leaves_inbound_and_finished_messages_alone(conversation, operator_user, settings):
    settings.OUTBOX_STALE_SECONDS = 120
    with time_machine.travel(T0, tick=False):
        rows = [
            _pending(conversation, None, direction=Direction.INBOUND, via=Via.INBOUND, status=MessageStatus.RECEIVED),
            _pending(conversation, operator_user, status=MessageStatus.SENT, external_id="S1"),
            _pending(conversation, operator_user, status=MessageStatus.UNCERTAIN),
            _pending(conversation, operator_user, status=MessageStatus.FAILED),
            _pending(conversation, operator_user, kind="image"),
        ]

    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        result = sweep_outbox()

    assert (result.requeued, result.uncertain) == (0, 0)
    assert [_fresh(row).status for row in rows] == [row.status for row in rows]


def test_sweep_outbox_task_reports_counts(db):
    assert sweep_outbox_task.apply().get() == {"requeued": 0, "uncertain": 0}


# ------------------------------------------------------------------------------
# End to end: a real Celery worker process, Redis, PostgreSQL and the provider simulator
# ------------------------------------------------------------------------------

SIM_KEY = "sim-evolution-key"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def simulator(settings):
    from instances.simulator.server import run_in_thread

    handle = run_in_thread(webhook_delay=0.01, webhook_attempts=1, webhook_timeout=1.0, verify_meta_callback=False)
    # Nothing listens at APP_URL here: the simulator's receipts fail fast and are not under test.
    settings.APP_URL = f"http://127.0.0.1:{_closed_port()}"
    settings.PROVIDER_RETRY_BACKOFF = 0.01
    yield handle
    handle.stop()


@pytest.fixture
def worker(settings, tmp_path):
    """``celery worker --pool solo`` on this test's database and Redis; the API enqueues for real."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis (a worker process cannot see an in-memory test database)")
    from elsehub.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # the API's .delay() goes to Redis, for the worker
    worker = start_worker(settings, tmp_path / "worker.log")
    worker.process.log = worker.log
    try:
        yield worker.process
    finally:
        app.conf.task_always_eager = eager
        worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_send_end_to_end_with_a_real_worker_and_the_simulator(simulator, worker, client_for, make_user):
    from accounts.models import Role
    from instances import services as instance_services

    instance = instance_services.create_instance(
        name="WhatsApp Loja",
        phone="(14) 98888-7777",
        provider="EVOLUTION_API",
        credentials={"serverUrl": simulator.url, "apiToken": SIM_KEY, "instanceName": "e2e-loja"},
    )
    scan = requests.post(
        f"{simulator.url}/_sim/scan",
        json={"instance": "e2e-loja", "number": "5514988887777", "profileName": "Loja"},
        timeout=5,
    )
    assert scan.status_code == 200 and scan.json()["state"] == "open", scan.text
    operator = make_user(Role.OPERATOR)
    conversation = ConversationFactory(
        contact=ContactFactory(phone=PHONE), service_instance=instance, operator=operator
    )

    response = client_for(operator).post(
        "/api/messages/send", {"conversationId": str(conversation.pk), "content": TEXT}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"

    message_id = response.json()["id"]
    deadline = time.monotonic() + 60
    message = Message.objects.get(pk=message_id)
    while time.monotonic() < deadline and message.status != MessageStatus.SENT:
        assert worker.poll() is None, f"the worker exited: {worker.log.read_text()[-3000:]}"
        time.sleep(0.2)
        message = Message.objects.get(pk=message_id)

    assert message.status == MessageStatus.SENT, (message.status, worker.log.read_text()[-3000:])
    sent = requests.get(f"{simulator.url}/_sim/state", timeout=5).json()["sent"]
    assert len(sent) == 1, sent
    assert (sent[0]["instance"], sent[0]["to"], sent[0]["type"]) == (
        "e2e-loja",
        "5514997651234@s.whatsapp.net",
        "conversation",
    )
    assert message.external_id == sent[0]["id"]
    assert message.attempts == 1
