"""The HTTP server: one ``ThreadingHTTPServer`` for both providers and the control API.

Faults apply to provider calls only (never to ``/_sim/``), in this order: added latency, a
pending 429 burst, the error rate (500), then the timeout rate. A "timed out" call is still
carried out (a send is sent, its receipts follow) and only its answer is held back for
``timeout_seconds``: the ambiguous case a client must not blindly retry.
"""

import logging
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from instances.simulator import evolution as evo
from instances.simulator import meta_payloads as mp
from instances.simulator.control import ControlAPI
from instances.simulator.evolution import EvolutionAPI
from instances.simulator.evolution_chat import EvolutionChat
from instances.simulator.evolution_instances import EvolutionInstances
from instances.simulator.evolution_send import EvolutionSend
from instances.simulator.meta import MetaAPI
from instances.simulator.meta_account import MetaAccount
from instances.simulator.routing import BadJSON, HTTPFailure, Request, Response, Router, json_response
from instances.simulator.state import Faults, SimulatorConfig, SimulatorState
from instances.simulator.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

META_PATH = re.compile(r"^/(v\d+(\.\d+)?|media)/")


class SimulatorApp:
    def __init__(self, state: SimulatorState):
        self.state = state
        self.dispatcher = WebhookDispatcher(state)
        self.evolution = EvolutionAPI(state, self.dispatcher)
        self.meta = MetaAPI(state, self.dispatcher)
        self.router = Router()
        ControlAPI(state, self.evolution, self.meta).register(self.router)
        EvolutionInstances(self.evolution).register(self.router)
        EvolutionSend(self.evolution).register(self.router)
        EvolutionChat(self.evolution).register(self.router)
        MetaAccount(self.meta).register(self.router)
        self.meta.register(self.router)
        self.meta.register_fallback(self.router)

    def handle(self, req: Request) -> tuple[Response, float]:
        """The response, and how long to hold it back (the timeout fault)."""
        match = self.router.match(req.method, req.path)
        if match is None:
            return self._not_found(req), 0.0
        route, req.params = match
        hold = 0.0
        if route.area != "control":
            faulted = self._fault(route.area)
            if faulted is not None:
                return faulted, 0.0
            faults = self.state.faults
            if self.state.chance(faults.timeout_rate):
                hold = faults.timeout_seconds
        try:
            response = route.handler(req)
        except HTTPFailure as failure:
            response = failure.response
        except BadJSON as exc:
            response = json_response(400, {"error": f"invalid JSON: {exc}"})
        except Exception:
            logger.exception("simulator.request.crashed", extra={"path": req.path})
            response = self._server_error(route.area, "The simulator crashed handling this request (see its log)")
        return response, hold

    def _fault(self, area: str) -> Response | None:
        faults = self.state.faults
        if faults.latency_ms > 0:
            self.state.stop_event.wait(faults.latency_ms / 1000)
        with self.state.lock:
            limited = faults.rate_limit_burst > 0
            if limited:
                faults.rate_limit_burst -= 1
        if limited:
            if area == "meta":
                body = mp.graph_error(
                    130429, "(#130429) Rate limit hit", details="Cloud API message throughput has been reached."
                )
                return json_response(429, body, headers={"Retry-After": "1"})
            response = evo.error(429, ["Too Many Requests"])
            response.headers["Retry-After"] = "1"
            return response
        if self.state.chance(faults.error_rate):
            return self._server_error(area, "Simulated internal error")
        return None

    @staticmethod
    def _server_error(area: str, message: str) -> Response:
        if area == "meta":
            return json_response(500, mp.graph_error(131000, "(#131000) Something went wrong", details=message))
        if area == "control":
            return json_response(500, {"error": message})
        return evo.error(500, [message])

    @staticmethod
    def _not_found(req: Request) -> Response:
        if req.path.startswith("/_sim"):
            return json_response(404, {"error": f"no control route {req.method} {req.path}"})
        if META_PATH.match(req.path):
            return json_response(400, mp.graph_error(2500, f"Unknown path components: {req.path}"))
        return evo.error(404, [f"Cannot {req.method} {req.path}"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ElsehubProviderSimulator/1.0"
    server: "SimulatorServer"

    def _handle(self) -> None:
        split = urlsplit(self.path)
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        req = Request(
            method=self.command,
            path=split.path or "/",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=self.headers,
            body=self._read_body(),
            base_url=f"http://{host}",
        )
        response, hold = self.server.app.handle(req)
        logger.info("simulator.request", extra={"method": self.command, "path": split.path, "status": response.status})
        if hold and self.server.app.state.stop_event.wait(hold):
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("simulator.http " + format, *args)


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SimulatorApp):
        self.app = app
        super().__init__(address, _Handler)


@dataclass
class SimulatorHandle:
    url: str
    state: SimulatorState
    app: SimulatorApp
    server: SimulatorServer
    thread: threading.Thread

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every scheduled webhook delivery has finished."""
        return self.app.dispatcher.wait_idle(timeout)

    def stop(self) -> None:
        self.state.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "SimulatorHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


CONFIG_FIELDS = {f.name for f in fields(SimulatorConfig)}
FAULT_FIELDS = {f.name for f in fields(Faults)}


def run_in_thread(port: int = 0, **options: Any) -> SimulatorHandle:
    """Start a simulator on ``port`` (0: a free one) in a daemon thread.

    ``options`` are ``SimulatorConfig`` fields (``host``, ``evolution_api_key``, ``webhook_delay``,
    ``auto_scan``...) and ``Faults`` fields (``latency_ms``, ``error_rate``...).
    """
    unknown = set(options) - CONFIG_FIELDS - FAULT_FIELDS - {"port"}
    if unknown:
        raise TypeError(f"unknown simulator options: {', '.join(sorted(unknown))}")
    config = SimulatorConfig(**{k: v for k, v in options.items() if k in CONFIG_FIELDS}, port=port)
    state = SimulatorState(config)
    state.faults.update({k: v for k, v in options.items() if k in FAULT_FIELDS})
    app = SimulatorApp(state)
    server = SimulatorServer((config.host, port), app)
    config.port = server.server_address[1]
    public_host = "127.0.0.1" if config.host in {"0.0.0.0", "", "::"} else config.host  # noqa: S104
    state.base_url = f"http://{public_host}:{config.port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="provider-simulator", daemon=True
    )
    thread.start()
    return SimulatorHandle(url=state.base_url, state=state, app=app, server=server, thread=thread)


def serve_until_signal(handle: SimulatorHandle, ready: Callable[[], None] = lambda: None) -> None:
    """Block the main thread until SIGINT or SIGTERM, then stop the server cleanly.

    ``ready`` runs once the signals are handled: whoever reads its announcement may signal at once.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ready()
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
