"""Webhook delivery: background threads, small pauses, bounded retries, a delivery log.

Deliveries for one instance or Meta number leave in order, one at a time, each after a pause of
``config.webhook_delay``. Fault knobs apply here: out-of-order reverses a
status sequence, duplicates re-post the same bytes. Bodies are serialised once and the exact bytes
are what Meta's signature covers.
"""

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from instances.simulator.state import SimulatorState, now_iso

logger = logging.getLogger(__name__)

EVOLUTION_USER_AGENT = "axios/1.7.9"
META_USER_AGENT = "facebookexternalua"


@dataclass
class Outgoing:
    provider: str  # "evolution" or "meta"
    target: str  # instance name or Meta phone id
    event: str
    url: str | None
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    #: Meta: the app secret that signs the body
    sign_secret: str | None = None
    #: why it is not sent (no webhook, event not subscribed); callbacks still run
    skip_reason: str | None = None
    #: runs just before the delivery (e.g. move the stored message to this status)
    on_deliver: Callable[[], None] | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def encode_body(provider: str, payload: Any) -> bytes:
    if provider == "meta":
        # Graph serialises like PHP's json_encode: ASCII only, "/" escaped. A receiver that checks
        # the signature over re-serialised JSON instead of the raw bytes fails, as it would live.
        return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def evolution_jwt(key: str) -> str:
    """What Evolution sends as ``Authorization: Bearer`` when the webhook headers hold ``jwt_key``."""
    now = int(time.time())
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def request_headers(item: Outgoing, body: bytes) -> dict[str, str]:
    if item.provider == "meta":
        headers = {"Content-Type": "application/json", "User-Agent": META_USER_AGENT}
        if item.sign_secret:
            headers["X-Hub-Signature-256"] = meta_signature(item.sign_secret, body)
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(item.sign_secret.encode(), body, hashlib.sha1).hexdigest()
        return headers
    headers = {"Content-Type": "application/json", "User-Agent": EVOLUTION_USER_AGENT}
    custom = {str(k): str(v) for k, v in (item.headers or {}).items()}
    jwt_key = custom.pop("jwt_key", None)
    headers.update(custom)
    if jwt_key:
        headers["Authorization"] = f"Bearer {evolution_jwt(jwt_key)}"
    return headers


class WebhookDispatcher:
    """One FIFO per target (instance or phone id), drained by its own short-lived daemon thread.

    Per-target order is kept (a QR is never delivered after the ``open`` that followed it); only
    the out-of-order fault reorders, and only within one status sequence.
    """

    def __init__(self, state: SimulatorState):
        self.state = state
        self.session = requests.Session()
        self._queues: dict[str, deque[Outgoing]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._cond = threading.Condition()

    def send(self, items: list[Outgoing], *, statuses: bool = False) -> None:
        if not items:
            return
        if statuses and self.state.faults.out_of_order:
            items = list(reversed(items))
        key = f"{items[0].provider}:{items[0].target}"
        with self._cond:
            self._queues.setdefault(key, deque()).extend(items)
            if key not in self._workers:
                worker = threading.Thread(target=self._work, args=(key,), name=f"sim-webhooks-{key}", daemon=True)
                self._workers[key] = worker
                worker.start()

    def clear(self) -> None:
        """Drop every delivery not yet sent (a reset)."""
        with self._cond:
            for queue in self._queues.values():
                queue.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every scheduled delivery has finished (tests and ``stop``)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._workers, timeout)

    def _work(self, key: str) -> None:
        while True:
            with self._cond:
                queue = self._queues.get(key)
                if not queue or self.state.stop_event.is_set():
                    self._queues.pop(key, None)
                    self._workers.pop(key, None)
                    self._cond.notify_all()
                    return
                item = queue.popleft()
            if self.state.stop_event.wait(self.state.config.webhook_delay):
                continue
            if item.on_deliver:
                item.on_deliver()
            self._deliver(item, duplicate=False)
            if not item.skip_reason and item.url and self.state.chance(self.state.faults.duplicate_webhooks):
                self._deliver(item, duplicate=True)

    def _deliver(self, item: Outgoing, *, duplicate: bool) -> None:
        entry: dict[str, Any] = {
            "id": self.state.next_delivery_id(),
            "at": now_iso(),
            "provider": item.provider,
            "target": item.target,
            "event": item.event,
            "url": item.url,
            "duplicate": duplicate,
            **item.summary,
            "body": item.payload,
        }
        if item.skip_reason or not item.url:
            self._log(entry, result="skipped", reason=item.skip_reason or "no webhook URL")
            return
        body = encode_body(item.provider, item.payload)
        headers = request_headers(item, body)
        attempts = max(1, self.state.config.webhook_attempts)
        status, error = None, None
        for attempt in range(1, attempts + 1):
            try:
                response = self.session.post(
                    item.url, data=body, headers=headers, timeout=self.state.config.webhook_timeout
                )
                status, error = response.status_code, None
                if status < 500 and status != 429:
                    break
            except requests.RequestException as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt < attempts and self.state.stop_event.wait(max(0.05, self.state.config.webhook_delay) * attempt):
                break
        ok = status is not None and 200 <= status < 300
        self._log(entry, result="delivered" if ok else "failed", httpStatus=status, attempts=attempt, error=error)

    def _log(self, entry: dict[str, Any], **extra: Any) -> None:
        entry.update(extra)
        with self.state.lock:
            self.state.deliveries.append(entry)
        logger.info(
            "simulator.webhook.%s",
            entry["result"],
            extra={"event": entry["event"], "target": entry["target"], "status": entry.get("httpStatus")},
        )
