"""Evolution API v2 core: errors, guards, webhook emission and the QR/scan/logout lifecycle.

Guard order is Evolution's own (``index.router``: instanceExistsGuard, instanceLoggedGuard, then
authGuard): an unknown instance answers 404 and a taken name 403 *before* the apikey is checked.
Routes live in ``evolution_instances``, ``evolution_send`` and ``evolution_chat``.
"""

import hashlib
import itertools
import re
import threading
from typing import Any

from instances.simulator import evolution_payloads as p
from instances.simulator.media import qr_data_uri
from instances.simulator.routing import BadJSON, HTTPFailure, Request, Response, json_response
from instances.simulator.state import EvolutionInstance, SimulatorState, now_iso
from instances.simulator.webhooks import Outgoing, WebhookDispatcher

ERROR_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
NAME = r"(?P<name>[^/]+)"
# Global, so that a timer left over from a deleted (or reset) instance never fires on a new one.
QR_SESSIONS = itertools.count(1)


def error(status: int, message: Any) -> Response:
    return json_response(
        status, {"status": status, "error": ERROR_NAMES.get(status, "Error"), "response": {"message": message}}
    )


def not_found(name: str) -> Response:
    return error(404, [f'The "{name}" instance does not exist'])


def require(body: dict[str, Any], *names: str) -> None:
    """Evolution's JSON-schema answer for missing required properties."""
    missing = [f'instance requires property "{n}"' for n in names if body.get(n) in (None, "")]
    if missing:
        raise HTTPFailure(error(400, missing))


class EvolutionAPI:
    def __init__(self, state: SimulatorState, dispatcher: WebhookDispatcher):
        self.state = state
        self.dispatcher = dispatcher

    # -- guards --------------------------------------------------------------------------------
    def check_key(self, req: Request, instance: EvolutionInstance | None = None) -> None:
        key = req.header("apikey")
        if key and (key == self.state.config.evolution_api_key or (instance is not None and key == instance.token)):
            return
        raise HTTPFailure(error(401, "Unauthorized"))

    def guarded(self, req: Request) -> EvolutionInstance:
        name = req.params["name"]
        with self.state.lock:
            instance = self.state.instances.get(name)
        if instance is None:
            raise HTTPFailure(not_found(name))
        self.check_key(req, instance)
        return instance

    @staticmethod
    def body(req: Request) -> dict[str, Any]:
        try:
            data = req.json()
        except BadJSON as exc:
            raise HTTPFailure(error(400, [f"Unexpected token in JSON: {exc}"])) from None
        if not isinstance(data, dict):
            raise HTTPFailure(error(400, ["instance is not of a type(s) object"]))
        return data

    # -- webhooks ------------------------------------------------------------------------------
    def outgoing(self, instance: EvolutionInstance, event: str, data: Any, **extra: Any) -> Outgoing:
        hook = instance.webhook or {}
        url, skip = hook.get("url"), None
        if not hook or not hook.get("enabled"):
            skip = "no webhook enabled"
        elif hook.get("events") and p.event_config_name(event) not in hook["events"]:
            skip = f"{p.event_config_name(event)} not in webhook.events"
        elif not re.match(r"^https?://", url or ""):
            skip = "webhook URL is not http(s)"
        elif hook.get("webhookByEvents"):
            url = f"{url.rstrip('/')}/{p.event_config_name(event).replace('_', '-').lower()}"
        payload = p.envelope(instance, event, data, server_url=self.state.base_url)
        return Outgoing(
            provider="evolution",
            target=instance.name,
            event=event,
            url=url,
            payload=payload,
            headers=dict(hook.get("headers") or {}),
            skip_reason=skip,
            **extra,
        )

    def emit(self, instance: EvolutionInstance, *events: tuple[str, Any]) -> None:
        self.dispatcher.send([self.outgoing(instance, event, data) for event, data in events])

    # -- lifecycle -----------------------------------------------------------------------------
    def start_connecting(self, instance: EvolutionInstance, number: str | None) -> list[tuple[str, Any]]:
        """Show a fresh QR (caller holds the lock); returns the webhooks to emit."""
        instance.status = "connecting"
        instance.qr_session = next(QR_SESSIONS)
        instance.qr_count = 1
        instance.qr_code = p.new_qr_code()
        instance.qr_image = qr_data_uri(instance.qr_code)
        if number:
            instance.number = p.digits_of(number)
        instance.pairing_code = p.new_pairing_code() if number else None
        instance.updated_at = now_iso()
        self._start_timers(instance, instance.qr_session)
        return [
            ("connection.update", p.connection_data(instance, "connecting")),
            ("qrcode.updated", self._qr_event(instance)),
        ]

    @staticmethod
    def _qr_event(instance: EvolutionInstance) -> dict[str, Any]:
        return {
            "qrcode": {
                "instance": instance.name,
                "pairingCode": instance.pairing_code,
                "code": instance.qr_code,
                "base64": instance.qr_image,
            }
        }

    def _start_timers(self, instance: EvolutionInstance, session: int) -> None:
        config = self.state.config
        if config.auto_scan is not None:
            threading.Thread(
                target=self._auto_scan, args=(instance.name, session, config.auto_scan), daemon=True
            ).start()
        if config.qr_refresh > 0:
            threading.Thread(target=self._refresh_qr, args=(instance.name, session), daemon=True).start()

    def _current(self, name: str, session: int) -> EvolutionInstance | None:
        instance = self.state.instances.get(name)
        if instance is None or instance.qr_session != session or instance.status != "connecting":
            return None
        return instance

    def _auto_scan(self, name: str, session: int, seconds: float) -> None:
        if self.state.stop_event.wait(seconds):
            return
        with self.state.lock:
            instance = self._current(name, session)
            if instance is not None:
                self.scan(instance)

    def _refresh_qr(self, name: str, session: int) -> None:
        while not self.state.stop_event.wait(self.state.config.qr_refresh):
            with self.state.lock:
                instance = self._current(name, session)
                if instance is None:
                    return
                instance.qr_count += 1
                if instance.qr_count > self.state.config.qr_limit:
                    instance.status, instance.qr_session = "close", next(QR_SESSIONS)
                    instance.qr_code = instance.qr_image = instance.pairing_code = None
                    self.emit(
                        instance,
                        ("qrcode.updated", {"message": "QR code limit reached, please login again", "statusCode": 500}),
                        ("connection.update", p.connection_data(instance, "refused", 428)),
                    )
                    return
                instance.qr_code = p.new_qr_code()
                instance.qr_image = qr_data_uri(instance.qr_code)
                if instance.pairing_code:
                    instance.pairing_code = p.new_pairing_code()
                self.emit(instance, ("qrcode.updated", self._qr_event(instance)))

    def scan(
        self, instance: EvolutionInstance, *, number: str | None = None, profile_name: str | None = None
    ) -> EvolutionInstance:
        """The phone scans the QR: ``connecting`` -> ``open`` (caller checks the state)."""
        with self.state.lock:
            digits = p.digits_of(number or instance.number or "")
            if not digits:
                digits = "55149" + str(int(hashlib.sha256(instance.name.encode()).hexdigest(), 16))[-8:]
            instance.number = instance.number or digits
            instance.wuid = f"{digits}@s.whatsapp.net"
            instance.profile_name = profile_name or instance.profile_name or f"Simulated {instance.name}"
            instance.profile_picture_url = f"https://pps.whatsapp.net/v/t61.24694-24/sim_{digits}.jpg?ccb=11-4"
            instance.status = "open"
            instance.qr_session = next(QR_SESSIONS)
            instance.qr_code = instance.qr_image = instance.pairing_code = None
            instance.qr_count = 0
            instance.disconnection_reason = instance.disconnection_at = None
            instance.updated_at = now_iso()
            self.emit(instance, ("connection.update", p.connection_data(instance, "open")))
            return instance

    def close(self, instance: EvolutionInstance, reason: int = 401) -> list[tuple[str, Any]]:
        """Logged out (by us or on the phone): caller holds the lock; returns the webhooks."""
        instance.status = "close"
        instance.qr_session = next(QR_SESSIONS)
        instance.qr_code = instance.qr_image = instance.pairing_code = None
        instance.disconnection_reason, instance.disconnection_at = reason, now_iso()
        instance.updated_at = now_iso()
        status = {
            "instance": instance.name,
            "status": "closed",
            "disconnectionAt": instance.disconnection_at,
            "disconnectionReasonCode": reason,
            "disconnectionObject": f'{{"error":{{"output":{{"statusCode":{reason}}}}}}}',
        }
        events = [("status.instance", status), ("connection.update", p.connection_data(instance, "close", reason))]
        if reason == 401:
            events.append(("logout.instance", None))
        return events

    def find_row(self, instance: EvolutionInstance, key_id: str) -> dict[str, Any] | None:
        with self.state.lock:
            return next((r for r in reversed(instance.messages) if r["key"]["id"] == key_id), None)
