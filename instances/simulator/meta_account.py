"""WhatsApp Cloud API account reads and the webhook subscription (``subscribed_apps``).

Subscribing with ``override_callback_uri`` makes the simulator check the URL first, as Meta does:
a GET with ``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge``, which must answer
200 with the challenge as its body (``verify_meta_callback=False`` skips the check).
"""

import secrets

import requests

from instances.simulator.meta import OBJECT, PHONE_FIELDS, VERSION, MetaAPI, graph, invalid
from instances.simulator.routing import Request, Response, Router, json_response
from instances.simulator.state import now_iso

APP_ID = "900000000000001"


class MetaAccount:
    def __init__(self, meta: MetaAPI):
        self.meta = meta
        self.state = meta.state

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{VERSION}/{OBJECT}/phone_numbers", self.phone_numbers, area="meta")
        add("GET", f"{VERSION}/{OBJECT}/whatsapp_business_profile", self.business_profile, area="meta")
        add("POST", f"{VERSION}/{OBJECT}/whatsapp_business_profile", self.update_business_profile, area="meta")
        add("*", f"{VERSION}/{OBJECT}/subscribed_apps", self.subscribed_apps, area="meta")

    def phone_numbers(self, req: Request) -> Response:
        numbers = self.meta.waba(req)
        cursor = secrets.token_urlsafe(24)
        return json_response(
            200,
            {
                "data": [{f: self.meta.phone_fields(n)[f] for f in PHONE_FIELDS} for n in numbers],
                "paging": {"cursors": {"before": cursor, "after": cursor}},
            },
        )

    def business_profile(self, req: Request) -> Response:
        number = self.meta.phone(req)
        profile = {
            "about": "Atendimento simulado",
            "address": "",
            "description": "Elsehub provider simulator",
            "email": "",
            "profile_picture_url": "",
            "websites": [],
            "vertical": "OTHER",
            **number.profile,
            "messaging_product": "whatsapp",
        }
        return json_response(200, {"data": [profile]})

    def update_business_profile(self, req: Request) -> Response:
        number = self.meta.phone(req, "post")
        values = self.meta.params(req)
        allowed = {"about", "address", "description", "email", "profile_picture_handle", "websites", "vertical"}
        with self.state.lock:
            number.profile.update({k: v for k, v in values.items() if k in allowed})
        return json_response(200, {"success": True})

    # -- webhook subscription ------------------------------------------------------------------
    def subscribed_apps(self, req: Request) -> Response:
        if req.method not in {"GET", "POST", "DELETE"}:
            return self.meta.unknown(req)
        waba_id = req.params["id"]
        self.meta.waba(req, req.method.lower())
        if req.method == "GET":
            with self.state.lock:
                subscription = self.state.subscriptions.get(waba_id)
            if subscription is None:
                return json_response(200, {"data": []})
            app = {
                "whatsapp_business_api_data": {
                    "id": APP_ID,
                    "link": f"https://www.facebook.com/games/?app_id={APP_ID}",
                    "name": "Elsehub Simulator",
                }
            }
            if subscription.get("override_callback_uri"):
                app["override_callback_uri"] = subscription["override_callback_uri"]
            return json_response(200, {"data": [app]})
        if req.method == "DELETE":
            with self.state.lock:
                self.state.subscriptions.pop(waba_id, None)
            return json_response(200, {"success": True})
        values = self.meta.params(req)
        uri, verify_token = values.get("override_callback_uri"), values.get("verify_token")
        if bool(uri) != bool(verify_token):
            raise invalid("(#100) override_callback_uri and verify_token must be set together")
        if uri and self.state.config.verify_meta_callback:
            failure = self._verify_callback(str(uri), str(verify_token))
            if failure:
                return graph(400, 2200, f"(#2200) Callback verification failed with the following errors: {failure}")
        with self.state.lock:
            self.state.subscriptions[waba_id] = {
                "override_callback_uri": uri,
                "verify_token": verify_token,
                "subscribedAt": now_iso(),
            }
        return json_response(200, {"success": True})

    def _verify_callback(self, uri: str, verify_token: str) -> str | None:
        """Meta's check of a new callback URL: GET with hub.* and expect the challenge echoed back."""
        challenge = str(secrets.randbelow(10**10))
        params = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        try:
            response = requests.get(uri, params=params, timeout=self.state.config.webhook_timeout)
        except requests.RequestException as exc:
            return f"curl_errno = 7; curl_error = {type(exc).__name__}; HTTP Status Code = 502"
        if response.status_code != 200:
            return f"HTTP Status Code = {response.status_code}; HTTP Message = {response.reason}"
        if response.text.strip() != challenge:
            return (
                "The URL couldn't be validated. Callback verification failed: the response did not match the challenge"
            )
        return None
