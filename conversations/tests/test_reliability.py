"""Reliability end to end, with real components only: a live server over HTTP, the provider
simulator, PostgreSQL, Redis as the broker and real ``celery worker`` processes (one of them killed
with SIGKILL on purpose). No mocks, no fake provider.

- a customer's text becomes a queued conversation that an operator takes, answers (sent, then
  delivered and read by the simulator's receipts) and closes with a tabulation;
- every webhook of a short scenario replayed three times at once, byte for byte and re-serialised,
  changes nothing;
- a burst of 1,000 messages survives a worker killed mid-burst: a new worker and the webhook
  sweeper finish the job with every message stored once;
- forged webhooks are refused over real HTTP and store nothing.

Every wait polls for its effect against a deadline; no test sleeps a fixed time.
"""

import copy
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from amqp.exceptions import ChannelError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count

from accounts.models import Role
from contacts.models import Contact
from conversations.models import (
    ChatStatus,
    Conversation,
    ConversationClosure,
    Direction,
    EarlyStatus,
    Message,
    MessageStatus,
)
from conversations.tests.workers import Worker, start_worker
from instances.models import ConnectionStatus, Provider, ServiceInstance
from instances.providers.meta.signature import sign
from instances.simulator.server import run_in_thread
from instances.simulator.webhooks import encode_body
from instances.tests.factories import META_CREDENTIALS, ServiceInstanceFactory
from webhooks import services as webhook_services
from webhooks.models import EventState, WebhookEvent
from webhooks.tests.conftest import META_PHONE_ID, raw

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SIM_KEY = "sim-evolution-key"
EVOLUTION_WEBHOOK = "/api/webhooks/evolution"
META_WEBHOOK = "/api/webhooks/meta"
SECRET_HEADER = "x-elsehub-secret"
FINAL_STATES = {EventState.PROCESSED, EventState.IGNORED}
# The simulator's pause before each webhook. Long enough for create_instance to save the row
# before the first QR arrives, and for a poller to see each receipt (sent, delivered, read).
WEBHOOK_DELAY = 0.5


@pytest.fixture(autouse=True)
def _real_backends(settings):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip(
            "reliability tests need PostgreSQL and Redis: worker processes share the test database and "
            f"the broker with the test (backends in use: {settings.TEST_BACKENDS})"
        )


def _eventually(check: Callable, *, timeout: float, failure: Callable[[], str] | str = "", interval: float = 0.05):
    """Poll ``check`` until it returns something truthy; fail with ``failure`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(failure() if callable(failure) else failure or "timed out")
        time.sleep(interval)


# ------------------------------------------------------------------------------
# Real Celery workers (the pattern of test_outbound's ``worker`` fixture, startable several
# times and killable as a process group)
# ------------------------------------------------------------------------------


def _queued(app) -> int:
    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(app.conf.task_default_queue, passive=True).message_count
        except ChannelError:  # Redis drops an emptied list: no key, no queue
            return 0


def _unacked(app) -> int:
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        return channel.client.hlen(channel.unacked_key)


def _clear_broker(app) -> None:
    """Empty the queue and forget unacknowledged deliveries (a killed worker's), which Redis would
    otherwise hand to some later worker once the visibility timeout passes."""
    app.control.purge()
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.client.delete(channel.unacked_key, channel.unacked_index_key, channel.unacked_mutex_key)


@pytest.fixture
def workers(transactional_db, settings, tmp_path):
    """``start(pool=..., concurrency=...)`` runs a ``celery worker`` on this test's database and broker.

    Celery stops being eager in this process, so the live server's ``.delay()`` goes to Redis.
    """
    from elsehub.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    _clear_broker(app)
    started: list[Worker] = []

    def start(*, pool: str = "solo", concurrency: int = 1) -> Worker:
        number = len(started) + 1
        worker = start_worker(
            settings, tmp_path / f"worker-{number}.log", pool=pool, concurrency=concurrency, name=f"reliability{number}"
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    app.conf.task_always_eager = eager
    _clear_broker(app)


# ------------------------------------------------------------------------------
# The server, the simulator and people using the API over HTTP
# ------------------------------------------------------------------------------


@pytest.fixture
def app_server(live_server, settings, monkeypatch):
    # Keep-alive connections (simulator, API clients) keep live server threads running past the
    # test: they must not hold a persistent database session that would block the flush.
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    settings.APP_URL = live_server.url
    return live_server


@pytest.fixture
def sim(app_server, settings):
    handle = run_in_thread(
        webhook_delay=WEBHOOK_DELAY, webhook_attempts=3, webhook_timeout=10.0, verify_meta_callback=False
    )
    settings.PROVIDER_RETRY_BACKOFF = 0.01
    settings.PROVIDER_CONNECT_TIMEOUT = 2.0
    settings.PROVIDER_READ_TIMEOUT = 10.0
    yield handle
    handle.wait_for_webhooks(10)
    handle.stop()


def _control(sim, method: str, path: str, **kwargs):
    response = requests.request(method, f"{sim.url}/_sim/{path}", timeout=10, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


class Console:
    """A person signed in with email and password, using the REST API over HTTP."""

    def __init__(self, base_url: str, email: str, password: str):
        self.base_url = base_url
        self.session = requests.Session()
        body = self.call("POST", "/api/auth/login", 200, json={"email": email, "password": password})
        self.user_id = body["user"]["id"]
        self.session.headers["Authorization"] = f"Bearer {body['tokens']['accessToken']}"

    def call(self, method: str, path: str, expected: int, **kwargs):
        response = self.session.request(method, f"{self.base_url}{path}", timeout=30, **kwargs)
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def get(self, path: str):
        return self.call("GET", path, 200)


@pytest.fixture
def console(app_server, make_user, password):
    opened: list[Console] = []

    def sign_in(role: str) -> Console:
        user = make_user(role)
        opened.append(Console(app_server.url, user.email, password))
        return opened[-1]

    yield sign_in
    for person in opened:
        person.session.close()


def _connect_number(admin: Console, sim, name: str, number: str, worker: Worker) -> dict:
    """Create an Evolution number against the simulator through the API, scan it, and wait for the
    scan's webhook to mark it connected."""
    body = {
        "name": f"WhatsApp {name}",
        "phone": number,
        "provider": "EVOLUTION_API",
        "credentials": {"serverUrl": sim.url, "apiToken": SIM_KEY, "instanceName": name},
    }
    created = admin.call("POST", "/api/service-instances", 201, json=body)
    assert created["status"] == ConnectionStatus.CONNECTING and created["qrcode"], created
    _control(sim, "POST", "scan", json={"instance": name, "number": number, "profileName": "Loja"})

    def connected():
        assert worker.alive(), worker.tail()
        return admin.get(f"/api/service-instances/{created['id']}")["status"] == ConnectionStatus.CONNECTED

    _eventually(connected, timeout=20, failure=lambda: f"never connected: {worker.tail()}")
    return created


def _customer_writes(sim, instance_name: str, phone: str, name: str, text: str) -> None:
    spec = {"instance": instance_name, "from": phone, "name": name, "kind": "text", "text": text}
    _control(sim, "POST", "inbound", json=spec)


def _all_events_final(since_id: int = 0) -> bool:
    return not WebhookEvent.objects.filter(pk__gt=since_id).exclude(state__in=FINAL_STATES).exists()


def _event_states() -> dict:
    return dict(Counter(WebhookEvent.objects.values_list("state", flat=True)))


# ------------------------------------------------------------------------------
# 1. The whole flow, as the customer and the operator see it
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("customer", "jid"),
    [
        ("+5514997651234", "5514997651234@s.whatsapp.net"),
        # WhatsApp addresses this mobile without its ninth digit, both ways: one customer all the same.
        ("+5531997651234", "553197651234@s.whatsapp.net"),
    ],
)
def test_full_flow_customer_text_to_closed_conversation(sim, workers, console, customer, jid):
    worker = workers()
    admin, operator = console(Role.ADMIN), console(Role.OPERATOR)
    number = _connect_number(admin, sim, "loja-fluxo", "5514988887777", worker)

    _customer_writes(sim, "loja-fluxo", customer, "Maria Cliente", "Oi! Meu pedido ainda não chegou")

    def queued():
        rows = operator.get("/api/conversations/queue")
        return [row for row in rows if row["contactPhone"] == customer] if rows else None

    (conversation,) = _eventually(queued, timeout=20, failure=lambda: f"nothing queued: {worker.tail()}")
    assert conversation["status"] == ChatStatus.OPEN and conversation["operatorId"] is None
    assert conversation["serviceInstanceId"] == number["id"]
    path = f"/api/conversations/{conversation['id']}"
    (received,) = operator.get(f"/api/messages/conversation/{conversation['id']}")
    assert (received["content"], received["direction"], received["status"]) == (
        "Oi! Meu pedido ainda não chegou",
        Direction.INBOUND,
        MessageStatus.RECEIVED,
    )

    taken = operator.call("PATCH", f"{path}/assign", 200, json={"operatorId": operator.user_id})
    assert taken["operatorId"] == operator.user_id
    assert all(row["id"] != conversation["id"] for row in operator.get("/api/conversations/queue"))

    answer = "Olá, Maria! Seu pedido sai hoje."
    sent = operator.call(
        "POST", "/api/messages/send", 201, json={"conversationId": conversation["id"], "content": answer}
    )
    assert sent["status"] == MessageStatus.PENDING
    seen: list[str] = []

    def read():
        message = operator.get(f"/api/messages/{sent['id']}")
        if not seen or seen[-1] != message["status"]:
            seen.append(message["status"])
        assert message["status"] not in (MessageStatus.FAILED, MessageStatus.UNCERTAIN), message
        return message if message["status"] == MessageStatus.READ else None

    message = _eventually(read, timeout=30, interval=0.02, failure=lambda: f"statuses seen {seen}: {worker.tail()}")
    # Forward only, and each receipt was seen on its own: sent (the worker), delivered, read.
    assert seen[-3:] == [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ], seen
    (provider_copy,) = _control(sim, "GET", "state")["sent"]
    assert message["externalId"] == provider_copy["id"]
    assert provider_copy["to"] == jid
    # The provider's echo of our send (send.message, fromMe) was merged, not stored again.
    messages = operator.get(f"/api/messages/conversation/{conversation['id']}")
    assert [(m["direction"], m["content"]) for m in messages] == [
        (Direction.INBOUND, "Oi! Meu pedido ainda não chegou"),
        (Direction.OUTBOUND, answer),
    ]

    tabulation = admin.call("POST", "/api/tabulations", 201, json={"name": "Pedido localizado"})
    operator.call("POST", f"{path}/close", 204, json={"tabulationId": tabulation["id"]})

    closed = operator.get(path)
    assert (closed["status"], closed["messageCount"]) == (ChatStatus.CLOSED, 2)
    closure = ConversationClosure.objects.get(conversation_id=conversation["id"])
    assert closure.first_response_seconds is not None
    assert (closure.inbound_count, closure.outbound_count) == (1, 1)
    assert (str(closure.tabulation_id), str(closure.operator_id)) == (tabulation["id"], operator.user_id)
    assert _eventually(_all_events_final, timeout=10, failure=lambda: str(_event_states()))
    assert not WebhookEvent.objects.filter(state=EventState.FAILED).exists()
    # Every webhook sent was answered 200 (events the number is not subscribed to are "skipped").
    # The QR sent while create_instance is still saving the row may be refused: a known race, not
    # under test here.
    assert sim.wait_for_webhooks(10)
    answered = {
        (entry["event"], entry["httpStatus"])
        for entry in _control(sim, "GET", "webhooks")
        if entry["result"] != "skipped" and entry["event"] != "qrcode.updated"
    }
    assert {status for _event, status in answered} == {200}, answered


def _take_and_answer_until_read(operator: Console, worker: Worker, contact_name: str, answer: str) -> dict:
    """Wait for ``contact_name``'s conversation in the queue, take it, answer, and wait until read."""

    def queued():
        rows = operator.get("/api/conversations/queue")
        return [row for row in rows if row["contactName"] == contact_name] if rows else None

    (conversation,) = _eventually(queued, timeout=20, failure=lambda: f"nothing queued: {worker.tail()}")
    operator.call(
        "PATCH", f"/api/conversations/{conversation['id']}/assign", 200, json={"operatorId": operator.user_id}
    )
    sent = operator.call(
        "POST", "/api/messages/send", 201, json={"conversationId": conversation["id"], "content": answer}
    )

    def read():
        message = operator.get(f"/api/messages/{sent['id']}")
        assert message["status"] not in (MessageStatus.FAILED, MessageStatus.UNCERTAIN), message
        return message if message["status"] == MessageStatus.READ else None

    _eventually(read, timeout=30, failure=lambda: f"never read: {worker.tail()}")
    return conversation


def test_a_customer_who_hides_their_number_is_answered_at_their_whatsapp_id(sim, workers, console):
    worker = workers()
    admin, operator = console(Role.ADMIN), console(Role.OPERATOR)
    _connect_number(admin, sim, "loja-lid", "5514988887777", worker)
    spec = {"instance": "loja-lid", "from": "+5514997651111", "name": "Cliente Discreta", "hidePhone": True}
    _control(sim, "POST", "inbound", json={**spec, "kind": "text", "text": "Oi, sem número por aqui"})

    conversation = _take_and_answer_until_read(operator, worker, "Cliente Discreta", "Olá! Como ajudo?")
    assert conversation["contactPhone"] is None
    (provider_copy,) = _control(sim, "GET", "state")["sent"]
    assert provider_copy["to"].endswith("@lid")
    contact = Contact.objects.get(name="Cliente Discreta")
    assert (contact.phone, contact.whatsapp_id) == (None, provider_copy["to"])
    # The echo of our answer came back addressed to the LID too, and was merged, not stored again.
    assert operator.get(f"/api/conversations/{conversation['id']}")["messageCount"] == 2


def test_a_meta_customer_with_a_username_is_answered_at_their_user_id(sim, workers, console, settings):
    settings.META_GRAPH_API_URL = f"{sim.url}/v23.0"  # before the worker starts: it reads it at start
    worker = workers()
    admin, operator = console(Role.ADMIN), console(Role.OPERATOR)
    credentials = {
        "wabaId": "200000000000001",
        "phoneId": "100000000000001",
        "accessToken": "sim-meta-token",
        "appSecret": "sim-app-secret",
    }
    body = {
        "name": "WhatsApp Oficial",
        "phone": "5514900000001",
        "provider": "OFFICIAL_META",
        "credentials": credentials,
    }
    admin.call("POST", "/api/service-instances", 201, json=body)
    spec = {"phoneId": "100000000000001", "from": "+5514997652222", "name": "Lia", "hidePhone": True}
    _control(sim, "POST", "inbound", json={**spec, "kind": "text", "text": "Oi, sou a Lia"})

    conversation = _take_and_answer_until_read(operator, worker, "Lia", "Olá, Lia!")
    assert conversation["contactPhone"] is None
    (provider_copy,) = _control(sim, "GET", "state")["sent"]
    assert provider_copy["to"].startswith("BR.")  # sent as "recipient", the business-scoped user id
    assert Contact.objects.get(name="Lia").whatsapp_id == provider_copy["to"]


# ------------------------------------------------------------------------------
# 2. Every webhook delivered three times at once
# ------------------------------------------------------------------------------


def _reserialised(payload) -> list[bytes]:
    """The same JSON in three other byte forms (a proxy or a provider retry may re-encode it):
    different dedupe keys, so only the domain's own idempotency stands between them and a duplicate."""
    return [
        json.dumps(payload, ensure_ascii=False, indent=1).encode(),
        json.dumps(payload, ensure_ascii=True, indent=2).encode(),
        json.dumps(payload, ensure_ascii=False, separators=(", ", ": ")).encode(),
    ]


def _post_together(url: str, bodies: list[bytes], headers: dict) -> list[int]:
    """POST every body at the same moment, one thread each."""
    barrier = threading.Barrier(len(bodies))

    def post(body: bytes) -> int:
        with requests.Session() as session:
            barrier.wait(timeout=10)
            return session.post(url, data=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def _events_messages_conversations() -> tuple[int, list, list]:
    return (
        WebhookEvent.objects.count(),
        sorted(Message.objects.values_list("external_id", "status")),
        sorted(Conversation.objects.values_list("contact__phone", "status", "message_count")),
    )


def test_replaying_every_webhook_three_times_concurrently_leaves_no_duplicate(sim, workers, console):
    # Four processes, so that re-serialised copies of one event really are applied concurrently.
    worker = workers(pool="prefork", concurrency=4)
    admin, operator = console(Role.ADMIN), console(Role.OPERATOR)
    number = _connect_number(admin, sim, "loja-replay", "5514988880000", worker)
    sim.state.config.webhook_delay = 0.05
    assert sim.wait_for_webhooks(10)
    watermark = max(entry["id"] for entry in _control(sim, "GET", "webhooks"))

    customers = {"+5514997650001": ("Ana", 3), "+5514997650002": ("Bruno", 2), "+5514997650003": ("Carla", 2)}
    for phone, (name, count) in customers.items():
        for n in range(count):
            _customer_writes(sim, "loja-replay", phone, name, f"{name}, mensagem {n + 1}")
    _eventually(
        lambda: Message.objects.filter(direction=Direction.INBOUND).count() == 7,
        timeout=20,
        failure=lambda: f"inbound stored: {Message.objects.count()}; {worker.tail()}",
    )
    ana = Conversation.objects.get(contact__phone="+5514997650001")
    operator.call("PATCH", f"/api/conversations/{ana.pk}/assign", 200, json={"operatorId": operator.user_id})
    reply = operator.call(
        "POST", "/api/messages/send", 201, json={"conversationId": str(ana.pk), "content": "Oi, Ana!"}
    )
    _eventually(
        lambda: Message.objects.filter(pk=reply["id"], status=MessageStatus.READ).exists(),
        timeout=20,
        failure=lambda: f"{Message.objects.get(pk=reply['id']).status}; {worker.tail()}",
    )
    # Ana's conversation is closed before the replay: an old message of hers must not reopen one.
    tabulation = admin.call("POST", "/api/tabulations", 201, json={"name": "Resolvido"})
    operator.call("POST", f"/api/conversations/{ana.pk}/close", 204, json={"tabulationId": tabulation["id"]})
    assert sim.wait_for_webhooks(10)
    _eventually(_all_events_final, timeout=20, failure=lambda: str(_event_states()))

    deliveries = [
        entry for entry in _control(sim, "GET", "webhooks", params={"result": "delivered"}) if entry["id"] > watermark
    ]
    by_event = Counter(entry["event"] for entry in deliveries)
    # 7 customer messages, our send's echo and its three receipts (the simulator's contact updates too).
    assert by_event["messages.upsert"] == 7 and by_event["send.message"] == 1, by_event
    assert by_event["messages.update"] == 3, by_event
    secret = ServiceInstance.objects.get(pk=number["id"]).webhook_secret
    headers = {"Content-Type": "application/json", SECRET_HEADER: secret}
    url = deliveries[0]["url"]
    assert url.endswith(EVOLUTION_WEBHOOK), url
    events_before, messages_before, conversations_before = _events_messages_conversations()
    last_event = WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    # Newest first, the order that tempts a status backwards (read, then delivered, then sent): each
    # delivery three times at once byte for byte, then three times at once re-serialised.
    answers = Counter()
    for entry in reversed(deliveries):
        exact = encode_body("evolution", entry["body"])
        answers.update(_post_together(url, [exact] * 3, headers))
        answers.update(_post_together(url, _reserialised(entry["body"]), headers))
    assert answers == {200: 6 * len(deliveries)}, answers

    # Identical bytes are stored once; each re-serialised copy is an event of its own, applied.
    assert WebhookEvent.objects.count() == events_before + 3 * len(deliveries)
    _eventually(
        lambda: _all_events_final(last_event), timeout=30, failure=lambda: f"{_event_states()}; {worker.tail()}"
    )
    assert not WebhookEvent.objects.filter(state=EventState.FAILED).exists()
    _, messages_after, conversations_after = _events_messages_conversations()
    assert (messages_after, conversations_after) == (messages_before, conversations_before)

    key_ids = {
        entry["body"]["data"]["key"]["id"]
        for entry in deliveries
        if entry["event"] in ("messages.upsert", "send.message")
    }
    per_id = Counter(Message.objects.values_list("external_id", flat=True))
    assert {key: per_id[key] for key in key_ids} == dict.fromkeys(key_ids, 1)
    assert len(per_id) == Message.objects.count() == 8
    assert set(Message.objects.filter(direction=Direction.INBOUND).values_list("status", flat=True)) == {
        MessageStatus.RECEIVED
    }
    assert Message.objects.get(pk=reply["id"]).status == MessageStatus.READ
    assert not EarlyStatus.objects.exists()
    conversations = Conversation.objects.annotate(stored=Count("messages")).values_list(
        "contact__phone", "status", "message_count", "stored"
    )
    assert sorted(conversations) == [
        ("+5514997650001", ChatStatus.CLOSED, 4, 4),
        ("+5514997650002", ChatStatus.OPEN, 2, 2),
        ("+5514997650003", ChatStatus.OPEN, 2, 2),
    ]
    assert ConversationClosure.objects.count() == 1


# ------------------------------------------------------------------------------
# 3. A worker killed with SIGKILL in the middle of a burst
# ------------------------------------------------------------------------------

CUSTOMERS, MESSAGES_EACH = 50, 20


def _upsert_bodies(instance: ServiceInstance) -> list[bytes]:
    """Evolution ``messages.upsert`` texts, serialised as Evolution does; distinct message ids."""
    template = json.loads(raw("evolution", "messages_upsert__text.json"))
    start = int(time.time()) - 3600
    bodies = []
    for customer in range(CUSTOMERS):
        for n in range(MESSAGES_EACH):
            payload = copy.deepcopy(template)
            payload["instance"] = instance.credentials["instanceName"]
            payload["apikey"] = instance.credentials["apiToken"]
            data = payload["data"]
            data["key"].update(
                remoteJid=f"5514998{customer:06d}@s.whatsapp.net",
                remoteJidAlt=f"9{customer:014d}@lid",
                id=f"3EB0C0FFEE{customer:04d}{n:04d}",
            )
            data["pushName"] = f"Cliente {customer}"
            data["message"]["conversation"] = f"Mensagem {n + 1} do cliente {customer}"
            data["messageTimestamp"] = start + n
            bodies.append(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    return bodies


def _post_burst(url: str, bodies: list[bytes], headers: dict, threads: int = 8) -> Counter:
    local, sessions = threading.local(), []

    def post(body: bytes) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            sessions.append(local.session)
        return local.session.post(url, data=body, headers=headers, timeout=30).status_code

    try:
        with ThreadPoolExecutor(threads) as pool:
            return Counter(pool.map(post, bodies))
    finally:
        for session in sessions:
            session.close()


def test_killing_the_worker_mid_burst_loses_no_message(app_server, workers, settings):
    from elsehub.celery import app

    began = time.monotonic()
    instance = ServiceInstanceFactory(provider=Provider.EVOLUTION_API, connection_status=ConnectionStatus.CONNECTED)
    total = CUSTOMERS * MESSAGES_EACH
    headers = {"Content-Type": "application/json", SECRET_HEADER: instance.webhook_secret}

    # No worker yet: every event is stored, and one drain per partition waits in Redis (a queued
    # drain is not queued twice).
    answers = _post_burst(f"{app_server.url}{EVOLUTION_WEBHOOK}", _upsert_bodies(instance), headers)
    assert answers == {200: total}, answers
    assert WebhookEvent.objects.filter(state=EventState.PENDING).count() == total
    partitions = set(WebhookEvent.objects.values_list("partition", flat=True))
    assert len(partitions) > 1  # 50 customers spread over the partitions
    assert _queued(app) == len(partitions)
    posted = time.monotonic()

    first = workers(pool="prefork", concurrency=2)
    _eventually(
        lambda: Message.objects.count() >= total // 10,
        timeout=60,
        failure=lambda: f"{Message.objects.count()} stored; {first.tail()}",
        interval=0.01,
    )
    first.kill()
    killed = time.monotonic()
    stored_at_kill = Message.objects.count()
    unacked_at_kill = _unacked(app)
    assert 0 < stored_at_kill < total, stored_at_kill

    # The killed worker's unacknowledged drains stay in Redis until the visibility timeout (an
    # hour): the new worker drains the queue, and the sweeper queues drains for the events left
    # PENDING (the killed batches were rolled back).
    second = workers(pool="prefork", concurrency=2)
    _eventually(lambda: _queued(app) == 0, timeout=60, failure=lambda: f"queue not drained; {second.tail()}")
    # A minute by default: shortened here, where the sweep runs.
    settings.WEBHOOK_STALE_SECONDS = 1
    requeued: list[int] = []

    def settled() -> bool:
        assert second.alive(), second.tail()
        if _all_events_final():
            return True
        requeued.extend(webhook_services.sweep_pending_events())
        return False

    _eventually(settled, timeout=60, interval=0.5, failure=lambda: f"events {_event_states()}; {second.tail()}")
    elapsed = time.monotonic() - began
    print(
        f"\n[reliability] {total} webhooks posted in {posted - began:.1f}s; worker killed after "
        f"{killed - posted:.1f}s with {stored_at_kill} stored and {unacked_at_kill} unacknowledged tasks; "
        f"the sweeper re-queued {len(set(requeued))} events; all settled after {elapsed:.1f}s in total"
    )

    assert _event_states() == {EventState.PROCESSED: total}
    assert Message.objects.count() == total
    assert Message.objects.values("external_id").distinct().count() == total
    conversations = Conversation.objects.annotate(stored=Count("messages")).values_list("message_count", "stored")
    assert sorted(conversations) == [(MESSAGES_EACH, MESSAGES_EACH)] * CUSTOMERS
    assert Conversation.objects.filter(status=ChatStatus.OPEN).count() == CUSTOMERS


# ------------------------------------------------------------------------------
# 4. Forged webhooks over real HTTP
# ------------------------------------------------------------------------------


def test_forged_webhooks_are_refused_and_store_nothing(app_server, settings):
    settings.META_APP_SECRET = "reliability-app-secret"
    evolution = ServiceInstanceFactory(provider=Provider.EVOLUTION_API)
    ServiceInstanceFactory(provider=Provider.OFFICIAL_META, credentials={**META_CREDENTIALS, "phoneId": META_PHONE_ID})
    evolution_body = json.loads(raw("evolution", "messages_upsert__text.json"))
    evolution_body["instance"] = evolution.credentials["instanceName"]
    apikey = evolution.credentials["apiToken"]

    def evolution_bytes(**envelope) -> bytes:
        return json.dumps({**evolution_body, **envelope}, separators=(",", ":")).encode()

    # A genuine envelope apikey authenticates by itself (a stale secret header must not lose events),
    # so the forged-secret cases carry no apikey.
    anonymous = evolution_bytes(apikey="")
    meta_bytes = raw("meta", "messages__text.json")
    signed = sign(meta_bytes, settings.META_APP_SECRET)
    evolution_url, meta_url = f"{app_server.url}{EVOLUTION_WEBHOOK}", f"{app_server.url}{META_WEBHOOK}"
    json_type = {"Content-Type": "application/json"}

    forgeries = {
        "evolution without credentials": (evolution_url, anonymous, {}),
        "evolution with a wrong secret": (evolution_url, anonymous, {SECRET_HEADER: "not-the-secret"}),
        "evolution with a wrong apikey": (evolution_url, evolution_bytes(apikey=apikey[::-1]), {}),
        "evolution per-event url, wrong secret": (
            f"{evolution_url}/messages-upsert",
            anonymous,
            {SECRET_HEADER: evolution.webhook_secret[:-1]},
        ),
        "meta without signature": (meta_url, meta_bytes, {}),
        "meta signed with another secret": (meta_url, meta_bytes, {"X-Hub-Signature-256": sign(meta_bytes, "other")}),
        "meta body changed after signing": (
            meta_url,
            meta_bytes.replace(b"Oi!", b"Oi?"),
            {"X-Hub-Signature-256": signed},
        ),
    }
    with requests.Session() as session:
        for name, (url, body, headers) in forgeries.items():
            response = session.post(url, data=body, headers={**json_type, **headers}, timeout=10)
            assert response.status_code == 403, (name, response.status_code, response.text)
            assert response.json()["statusCode"] == 403, name
        assert not WebhookEvent.objects.exists()

        # The same bodies with genuine credentials are accepted: the refusals were the credentials'.
        genuine = session.post(
            evolution_url,
            data=anonymous,
            headers={**json_type, SECRET_HEADER: evolution.webhook_secret},
            timeout=10,
        )
        meta = session.post(meta_url, data=meta_bytes, headers={**json_type, "X-Hub-Signature-256": signed}, timeout=10)
    assert (genuine.status_code, meta.status_code) == (200, 200), (genuine.text, meta.text)
    assert WebhookEvent.objects.count() == 2
