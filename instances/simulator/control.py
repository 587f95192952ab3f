"""The control API under ``/_sim/``: drive the phones, set faults, inspect and reset state.

No authentication at all: the server binds to 127.0.0.1 unless told otherwise, and must never be
exposed. Errors answer ``{"error": "<text>"}``.
"""

from dataclasses import asdict
from typing import Any

from instances.simulator import evolution_payloads as p
from instances.simulator.evolution import EvolutionAPI
from instances.simulator.inbound import InboundError, inject_evolution, inject_meta
from instances.simulator.meta import MetaAPI
from instances.simulator.routing import BadJSON, Request, Response, Router, json_response
from instances.simulator.state import Faults, MetaNumber, SimulatorState

RECONNECTABLE = {408, 428, 440, 500, 515}


def fail(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


class ControlAPI:
    def __init__(self, state: SimulatorState, evolution: EvolutionAPI, meta: MetaAPI):
        self.state = state
        self.evolution = evolution
        self.meta = meta

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", "/_sim/health", lambda req: json_response(200, {"ok": True}), area="control")
        add("GET", "/_sim/state", self.get_state, area="control")
        add("POST", "/_sim/reset", self.reset, area="control")
        add("GET", "/_sim/faults", lambda req: json_response(200, asdict(self.state.faults)), area="control")
        add("POST", "/_sim/faults", self.set_faults, area="control")
        add("POST", "/_sim/inbound", self.inbound, area="control")
        add("POST", "/_sim/scan", self.scan, area="control")
        add("POST", "/_sim/disconnect", self.disconnect, area="control")
        add("POST", "/_sim/meta/numbers", self.add_number, area="control")
        add("GET", "/_sim/webhooks", self.webhooks, area="control")

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            body = req.json()
        except BadJSON as exc:
            raise InboundError(400, f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InboundError(400, "the body must be a JSON object")
        return body

    def _guard(self, handler, req: Request) -> Response:
        try:
            return handler(self._body(req))
        except InboundError as exc:
            return fail(exc.status, str(exc))

    def get_state(self, req: Request) -> Response:
        bodies = req.query.get("bodies", "").lower() in {"1", "true", "yes"}
        return json_response(200, self.state.snapshot(bodies=bodies))

    def webhooks(self, req: Request) -> Response:
        with self.state.lock:
            entries = list(self.state.deliveries)
        for name in ("event", "target", "provider", "result"):
            if req.query.get(name):
                entries = [e for e in entries if str(e.get(name)) == req.query[name]]
        return json_response(200, entries)

    def reset(self, req: Request) -> Response:
        self.evolution.dispatcher.clear()
        self.state.reset()
        return json_response(200, {"reset": True})

    def set_faults(self, req: Request) -> Response:
        def apply(body: dict[str, Any]) -> Response:
            with self.state.lock:
                if body.pop("reset", False):
                    self.state.faults = Faults()
                try:
                    self.state.faults.update(body)
                except (TypeError, ValueError) as exc:
                    raise InboundError(400, str(exc)) from None
                return json_response(200, asdict(self.state.faults))

        return self._guard(apply, req)

    def inbound(self, req: Request) -> Response:
        def apply(body: dict[str, Any]) -> Response:
            if "phoneId" in body or body.get("provider") == "meta":
                return json_response(201, inject_meta(self.meta, body))
            if not body.get("instance"):
                raise InboundError(400, "give instance (Evolution) or phoneId (Meta)")
            return json_response(201, inject_evolution(self.evolution, body))

        return self._guard(apply, req)

    def _instance(self, body: dict[str, Any]):
        with self.state.lock:
            instance = self.state.instances.get(str(body.get("instance") or ""))
        if instance is None:
            raise InboundError(404, f"no Evolution instance named {body.get('instance')!r}")
        return instance

    def scan(self, req: Request) -> Response:
        def apply(body: dict[str, Any]) -> Response:
            instance = self._instance(body)
            with self.state.lock:
                if instance.status == "close":
                    raise InboundError(
                        409, f"instance {instance.name!r} shows no QR code: call /instance/connect first"
                    )
                if instance.status == "connecting":
                    self.evolution.scan(instance, number=body.get("number"), profile_name=body.get("profileName"))
                return json_response(
                    200,
                    {
                        "instance": instance.name,
                        "state": instance.status,
                        "wuid": instance.wuid,
                        "profileName": instance.profile_name,
                    },
                )

        return self._guard(apply, req)

    def disconnect(self, req: Request) -> Response:
        """The phone drops the session: 401 (logged out on the phone) and 403 close it for good;
        408/428/440/500/515 are reconnectable, so Evolution only reports ``connecting`` then ``open``."""

        def apply(body: dict[str, Any]) -> Response:
            instance = self._instance(body)
            reason = int(body.get("reason", 401))
            with self.state.lock:
                if instance.status != "open":
                    raise InboundError(409, f"instance {instance.name!r} is not connected")
                if reason in RECONNECTABLE:
                    self.evolution.emit(
                        instance,
                        ("connection.update", p.connection_data(instance, "connecting", reason)),
                        ("connection.update", p.connection_data(instance, "open")),
                    )
                else:
                    self.evolution.emit(instance, *self.evolution.close(instance, reason))
                return json_response(200, {"instance": instance.name, "state": instance.status, "reason": reason})

        return self._guard(apply, req)

    def add_number(self, req: Request) -> Response:
        def apply(body: dict[str, Any]) -> Response:
            missing = [k for k in ("phone_id", "waba_id", "access_token", "display_phone_number") if not body.get(k)]
            if missing:
                raise InboundError(400, f"missing: {', '.join(missing)}")
            number = MetaNumber(
                phone_id=str(body["phone_id"]),
                waba_id=str(body["waba_id"]),
                access_token=str(body["access_token"]),
                display_phone_number=p.digits_of(body["display_phone_number"]),
                app_secret=str(body.get("app_secret") or self.state.config.meta_app_secret),
                verified_name=str(body.get("verified_name") or self.state.config.meta_verified_name),
            )
            self.state.add_meta_number(number)
            return json_response(201, number.summary())

        return self._guard(apply, req)
