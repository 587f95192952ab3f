"""Evolution API v2 ``/instance/*`` and ``/webhook/*`` routes."""

from typing import Any

from instances.simulator import evolution_payloads as p
from instances.simulator.evolution import NAME, EvolutionAPI, error, not_found
from instances.simulator.routing import Request, Response, Router, json_response
from instances.simulator.state import EvolutionInstance, new_cuid, new_uuid, now_iso

INTEGRATIONS = {"WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS", "EVOLUTION"}
WEBHOOK_EVENTS = {
    "APPLICATION_STARTUP", "QRCODE_UPDATED", "MESSAGES_SET", "MESSAGES_UPSERT", "MESSAGES_EDITED",
    "MESSAGES_UPDATE", "MESSAGES_DELETE", "SEND_MESSAGE", "SEND_MESSAGE_UPDATE", "CONTACTS_SET",
    "CONTACTS_UPSERT", "CONTACTS_UPDATE", "PRESENCE_UPDATE", "CHATS_SET", "CHATS_UPSERT", "CHATS_UPDATE",
    "CHATS_DELETE", "GROUPS_UPSERT", "GROUP_UPDATE", "GROUP_PARTICIPANTS_UPDATE", "CONNECTION_UPDATE",
    "LABELS_EDIT", "LABELS_ASSOCIATION", "CALL", "TYPEBOT_START", "TYPEBOT_CHANGE_STATUS", "REMOVE_INSTANCE",
    "LOGOUT_INSTANCE", "INSTANCE_CREATE", "INSTANCE_DELETE", "STATUS_INSTANCE",
}  # fmt: skip
SETTING_DEFAULTS = {
    "rejectCall": False,
    "msgCall": "",
    "groupsIgnore": False,
    "alwaysOnline": False,
    "readMessages": False,
    "readStatus": False,
    "syncFullHistory": False,
    "wavoipToken": "",
}


class EvolutionInstances:
    def __init__(self, api: EvolutionAPI):
        self.api = api
        self.state = api.state

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", "/", self.root, area="evolution")
        add("POST", "/instance/create", self.create, area="evolution")
        add("GET", f"/instance/connect/{NAME}", self.connect, area="evolution")
        add("GET", f"/instance/connectionState/{NAME}", self.connection_state, area="evolution")
        add("GET", "/instance/fetchInstances", self.fetch_instances, area="evolution")
        add("POST", f"/instance/restart/{NAME}", self.restart, area="evolution")
        add("DELETE", f"/instance/logout/{NAME}", self.logout, area="evolution")
        add("DELETE", f"/instance/delete/{NAME}", self.delete, area="evolution")
        add("POST", f"/webhook/set/{NAME}", self.set_webhook, area="evolution")
        add("GET", f"/webhook/find/{NAME}", self.find_webhook, area="evolution")

    def root(self, req: Request) -> Response:
        return json_response(
            200,
            {
                "status": 200,
                "message": "Welcome to the Evolution API, it is working!",
                "version": "2.3.7",
                "clientName": "evolution_simulator",
                "manager": f"{req.base_url}/manager",
                "documentation": "https://doc.evolution-api.com",
                "whatsappWebVersion": "2.3000.1025062254",
            },
        )

    def create(self, req: Request) -> Response:
        body = self.api.body(req)
        name = body.get("instanceName")
        if not isinstance(name, str) or not name.strip():
            return error(400, ['instance requires property "instanceName"'])
        with self.state.lock:
            if name in self.state.instances:
                return error(403, [f'This name "{name}" is already in use.'])
        self.api.check_key(req)
        integration = body.get("integration") or "WHATSAPP-BAILEYS"
        if integration not in INTEGRATIONS:
            return error(400, ["Invalid integration"])
        hook = body.get("webhook")
        if hook is not None and (not isinstance(hook, dict) or not isinstance(hook.get("events"), list)):
            return error(400, ["Cannot read properties of undefined (reading 'length')"])
        now = now_iso()
        instance = EvolutionInstance(
            name=name,
            instance_id=new_uuid(),
            token=str(body.get("token") or new_uuid().upper()),
            integration=integration,
            number=p.digits_of(body["number"]) if body.get("number") else None,
            settings={k: body.get(k, v) for k, v in SETTING_DEFAULTS.items()},
            created_at=now,
            updated_at=now,
        )
        if hook is not None:
            instance.webhook = self._webhook_row(instance, hook, enabled=True)
        events: list[tuple[str, Any]] = [
            ("instance.create", {"instanceName": name, "instanceId": instance.instance_id})
        ]
        with self.state.lock:
            if name in self.state.instances:
                return error(403, [f'This name "{name}" is already in use.'])
            self.state.instances[name] = instance
            if body.get("qrcode") and integration == "WHATSAPP-BAILEYS":
                events += self.api.start_connecting(instance, body.get("number"))
            self.api.emit(instance, *events)
            answer: dict[str, Any] = {
                "instance": {
                    "instanceName": name,
                    "instanceId": instance.instance_id,
                    "integration": integration,
                    "webhookWaBusiness": None,
                    "accessTokenWaBusiness": "",
                    "status": instance.status,
                },
                "hash": instance.token,
                "webhook": {
                    k: v
                    for k, v in {
                        "webhookUrl": (hook or {}).get("url"),
                        "webhookHeaders": (hook or {}).get("headers"),
                        "webhookByEvents": (hook or {}).get("byEvents"),
                        "webhookBase64": (hook or {}).get("base64"),
                    }.items()
                    if v is not None
                },
                "websocket": {},
                "rabbitmq": {},
                "nats": {},
                "sqs": {},
                "settings": dict(instance.settings),
            }
            if instance.status == "connecting":
                answer["qrcode"] = p.qr_object(instance)
        return json_response(201, answer)

    def connect(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        number = req.query.get("number")
        with self.state.lock:
            if instance.status == "open":
                return json_response(200, {"instance": {"instanceName": instance.name, "state": "open"}})
            if instance.status == "connecting":
                if number and not instance.pairing_code:
                    instance.number, instance.pairing_code = p.digits_of(number), p.new_pairing_code()
                return json_response(200, p.qr_object(instance))
            self.api.emit(instance, *self.api.start_connecting(instance, number))
            return json_response(200, p.qr_object(instance))

    def connection_state(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        return json_response(200, {"instance": {"instanceName": instance.name, "state": instance.status}})

    def fetch_instances(self, req: Request) -> Response:
        key = req.header("apikey")
        with self.state.lock:
            if key == self.state.config.evolution_api_key:
                instances = list(self.state.instances.values())
            else:
                owner = self.state.instance_by_token(key) if key else None
                if owner is None:
                    return error(401, "Unauthorized")
                instances = [owner]
            name = req.query.get("instanceName")
            if name is not None:
                if name not in self.state.instances:
                    return not_found(name)
                instances = [i for i in instances if i.name == name]
            if req.query.get("instanceId"):
                instances = [i for i in instances if i.instance_id == req.query["instanceId"]]
            if req.query.get("number"):
                instances = [i for i in instances if i.number == p.digits_of(req.query["number"])]
            return json_response(200, [p.instance_row(i) for i in instances])

    def restart(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        with self.state.lock:
            if instance.status == "close":
                return json_response(200, {"error": True, "message": "[object Object]"})
            if instance.status == "connecting":
                return json_response(200, p.qr_object(instance))
            # Saved credentials: the socket comes straight back.
            self.api.emit(
                instance,
                ("connection.update", p.connection_data(instance, "connecting")),
                ("connection.update", p.connection_data(instance, "open")),
            )
            return json_response(200, {"instance": {"instanceName": instance.name, "state": "open"}})

    def logout(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        with self.state.lock:
            if instance.status == "close":
                return error(400, [f'The "{instance.name}" instance is not connected'])
            self.api.emit(instance, *self.api.close(instance, 401))
        return json_response(200, {"status": "SUCCESS", "error": False, "response": {"message": "Instance logged out"}})

    def delete(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        with self.state.lock:
            events = self.api.close(instance, 401) if instance.status != "close" else []
            events += [
                ("instance.delete", {"instanceName": instance.name, "instanceId": instance.instance_id}),
                ("remove.instance", None),
            ]
            self.api.emit(instance, *events)
            self.state.instances.pop(instance.name, None)
            for row in instance.messages:
                self.state.evolution_media.pop(row["key"]["id"], None)
        return json_response(200, {"status": "SUCCESS", "error": False, "response": {"message": "Instance deleted"}})

    def _webhook_row(self, instance: EvolutionInstance, hook: dict[str, Any], *, enabled: bool) -> dict[str, Any]:
        now = now_iso()
        previous = instance.webhook or {}
        return {
            "id": previous.get("id") or new_cuid(),
            "url": hook.get("url"),
            "headers": hook.get("headers") or None,
            "enabled": enabled,
            "events": list(hook.get("events") or []) if enabled else [],
            "webhookByEvents": bool(hook.get("byEvents", False)),
            "webhookBase64": bool(hook.get("base64", False)),
            "createdAt": previous.get("createdAt") or now,
            "updatedAt": now,
            "instanceId": instance.instance_id,
        }

    def set_webhook(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        hook = self.api.body(req).get("webhook")
        if not isinstance(hook, dict):
            return error(400, ['instance requires property "webhook"'])
        missing = [f'webhook requires property "{k}"' for k in ("enabled", "url") if k not in hook]
        if missing:
            return error(400, missing)
        enabled = bool(hook["enabled"])
        if enabled and not isinstance(hook.get("events"), list):
            return error(500, "Cannot read properties of undefined (reading 'length')")
        bad = [
            f"webhook.events[{i}] is not one of enum values: {e}"
            for i, e in enumerate(hook.get("events") or [])
            if e not in WEBHOOK_EVENTS
        ]
        if bad:
            return error(400, bad)
        with self.state.lock:
            instance.webhook = self._webhook_row(instance, hook, enabled=enabled)
            return json_response(201, p.webhook_row(instance))

    def find_webhook(self, req: Request) -> Response:
        instance = self.api.guarded(req)
        with self.state.lock:
            return json_response(200, p.webhook_row(instance))
