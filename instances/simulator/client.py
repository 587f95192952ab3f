"""A small client for a running simulator's control API (used by ``simulate_provider`` subcommands)."""

from typing import Any

import requests


class SimulatorClientError(Exception):
    pass


class SimulatorClient:
    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = requests.request(method, f"{self.url}{path}", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SimulatorClientError(f"cannot reach the simulator at {self.url}: {exc}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text}
        if response.status_code >= 400:
            message = payload.get("error") if isinstance(payload, dict) else payload
            raise SimulatorClientError(f"{response.status_code}: {message}")
        return payload

    def say(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/_sim/inbound", {k: v for k, v in spec.items() if v is not None})

    def scan(self, instance: str, **extra: Any) -> dict[str, Any]:
        return self._call("POST", "/_sim/scan", {"instance": instance, **{k: v for k, v in extra.items() if v}})

    def disconnect(self, instance: str, reason: int = 401) -> dict[str, Any]:
        return self._call("POST", "/_sim/disconnect", {"instance": instance, "reason": reason})

    def faults(self, **values: Any) -> dict[str, Any]:
        return self._call("POST", "/_sim/faults", values)

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/state")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/_sim/reset")
