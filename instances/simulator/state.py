"""The simulator's in-memory world: configuration, fault knobs, instances, numbers, media, logs.

Every mutation happens under ``SimulatorState.lock`` (an ``RLock``: handlers call helpers that
lock again). Nothing is persisted; ``reset()`` returns to the state right after start-up.
"""

import random
import secrets
import string
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    evolution_api_key: str = "sim-evolution-key"
    meta_app_secret: str = "sim-app-secret"
    meta_access_token: str = "sim-meta-token"
    meta_phone_id: str = "100000000000001"
    meta_waba_id: str = "200000000000001"
    meta_display_phone: str = "5514900000001"
    meta_verified_name: str = "Elsehub Simulator"
    #: seconds after which an instance showing a QR is "scanned" by itself (None: only on request)
    auto_scan: float | None = None
    #: seconds between QR refreshes (qrcode.updated, count+1); 0 keeps one QR forever
    qr_refresh: float = 0.0
    #: refreshes before Evolution gives up (state "refused", statusReason 428)
    qr_limit: int = 30
    #: pause before each webhook of a sequence (and between the receipts of one message)
    webhook_delay: float = 0.2
    webhook_attempts: int = 3
    webhook_timeout: float = 5.0
    #: Meta checks a new callback URL with a GET (hub.challenge) before storing it
    verify_meta_callback: bool = True
    #: cap on the blocking ``delay`` of Evolution sends and sendPresence, in seconds
    max_request_delay: float = 2.0
    seed: int | None = None


@dataclass
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    #: the next N provider calls answer 429 (counts down)
    rate_limit_burst: int = 0
    timeout_rate: float = 0.0
    timeout_seconds: float = 35.0
    duplicate_webhooks: float = 0.0
    out_of_order: bool = False

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            setattr(self, name, _coerce(value, getattr(self, name)))


def _coerce(value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    if isinstance(current, int):
        return int(value)
    return float(value)


@dataclass
class MediaBlob:
    id: str
    content: bytes
    mime_type: str
    file_name: str | None = None
    #: Meta phone id that may download it (Meta media only)
    owner: str | None = None
    width: int | None = None
    height: int | None = None
    seconds: int | None = None


@dataclass
class EvolutionInstance:
    name: str
    instance_id: str
    token: str
    integration: str = "WHATSAPP-BAILEYS"
    number: str | None = None
    status: str = "close"
    qr_code: str | None = None
    qr_image: str | None = None
    qr_count: int = 0
    pairing_code: str | None = None
    #: changes whenever a QR session starts or ends, so stale auto-scan/refresh timers do nothing
    qr_session: int = 0
    wuid: str | None = None
    profile_name: str | None = None
    profile_picture_url: str | None = None
    webhook: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    disconnection_reason: int | None = None
    disconnection_at: str | None = None
    #: stored message rows, as findMessages returns them
    messages: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)
    archived: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instanceId": self.instance_id,
            "token": self.token,
            "status": self.status,
            "wuid": self.wuid,
            "profileName": self.profile_name,
            "qrCount": self.qr_count,
            "pairingCode": self.pairing_code,
            "webhook": self.webhook,
            "messages": len(self.messages),
            "contacts": len(self.contacts),
        }


@dataclass
class MetaNumber:
    phone_id: str
    waba_id: str
    access_token: str
    display_phone_number: str
    app_secret: str
    verified_name: str = "Elsehub Simulator"
    profile: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


class SimulatorState:
    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig()
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.rng = random.Random(self.config.seed)  # noqa: S311 - test tool, not security
        self.base_url = f"http://{self.config.host}:{self.config.port}"
        self._reset_data()

    def _reset_data(self) -> None:
        self.faults = Faults()
        self.instances: dict[str, EvolutionInstance] = {}
        self.meta_numbers: dict[str, MetaNumber] = {}
        #: WABA id -> {"override_callback_uri", "verify_token"} (absent: app not subscribed)
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.meta_media: dict[str, MediaBlob] = {}
        #: Evolution message key id -> media of that message
        self.evolution_media: dict[str, MediaBlob] = {}
        #: Meta wamid -> sent message record (status follows the receipts)
        self.meta_messages: dict[str, dict[str, Any]] = {}
        self.sent: deque[dict[str, Any]] = deque(maxlen=1000)
        self.inbound: deque[dict[str, Any]] = deque(maxlen=1000)
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        self._delivery_seq = 0
        config = self.config
        self.add_meta_number(
            MetaNumber(
                phone_id=config.meta_phone_id,
                waba_id=config.meta_waba_id,
                access_token=config.meta_access_token,
                display_phone_number=config.meta_display_phone,
                app_secret=config.meta_app_secret,
                verified_name=config.meta_verified_name,
            )
        )

    def reset(self) -> None:
        """Forget everything except the configuration (the CLI's default Meta number comes back)."""
        with self.lock:
            self._reset_data()

    # -- lookups -------------------------------------------------------------------------------
    def add_meta_number(self, number: MetaNumber) -> MetaNumber:
        with self.lock:
            self.meta_numbers[number.phone_id] = number
            return number

    def numbers_of_waba(self, waba_id: str) -> list[MetaNumber]:
        with self.lock:
            return [n for n in self.meta_numbers.values() if n.waba_id == waba_id]

    def meta_tokens(self) -> set[str]:
        with self.lock:
            return {n.access_token for n in self.meta_numbers.values()}

    def instance_by_token(self, token: str) -> EvolutionInstance | None:
        with self.lock:
            return next((i for i in self.instances.values() if i.token == token), None)

    # -- randomness ----------------------------------------------------------------------------
    def chance(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self.lock:
            return self.rng.random() < probability

    def next_delivery_id(self) -> int:
        with self.lock:
            self._delivery_seq += 1
            return self._delivery_seq

    def snapshot(self, *, bodies: bool = False) -> dict[str, Any]:
        with self.lock:
            deliveries = [d if bodies else {k: v for k, v in d.items() if k != "body"} for d in self.deliveries]
            return {
                "baseUrl": self.base_url,
                "evolution": {"apiKey": self.config.evolution_api_key},
                "faults": asdict(self.faults),
                "instances": [i.summary() for i in self.instances.values()],
                "metaNumbers": [n.summary() for n in self.meta_numbers.values()],
                "metaSubscriptions": dict(self.subscriptions),
                "media": {"meta": len(self.meta_media), "evolution": len(self.evolution_media)},
                "sent": list(self.sent),
                "inbound": list(self.inbound),
                "deliveries": deliveries,
            }


# -- ids and clocks ----------------------------------------------------------------------------
def whatsapp_id(digits: str) -> str:
    """The account id WhatsApp gives a number: Evolution's Brazilian rule, which the simulator plays.

    A mobile outside area codes 11-30 whose subscriber number starts with 7, 8 or 9 keeps its
    pre-2016 id without the ninth digit: ``5531988887777`` -> ``553188887777``.
    """
    if (
        len(digits) == 13
        and digits.startswith("55")
        and int(digits[2:4]) >= 31
        and digits[4] == "9"
        and digits[5] >= "7"
    ):
        return digits[:4] + digits[5:]
    return digits


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ts() -> int:
    return int(time.time())


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_cuid() -> str:
    """An id shaped like Prisma's cuid (Evolution's database row ids: ``cm`` + 23 chars)."""
    alphabet = string.ascii_lowercase + string.digits
    return "cm" + "".join(secrets.choice(alphabet) for _ in range(23))


def new_digits(length: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(secrets.choice(string.digits) for _ in range(length - 1))


def fbtrace_id() -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(secrets.choice(alphabet) for _ in range(23))
